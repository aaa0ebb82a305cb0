/*
 * LD_PRELOAD shim for Libreswan's pluto in the interop tests (tests/interop/libreswan.py).
 *
 * This kernel has XFRM but no ESP (no CONFIG_INET_ESP): pluto's XFRM_MSG_NEWSA / UPDSA for an ESP
 * SA fails with EPROTONOSUPPORT, pluto then abandons the Quick Mode and never sends QM2/QM3. The
 * tests check the IKE side on the wire (proposals, SPIs, Deletes), not ESP, so this shim answers
 * those requests itself with a netlink ACK (NLMSG_ERROR, error 0), as the kernel would on success.
 * XFRM_MSG_DELSA of such an SA is answered the same way. XFRM_MSG_ALLOCSPI is answered too (a
 * NEWSA message carrying a random SPI in the range asked for): the kernel would create a larval
 * SA for it, which the faked UPDSA never replaces, so it would expire after xfrm_acq_expires
 * (30 s) and pluto would delete its IPsec SA on that EXPIRE. Everything else (policies, GETSA,
 * the broadcast socket) goes to the kernel untouched.
 *
 * How: socket() remembers which descriptors are NETLINK_XFRM sockets; write()/send()/sendto() of
 * one of the messages above on such a descriptor is swallowed and an ACK queued for it; the next
 * recvfrom()/recv()/read() on that descriptor returns the queued ACK. pluto talks to XFRM from its
 * main thread only, but a mutex keeps the queue consistent anyway.
 *
 * Built at test time: gcc -shared -fPIC -O2 -o libreswan_xfrm_shim.so libreswan_xfrm_shim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/xfrm.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_FD 4096
#define MAX_PENDING 16
#define NSLOTS 8 /* XFRM sockets with ACKs queued (pluto has one it sends on) */

struct pending {
	struct nlmsghdr hdr; /* the request's header, echoed in the ACK */
	struct xfrm_usersa_info sa; /* ALLOCSPI: the answer's SA (its SPI chosen here) */
};

