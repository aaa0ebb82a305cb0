"""UDP sockets for IKE: port 500, and port 4500 shared with ESP-in-UDP (RFC 3948).

With ``mark`` every datagram carries that firewall mark (``SO_MARK``): the daemon's IKE and
ESP-in-UDP then skip the routing table of the TUN device (``io.routes``).

Each socket is bound to the wildcard address of its family with IP_PKTINFO / IPV6_RECVPKTINFO, so
that the address a datagram was sent *to* is known (the engine needs it: NAT-D hashes, connection
lookup) and replies leave *from* that address. On the NAT-T port the 4-byte non-ESP marker is
stripped on receipt and prepended on sending; datagrams without it are ESP (handed to the data
plane) and the one-byte 0xff datagrams are NAT-T keepalives.

ESP-in-UDP goes out in batches (:meth:`UdpSocket.send_esp_many`): runs of datagrams of one size to
one peer leave with one ``sendmsg`` and UDP GSO (``UDP_SEGMENT``, Linux 4.18): the kernel cuts the
buffer into datagrams of that size (the last may be shorter). Where the kernel refuses it, the
socket goes back to one ``sendmsg`` per datagram for good. Receiving reads up to 64 datagrams per
``recvmmsg`` (``io.batch``; ``recvmsg`` each without the C extension), and the NAT-T socket takes
UDP GRO (``UDP_GRO``): datagrams of one flow the kernel kept together (a GSO sender's) arrive as
one buffer with their size in a control message and are cut apart here, exactly as sent.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from snakeswan.errors import LocalError
from snakeswan.io.batch import (
    HAVE_MMSG,
    pack_cmsgs,
    pack_sockaddr,
    recvmmsg_addressed,
    unpack_cmsgs,
    unpack_sockaddr,
)
from snakeswan.io.rawip import grow_buffers
from snakeswan.io.routes import set_mark

NON_ESP_MARKER = b"\x00\x00\x00\x00"
KEEPALIVE = b"\xff"
_CMSG_SPACE = socket.CMSG_SPACE(64)
_PKTINFO_SPACE = socket.CMSG_SPACE(20)  # the larger of IP_PKTINFO and IPV6_PKTINFO: more is GRO
IP_PKTINFO: int = getattr(socket, "IP_PKTINFO", 8)  # Linux; typeshed lacks it
SOL_UDP = 17
UDP_SEGMENT = 103  # linux/udp.h
UDP_GRO = 104
_INT = struct.Struct("=i")
_NAME_LEN = 28  # sockaddr_in6, the larger
GSO_MAX_SEGMENTS = 64  # UDP_MAX_SEGMENTS
GSO_MAX_BYTES = 65000  # the UDP payload of one GSO send stays below 64 KiB
_U16 = struct.Struct("=H")
# ~20,000 small datagrams (their kernel size is ~4x their length): a flood of 200,000 spoofed
# MM1s a second fills it in 0.1 s, so the scheduler can take the daemon off the CPU for that long
# before the kernel drops at random what the daemon's shedding would have sorted (daemon/intake.py)
RECEIVE_BUFFER = 16 << 20

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Received:
    kind: str  # "ike" | "esp" | "keepalive"
    data: bytes
    src: Address
    dst: Address


class UdpSocket:
    """One non-blocking UDP socket on ``port`` for one address family."""

    def __init__(
        self,
        port: int,
        *,
        family: int = socket.AF_INET,
        nat_t: bool = False,
        bind: str | None = None,
        mark: int = 0,
        reuseport: bool = False,
    ) -> None:
        self._state(port, family, nat_t)
        self.reuseport = reuseport
        # no SO_REUSEADDR: on UDP it lets a second daemon bind the same port and answer half of
        # the peers' IKE; a port in use is an error (one daemon per port). ``reuseport``: the
        # NAT-T socket of a daemon with data-plane workers, whose sockets join its SO_REUSEPORT
        # group under a program that gives IKE to this one (daemon/workers.py, io/steering.py)
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        if reuseport:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        else:
            self.sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        self.sock.setblocking(False)
        try:
            set_mark(self.sock, mark)  # the daemon's IKE never enters the TUN (io.routes)
        except LocalError as e:
            self.sock.close()
            raise OSError(errno.EPERM, str(e)) from None
        # bursts must not overflow the kernel's buffers: ESP-in-UDP on the NAT-T port, and on both
        # ports hundreds of peers' IKE while the loop is busy computing DH (a gateway's MM3s)
        grow_buffers(self.sock, RECEIVE_BUFFER)
        if nat_t:
            with contextlib.suppress(OSError):  # older kernels: datagram by datagram
                self.sock.setsockopt(SOL_UDP, UDP_GRO, 1)
        try:
            self.sock.bind((bind or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))
        except OSError:
            self.sock.close()
            raise
        self.port = self.sock.getsockname()[1]

    def _state(self, port: int, family: int, nat_t: bool) -> None:
        self.port = port
        self.family = family
        self.nat_t = nat_t
        self._cmsgs: dict[str, list[tuple[int, int, bytes]]] = {}
        self.gso = True  # UDP_SEGMENT for ESP-in-UDP runs (False once the kernel refused it)
        self.batched = HAVE_MMSG  # recvmmsg (False: one recvmsg per datagram)
        self._dst_text: dict[bytes, str] = {}  # packed destination address -> text

    @classmethod
    def adopt(cls, fd: int, *, nat_t: bool) -> UdpSocket:
        """A socket opened and bound by another process (a data-plane worker's, inherited)."""
        self = cls.__new__(cls)
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        self._state(sock.getsockname()[1], sock.family, nat_t)
        self.reuseport = True
        self.sock = sock
        return self

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def receive(self, limit: int = 64) -> Iterator[Received]:
        """Read what is queued (at most ``limit`` system calls' worth), classified."""
        for data, peer, anc in self._read(limit):
            yield from self._split(data, peer, anc)

    def receive_raw(self, limit: int = 64) -> list[tuple[bytes, bytes, bytes]]:
        """Up to ``limit`` queued datagrams as ``(data, packed source sockaddr, control buffer)``,
        nothing decoded yet: overload shedding looks at the bytes before paying for addresses and
        control messages (``ike.shedding``); :meth:`decode` finishes the ones it keeps. An empty
        list when nothing is queued."""
        if self.batched:
            try:
                messages = recvmmsg_addressed(self.sock.fileno(), limit, 65535, _NAME_LEN, _CMSG_SPACE)
            except OSError:
                return []  # e.g. ICMP port unreachable reported on the socket: nothing to read
            return [(data, name, control) for data, name, control, _flags in messages]
        out = []
        for data, peer, anc in self._read(limit):  # without recvmmsg: the same shape, re-encoded
            out.append((data, pack_sockaddr(*peer), pack_cmsgs(anc)))
        return out

    def decode(self, data: bytes, name: bytes, control: bytes) -> Iterator[Received]:
        """The datagram(s) of one :meth:`receive_raw` entry, as :meth:`receive` gives them."""
        return self._split(data, unpack_sockaddr(name), unpack_cmsgs(control))

    def coalesced(self, control: bytes) -> bool:
        """Whether a :meth:`receive_raw` entry may hold several datagrams (UDP GRO, NAT-T port)."""
        return self.nat_t and len(control) > _PKTINFO_SPACE and self._control(unpack_cmsgs(control))[1] > 0

    def _split(self, data: bytes, peer: Address, anc: Iterable[tuple[int, int, bytes]]) -> Iterator[Received]:
        dst_addr, gro = self._control(anc)
        dst = (dst_addr or self.sock.getsockname()[0], self.port)
        if gro and len(data) > gro:  # several datagrams of one flow, kept together (UDP GRO)
            for at in range(0, len(data), gro):
                yield self._classify(data[at : at + gro], peer, dst)
        else:
            yield self._classify(data, peer, dst)

    def _read(self, limit: int) -> Iterator[tuple[bytes, Address, Iterable[tuple[int, int, bytes]]]]:
        if self.batched:
            try:
                messages = recvmmsg_addressed(self.sock.fileno(), limit, 65535, _NAME_LEN, _CMSG_SPACE)
            except OSError:
                return  # e.g. ICMP port unreachable reported on the socket: nothing to read
            for data, name, control, _flags in messages:
                yield data, unpack_sockaddr(name), unpack_cmsgs(control)
            return
        for _ in range(limit):
            try:
                data, anc, _flags, src = self.sock.recvmsg(65535, _CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. ICMP port unreachable reported on the socket: nothing to read
            yield data, (str(src[0]), int(src[1])), anc

    def _classify(self, data: bytes, peer: Address, dst: Address) -> Received:
        if not self.nat_t:
            return Received("ike", data, peer, dst)
        if data == KEEPALIVE:
            return Received("keepalive", data, peer, dst)
        if data[:4] == NON_ESP_MARKER:
            return Received("ike", data[4:], peer, dst)
        return Received("esp", data, peer, dst)

    def _control(self, anc: Iterable[tuple[int, int, bytes]]) -> tuple[str | None, int]:
        """(the address the datagram was sent to, the UDP GRO segment size or 0)."""
        dst, gro = None, 0
        for level, kind, payload in anc:
            if level == SOL_UDP and kind == UDP_GRO and len(payload) >= 4:
                gro = _INT.unpack_from(payload)[0]
            elif level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(payload) >= 12:
                dst = self._text(payload[8:12])
            elif level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(payload) >= 16:
                dst = self._text(payload[:16])
        return dst, gro

    def _text(self, packed: bytes) -> str:
        text = self._dst_text.get(packed)
        if text is None:
            if len(self._dst_text) >= 256:
                self._dst_text.clear()
            text = self._dst_text[packed] = str(ipaddress.ip_address(packed))
        return text

    def _pktinfo(self, src: str) -> list[tuple[int, int, bytes]]:
        cmsg = self._cmsgs.get(src)
        if cmsg is None:  # built once per source address (ESP-in-UDP makes this a per-packet path)
            ip = ipaddress.ip_address(src)
            if ip.version == 4:
                cmsg = [(socket.IPPROTO_IP, IP_PKTINFO, struct.pack("=I4s4s", 0, ip.packed, bytes(4)))]
            else:
                cmsg = [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, struct.pack("=16sI", ip.packed, 0))]
            if len(self._cmsgs) > 256:
                self._cmsgs.clear()
            self._cmsgs[src] = cmsg
        return cmsg

    def send_esp_many(self, datagrams: list[bytes], src: str, dst: Address) -> None:
        """ESP-in-UDP datagrams from ``src`` to ``dst``, in order: each run of equal sizes (its
        last one may be shorter) as one GSO send (module docstring)."""
        i, n = 0, len(datagrams)
        while i < n:
            size = len(datagrams[i])
            j, total = i + 1, size
            while j < n and j - i < GSO_MAX_SEGMENTS and total + size <= GSO_MAX_BYTES:
                length = len(datagrams[j])
                if length > size:
                    break
                j, total = j + 1, total + length
                if length < size:
                    break  # a shorter one ends the run
            if j - i == 1 or not self.gso or not self._send_gso(datagrams[i:j], size, src, dst):
                for data in datagrams[i:j]:
                    self.send(data, src, dst, ike=False)
            i = j

    def _send_gso(self, run: list[bytes], size: int, src: str, dst: Address) -> bool:
        cmsg = [*self._pktinfo(src), (SOL_UDP, UDP_SEGMENT, _U16.pack(size))]
        try:
            self.sock.sendmsg([b"".join(run)], cmsg, 0, dst)
        except OSError as e:
            if e.errno in (errno.EINVAL, errno.EIO, errno.ENOPROTOOPT, errno.EOPNOTSUPP):
                self.gso = False  # this kernel or device does not segment UDP: per datagram from now on
            return False
        return True

    def send(self, data: bytes, src: str, dst: Address, *, ike: bool = True) -> None:
        """Send from address ``src`` (IP_PKTINFO); IKE on the NAT-T port gets the non-ESP marker."""
        if self.nat_t and ike:
            data = NON_ESP_MARKER + data
        cmsg = self._pktinfo(src)
        try:
            self.sock.sendmsg([data], cmsg, 0, dst)
        except OSError:
            # unspecified source (e.g. the address went away): let the kernel choose
            self.sock.sendto(data, dst)


def family_of(address: str) -> int:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def source_address_for(destination: str, *, mark: int = 0) -> str:
    """The local address the kernel would use to reach ``destination`` (no packet is sent) from a
    socket with firewall mark ``mark`` (the daemon's: the route its IKE packets take)."""
    with socket.socket(family_of(destination), socket.SOCK_DGRAM) as s:
        with contextlib.suppress(LocalError):
            set_mark(s, mark)
        s.connect((destination, 9))
        return str(s.getsockname()[0])
