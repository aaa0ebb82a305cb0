"""UDP sockets for IKE: port 500, and port 4500 shared with ESP-in-UDP (RFC 3948).

With ``mark`` every datagram carries that firewall mark (``SO_MARK``): the daemon's IKE and
ESP-in-UDP then skip the routing table of the TUN device (``io.routes``).

Each socket is bound to the wildcard address of its family with IP_PKTINFO / IPV6_RECVPKTINFO, so
that the address a datagram was sent *to* is known (the engine needs it: NAT-D hashes, connection
lookup) and replies leave *from* that address. On the NAT-T port the 4-byte non-ESP marker is
stripped on receipt and prepended on sending; datagrams without it are ESP (handed to the data
plane) and the one-byte 0xff datagrams are NAT-T keepalives.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from snakeswan.errors import LocalError
from snakeswan.io.rawip import grow_buffers
from snakeswan.io.routes import set_mark

NON_ESP_MARKER = b"\x00\x00\x00\x00"
KEEPALIVE = b"\xff"
_CMSG_SPACE = socket.CMSG_SPACE(64)
IP_PKTINFO: int = getattr(socket, "IP_PKTINFO", 8)  # Linux; typeshed lacks it

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
    ) -> None:
        self.port = port
        self.family = family
        self.nat_t = nat_t
        self._cmsgs: dict[str, list[tuple[int, int, bytes]]] = {}
        # no SO_REUSEADDR/SO_REUSEPORT: on UDP they let a second daemon bind the same port and
        # answer half of the peers' IKE; a port in use is an error (one daemon per port)
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
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
        if nat_t:
            grow_buffers(self.sock)  # ESP-in-UDP arrives here too
        try:
            self.sock.bind((bind or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))
        except OSError:
            self.sock.close()
            raise
        self.port = self.sock.getsockname()[1]

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def receive(self, limit: int = 64) -> Iterator[Received]:
        """Read what is queued (at most ``limit`` datagrams), classified."""
        for _ in range(limit):
            try:
                data, anc, _flags, src = self.sock.recvmsg(65535, _CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. ICMP port unreachable reported on the socket: nothing to read
            dst = (self._dst(anc) or self.sock.getsockname()[0], self.port)
            peer = (str(src[0]), int(src[1]))
            if not self.nat_t:
                yield Received("ike", data, peer, dst)
            elif data == KEEPALIVE:
                yield Received("keepalive", data, peer, dst)
            elif data[:4] == NON_ESP_MARKER:
                yield Received("ike", data[4:], peer, dst)
            else:
                yield Received("esp", data, peer, dst)

    def _dst(self, anc: list[tuple[int, int, bytes]]) -> str | None:
        for level, kind, payload in anc:
            if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(payload) >= 12:
                return str(ipaddress.IPv4Address(payload[8:12]))
            if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(payload) >= 16:
                return str(ipaddress.IPv6Address(payload[:16]))
        return None

    def send(self, data: bytes, src: str, dst: Address, *, ike: bool = True) -> None:
        """Send from address ``src`` (IP_PKTINFO); IKE on the NAT-T port gets the non-ESP marker."""
        if self.nat_t and ike:
            data = NON_ESP_MARKER + data
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
