/* snakeswan.io._mmsg: sendmmsg(2) and recvmmsg(2) for the data plane's sockets (Linux).
 *
 * Python's socket module has neither. This module is optional: it is built at install when a C
 * compiler and the Python headers are there, and io.batch falls back to one sendmsg/recv per
 * packet when it is not. Both calls are non-blocking (MSG_DONTWAIT) and keep the GIL: they never
 * wait, and the Python objects they point into must not change under them.
 *
 *   sendmmsg(fd, messages) -> (sent, errno)
 *       messages: a list or tuple of (payload, sockaddr, control) bytes objects (control may be
 *       empty). Sent in order, as many per system call as the kernel takes; stops at the first
 *       message that fails: ``sent`` is how many went, ``errno`` why the next did not (0: all went).
 *
 *   recvmmsg(fd, vlen, size, namelen, controllen) -> list
 *       Up to ``vlen`` datagrams of at most ``size`` bytes each. With namelen == controllen == 0,
 *       a list of bytes; else of (data, sockaddr, control, msg_flags) tuples. An empty list when
 *       nothing is queued; OSError for other errors.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define CHUNK 64
#define MAX_VLEN 1024

static PyObject *
py_sendmmsg(PyObject *self, PyObject *args)
{
    int fd;
    PyObject *seq;
    if (!PyArg_ParseTuple(args, "iO:sendmmsg", &fd, &seq))
        return NULL;
    PyObject *fast = PySequence_Fast(seq, "sendmmsg: messages must be a list or tuple");
    if (fast == NULL)
        return NULL;
    Py_ssize_t total = PySequence_Fast_GET_SIZE(fast);
    PyObject **items = PySequence_Fast_ITEMS(fast);
    struct mmsghdr msgs[CHUNK];
    struct iovec iovs[CHUNK];
    Py_ssize_t sent = 0;
    int err = 0;
    while (sent < total) {
        Py_ssize_t n = total - sent < CHUNK ? total - sent : CHUNK;
        memset(msgs, 0, sizeof(struct mmsghdr) * (size_t)n);
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *t = items[sent + i];
            if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 3) {
                Py_DECREF(fast);
                PyErr_SetString(PyExc_TypeError, "sendmmsg: each message is (payload, sockaddr, control)");
                return NULL;
            }
            PyObject *payload = PyTuple_GET_ITEM(t, 0);
            PyObject *name = PyTuple_GET_ITEM(t, 1);
            PyObject *control = PyTuple_GET_ITEM(t, 2);
            if (!PyBytes_Check(payload) || !PyBytes_Check(name) || !PyBytes_Check(control)) {
                Py_DECREF(fast);
                PyErr_SetString(PyExc_TypeError, "sendmmsg: payload, sockaddr and control must be bytes");
                return NULL;
            }
            iovs[i].iov_base = PyBytes_AS_STRING(payload);
            iovs[i].iov_len = (size_t)PyBytes_GET_SIZE(payload);
            msgs[i].msg_hdr.msg_iov = &iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            if (PyBytes_GET_SIZE(name) > 0) {
                msgs[i].msg_hdr.msg_name = PyBytes_AS_STRING(name);
                msgs[i].msg_hdr.msg_namelen = (socklen_t)PyBytes_GET_SIZE(name);
            }
            if (PyBytes_GET_SIZE(control) > 0) {
                msgs[i].msg_hdr.msg_control = PyBytes_AS_STRING(control);
                msgs[i].msg_hdr.msg_controllen = (size_t)PyBytes_GET_SIZE(control);
            }
        }
        int r = sendmmsg(fd, msgs, (unsigned int)n, MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            err = errno;
            break;
        }
        sent += r;
    }
    Py_DECREF(fast);
    return Py_BuildValue("ni", sent, err);
}

/* One receive area, grown as needed and kept: a fresh multi-megabyte malloc per call would cost
 * page faults on every read. Only touched with the GIL held. */
static char *area;
static size_t area_size;