static unsigned char is_xfrm[MAX_FD];
static struct pending queue[NSLOTS][MAX_PENDING];
static int slot_fd[NSLOTS] = {-1, -1, -1, -1, -1, -1, -1, -1};
static int queued[NSLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long faked;

static int (*real_socket)(int, int, int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_send)(int, const void *, size_t, int);
static ssize_t (*real_sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
static ssize_t (*real_recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
static ssize_t (*real_recv)(int, void *, size_t, int);
static ssize_t (*real_read)(int, void *, size_t);
static int (*real_close)(int);

static void resolve(void)
{
	if (real_socket != NULL)
		return;
	real_socket = dlsym(RTLD_NEXT, "socket");
	real_write = dlsym(RTLD_NEXT, "write");
	real_send = dlsym(RTLD_NEXT, "send");
	real_sendto = dlsym(RTLD_NEXT, "sendto");
	real_recvfrom = dlsym(RTLD_NEXT, "recvfrom");
	real_recv = dlsym(RTLD_NEXT, "recv");
	real_read = dlsym(RTLD_NEXT, "read");
	real_close = dlsym(RTLD_NEXT, "close");
}

static int slot_of(int fd, int create)
{
	for (int i = 0; i < NSLOTS; i++)
		if (slot_fd[i] == fd)
			return i;
	if (!create)
		return -1;
	for (int i = 0; i < NSLOTS; i++)
		if (slot_fd[i] == -1) {
			slot_fd[i] = fd;
			queued[i] = 0;
			return i;
		}
	return -1;
}

int socket(int domain, int type, int protocol)
{
	resolve();
	int fd = real_socket(domain, type, protocol);
	if (fd >= 0 && fd < MAX_FD && domain == AF_NETLINK && protocol == NETLINK_XFRM)
		is_xfrm[fd] = 1;
	return fd;
}

int close(int fd)
{
	resolve();
	if (fd >= 0 && fd < MAX_FD && is_xfrm[fd]) {
		pthread_mutex_lock(&lock);
		is_xfrm[fd] = 0;
		int s = slot_of(fd, 0);
		if (s >= 0)
			slot_fd[s] = -1;
		pthread_mutex_unlock(&lock);
	}
	return real_close(fd);
}

/* Swallow NEWSA/UPDSA/DELSA on an XFRM socket: returns 1 (and queues the ACK) if it did. */
static int fake(int fd, const void *buf, size_t len)
{
	if (fd < 0 || fd >= MAX_FD || !is_xfrm[fd] || len < sizeof(struct nlmsghdr))
		return 0;
	const struct nlmsghdr *h = buf;
	if (h->nlmsg_type != XFRM_MSG_NEWSA && h->nlmsg_type != XFRM_MSG_UPDSA &&
	    h->nlmsg_type != XFRM_MSG_DELSA && h->nlmsg_type != XFRM_MSG_ALLOCSPI)
		return 0;
	struct pending p;
	memset(&p, 0, sizeof(p));
	p.hdr = *h;
	if (h->nlmsg_type == XFRM_MSG_ALLOCSPI) {
		if (len < NLMSG_LENGTH(sizeof(struct xfrm_userspi_info)))
			return 0;
		const struct xfrm_userspi_info *req = NLMSG_DATA(h);
		uint32_t lo = req->min < 0x100 ? 0x100 : req->min, hi = req->max;
		uint32_t r;
		if (getrandom(&r, sizeof(r), 0) != sizeof(r))
			return 0;
		p.sa = req->info;
		p.sa.id.spi = htonl(hi > lo ? lo + r % (hi - lo + 1) : lo);
	}
	pthread_mutex_lock(&lock);
	int s = slot_of(fd, 1);
	int ok = s >= 0 && queued[s] < MAX_PENDING;
	if (ok) {
		queue[s][queued[s]++] = p;
		faked++;
	}
	pthread_mutex_unlock(&lock);
	if (ok && getenv("XFRM_SHIM_DEBUG") != NULL)
		fprintf(stderr, "xfrm-shim: answered type %u seq %u with success\n", h->nlmsg_type, h->nlmsg_seq);
	return ok;
}

/* The queued ACK for fd, if any, copied into buf; returns its length or -1 if none. */
static ssize_t take_ack(int fd, void *buf, size_t len, struct sockaddr *addr, socklen_t *alen)
{
	if (fd < 0 || fd >= MAX_FD || !is_xfrm[fd])
		return -1;
	struct pending p;
	pthread_mutex_lock(&lock);
	int s = slot_of(fd, 0);
	if (s < 0 || queued[s] == 0) {
		pthread_mutex_unlock(&lock);
		return -1;
	}
	p = queue[s][0];
	memmove(&queue[s][0], &queue[s][1], (size_t)(queued[s] - 1) * sizeof(queue[s][0]));
	queued[s]--;
	pthread_mutex_unlock(&lock);

	union {
		struct {
			struct nlmsghdr n;
			struct nlmsgerr e;
		} ack;
		struct {
			struct nlmsghdr n;
			struct xfrm_usersa_info sa;
		} newsa;
	} out;
	memset(&out, 0, sizeof(out));
	size_t size;
	if (p.hdr.nlmsg_type == XFRM_MSG_ALLOCSPI) {
		/* the kernel answers ALLOCSPI with the (larval) SA it made */
		size = sizeof(out.newsa);
		out.newsa.n.nlmsg_len = size;
		out.newsa.n.nlmsg_type = XFRM_MSG_NEWSA;
		out.newsa.n.nlmsg_seq = p.hdr.nlmsg_seq;
		out.newsa.sa = p.sa;
	} else {
		size = sizeof(out.ack);
		out.ack.n.nlmsg_len = size;
		out.ack.n.nlmsg_type = NLMSG_ERROR;
		out.ack.n.nlmsg_flags = NLM_F_CAPPED; /* only the request's header is echoed */
		out.ack.n.nlmsg_seq = p.hdr.nlmsg_seq;
		out.ack.e.error = 0;
		out.ack.e.msg = p.hdr;
	}
	size_t n = len < size ? len : size;
	memcpy(buf, &out, n);
	if (addr != NULL && alen != NULL && *alen >= sizeof(struct sockaddr_nl)) {
		struct sockaddr_nl from;
		memset(&from, 0, sizeof(from));
		from.nl_family = AF_NETLINK; /* nl_pid 0: from the kernel */
		memcpy(addr, &from, sizeof(from));
		*alen = sizeof(from);
	}
	return (ssize_t)n;
}

ssize_t write(int fd, const void *buf, size_t len)
{
	resolve();
	if (fake(fd, buf, len))
		return (ssize_t)len;
	return real_write(fd, buf, len);
}

ssize_t send(int fd, const void *buf, size_t len, int flags)
{
	resolve();
	if (fake(fd, buf, len))
		return (ssize_t)len;
	return real_send(fd, buf, len, flags);
}

ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to, socklen_t tolen)
{
	resolve();
	if (fake(fd, buf, len))
		return (ssize_t)len;
	return real_sendto(fd, buf, len, flags, to, tolen);
}

ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *addr, socklen_t *alen)
{
	resolve();
	ssize_t n = take_ack(fd, buf, len, addr, alen);
	if (n >= 0)
		return n;
	return real_recvfrom(fd, buf, len, flags, addr, alen);
}

ssize_t recv(int fd, void *buf, size_t len, int flags)
{
	resolve();
	ssize_t n = take_ack(fd, buf, len, NULL, NULL);
	if (n >= 0)
		return n;
	return real_recv(fd, buf, len, flags);
}

ssize_t read(int fd, void *buf, size_t len)
{
	resolve();
	ssize_t n = take_ack(fd, buf, len, NULL, NULL);
	if (n >= 0)
		return n;
	return real_read(fd, buf, len);
}