static PyObject *
py_recvmmsg(PyObject *self, PyObject *args)
{
    int fd;
    Py_ssize_t vlen, size, namelen, controllen;
    if (!PyArg_ParseTuple(args, "innnn:recvmmsg", &fd, &vlen, &size, &namelen, &controllen))
        return NULL;
    if (vlen < 1 || vlen > MAX_VLEN || size < 1 || size > 262144 || namelen < 0 || namelen > 128
        || controllen < 0 || controllen > 1024) {
        PyErr_SetString(PyExc_ValueError, "recvmmsg: vlen, size, namelen or controllen out of range");
        return NULL;
    }
    size_t slot = (size_t)(size + namelen + controllen + 15) & ~(size_t)15;
    size_t need = slot * (size_t)vlen + (sizeof(struct mmsghdr) + sizeof(struct iovec)) * (size_t)vlen;
    if (need > area_size) {
        char *grown = realloc(area, need);
        if (grown == NULL)
            return PyErr_NoMemory();
        area = grown;
        area_size = need;
    }
    struct mmsghdr *msgs = (struct mmsghdr *)area;
    struct iovec *iovs = (struct iovec *)(area + sizeof(struct mmsghdr) * (size_t)vlen);
    char *bufs = area + (sizeof(struct mmsghdr) + sizeof(struct iovec)) * (size_t)vlen;
    memset(msgs, 0, sizeof(struct mmsghdr) * (size_t)vlen);
    for (Py_ssize_t i = 0; i < vlen; i++) {
        char *base = bufs + slot * (size_t)i;
        iovs[i].iov_base = base;
        iovs[i].iov_len = (size_t)size;
        msgs[i].msg_hdr.msg_iov = &iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        if (namelen) {
            msgs[i].msg_hdr.msg_name = base + size;
            msgs[i].msg_hdr.msg_namelen = (socklen_t)namelen;
        }
        if (controllen) {
            msgs[i].msg_hdr.msg_control = base + size + namelen;
            msgs[i].msg_hdr.msg_controllen = (size_t)controllen;
        }
    }
    int r;
    do {
        r = recvmmsg(fd, msgs, (unsigned int)vlen, MSG_DONTWAIT, NULL);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return PyList_New(0);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *out = PyList_New(r);
    if (out == NULL)
        return NULL;
    for (int i = 0; i < r; i++) {
        struct msghdr *h = &msgs[i].msg_hdr;
        PyObject *item;
        size_t len = msgs[i].msg_len < (unsigned int)size ? msgs[i].msg_len : (size_t)size;
        if (!namelen && !controllen) {
            item = PyBytes_FromStringAndSize(h->msg_iov->iov_base, (Py_ssize_t)len);
        } else {
            /* the kernel reports the full address length even when it was cut to namelen */
            Py_ssize_t nlen = namelen && h->msg_namelen < (socklen_t)namelen ? (Py_ssize_t)h->msg_namelen
                                                                               : namelen;
            Py_ssize_t clen = controllen && h->msg_controllen < (size_t)controllen
                                  ? (Py_ssize_t)h->msg_controllen
                                  : controllen;
            item = Py_BuildValue("y#y#y#i", (char *)h->msg_iov->iov_base, (Py_ssize_t)len,
                                 namelen ? (char *)h->msg_name : "", nlen,
                                 controllen ? (char *)h->msg_control : "", clen, h->msg_flags);
        }
        if (item == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, item);
    }
    return out;
}

static PyMethodDef methods[] = {
    {"sendmmsg", py_sendmmsg, METH_VARARGS, "sendmmsg(fd, [(payload, sockaddr, control), ...]) -> (sent, errno)"},
    {"recvmmsg", py_recvmmsg, METH_VARARGS, "recvmmsg(fd, vlen, size, namelen, controllen) -> list"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_mmsg", "sendmmsg/recvmmsg", -1, methods};

PyMODINIT_FUNC
PyInit__mmsg(void)
{
    return PyModule_Create(&module);
}
