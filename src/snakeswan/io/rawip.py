"""Raw IP sockets for ESP (protocol 50) and AH (51): the data plane's wire when not in UDP.

This kernel has no ESP/AH of its own, so nothing consumes those protocols before a raw socket sees
them (and with a raw socket open the kernel sends no "protocol unreachable" either). One
:class:`RawIp` is one non-blocking socket for one protocol and one address family:

- IPv4 raw sockets deliver the whole packet, IP header included (after reassembly): the header is
  checked and stripped here, and its source and destination reported.
- IPv6 raw sockets deliver the payload only: the source comes from ``recvmsg`` and the destination
  from ``IPV6_PKTINFO`` (``IPV6_RECVPKTINFO``).

Sending takes the ESP/AH payload and the kernel writes the IP header: the source address is chosen
with ``IP_PKTINFO`` / ``IPV6_PKTINFO`` in ``sendmsg``, the TOS / traffic class (tunnel mode copies
the inner one) with ``IP_TOS`` / ``IPV6_TCLASS``. Failures on the per-packet path never raise:
they are counted in ``drops`` and ``errors`` (by errno).

Batches: :meth:`RawIp.send_many` sends a list of packets with ``sendmmsg`` and IPv4 receiving reads
with ``recvmmsg`` (one system call per batch, ``io.batch``) when the C extension was built; without
it both do one system call per packet, with the same results.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from snakeswan.errors import LocalError
from snakeswan.io.batch import HAVE_MMSG, pack_cmsgs, pack_sockaddr, recvmmsg, sendmmsg
from snakeswan.io.steering import attach, raw_program

ESP = 50
AH = 51
IP_PKTINFO: int = getattr(socket, "IP_PKTINFO", 8)  # Linux; typeshed lacks it
IPV6_RECVPKTINFO: int = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO: int = getattr(socket, "IPV6_PKTINFO", 50)
IPV6_TCLASS: int = getattr(socket, "IPV6_TCLASS", 67)
RECV_SIZE = 65535
_CMSG_SPACE = socket.CMSG_SPACE(64)


class RawPacket(NamedTuple):
    """One ESP/AH packet received: the IP payload, its addresses, and (IPv4 only) TOS and TTL.

    A named tuple, not a frozen dataclass: one is made per packet, and this is 4 times cheaper."""

    protocol: int
    data: bytes
    src: str
    dst: str
    tos: int = 0
    ttl: int = 0
    packet: bytes = b""  # IPv4: the whole packet as received (AH's ICV covers the header)


_V4_TEXT: dict[bytes, str] = {}  # packed IPv4 address -> text, for the few peers we talk to


def _v4_text(packed: bytes) -> str:
    text = _V4_TEXT.get(packed)
    if text is None:
        if len(_V4_TEXT) >= 1024:
            _V4_TEXT.clear()
        text = _V4_TEXT[packed] = socket.inet_ntop(socket.AF_INET, packed)
    return text


class RawIp:
    """A raw socket for IP ``protocol`` (ESP or AH) of ``family`` (AF_INET or AF_INET6).

    ``bind`` restricts it to one local address (default: every address). ``mark`` (non-zero) is the
    firewall mark (``SO_MARK``) of what it sends: the daemon's mark keeps its ESP/AH out of the
    TUN's routing table (``io.routes``). ``malformed`` counts IPv4 packets too short or with a bad
    header (dropped), ``drops``/``errors`` the sends that failed.
    """

    def __init__(
        self,
        protocol: int = ESP,
        family: int = socket.AF_INET,
        *,
        bind: str | None = None,
        mark: int = 0,
        steer: tuple[int, int] | None = None,
    ) -> None:
        """``steer``: (worker, workers): this socket receives only the packets whose SPI that
        data-plane worker owns (:mod:`snakeswan.io.steering`)."""
        if family not in (socket.AF_INET, socket.AF_INET6):
            raise LocalError(f"raw IP socket: unsupported address family {family}")
        if not 0 < protocol < 255:
            raise LocalError(f"raw IP socket: bad IP protocol {protocol}")
        self.protocol = protocol
        self.family = family
        self.drops = 0
        self.malformed = 0
        self.errors: dict[int, int] = {}
        self._cmsgs: dict[tuple[str | None, int | None], list[tuple[int, int, bytes]]] = {}
        self._names: dict[str, bytes] = {}  # destination -> packed sockaddr (send_many)
        self._controls: dict[str | None, bytes] = {}  # source -> packed IP_PKTINFO (send_many)
        self.batched = HAVE_MMSG  # sendmmsg/recvmmsg (False: one system call per packet)
        try:
            self.sock = socket.socket(family, socket.SOCK_RAW, protocol)
        except OSError as e:
            raise LocalError(
                f"raw socket for IP protocol {protocol}: {e.strerror} (needs CAP_NET_RAW)"
            ) from None
        try:
            if family == socket.AF_INET6:
                self.sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
            self.sock.setblocking(False)
            grow_buffers(self.sock)
            if mark:
                self.sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_MARK", 36), mark)
            if bind:
                self.sock.bind((bind, 0))
            if steer is not None:
                worker, workers = steer
                attach(self.sock, raw_program(worker, workers, protocol=protocol, family=family))
                self._discard_queued()  # what came before the filter: anybody's
        except OSError as e:
            self.sock.close()
            raise LocalError(f"raw socket for IP protocol {protocol}: {e.strerror}") from None
        except LocalError:
            self.sock.close()
            raise

    def _discard_queued(self) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while True:
                self.sock.recv(1)

    def __repr__(self) -> str:
        fam = "v6" if self.family == socket.AF_INET6 else "v4"
        return f"RawIp(protocol={self.protocol}, {fam}, fd={self.sock.fileno()})"

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawIp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- receiving ------------------------------------------------------------------------------
    def receive(self, limit: int = 64) -> Iterator[RawPacket]:
        """Read what is queued (at most ``limit`` packets)."""
        if self.family == socket.AF_INET:
            yield from self._receive_v4(limit)
        else:
            yield from self._receive_v6(limit)

    def receive_payloads(self, limit: int = 64) -> list[bytes]:
        """The IP payloads (ESP header onwards) of what is queued, at most ``limit`` packets, no
        addresses: the ESP data plane's per-packet path (the SPI finds the SA, the addresses are
        not needed). IPv4 packets that do not parse are counted in ``malformed``."""
        if self.family != socket.AF_INET:
            return [p.data for p in self._receive_v6(limit)]
        out: list[bytes] = []
        append = out.append
        for packet in self._read_v4(limit):
            if len(packet) >= 20 and packet[0] == 0x45:
                append(packet[20:])
            else:
                parsed = self._strip_v4(packet)
                if parsed is not None:
                    append(parsed.data)
        return out

    def _receive_v4(self, limit: int) -> Iterator[RawPacket]:
        text = _V4_TEXT.get
        for packet in self._read_v4(limit):
            if len(packet) >= 20 and packet[0] == 0x45:  # no options: the per-packet path, inline
                src, dst = packet[12:16], packet[16:20]
                yield RawPacket(
                    packet[9],
                    packet[20:],
                    text(src) or _v4_text(src),
                    text(dst) or _v4_text(dst),
                    packet[1],
                    packet[8],
                    packet,
                )
                continue
            parsed = self._strip_v4(packet)
            if parsed is not None:
                yield parsed

    def _read_v4(self, limit: int) -> list[bytes]:
        """Up to ``limit`` queued packets: one ``recvmmsg``, or ``recv`` until nothing is left."""
        if self.batched:
            try:
                return recvmmsg(self.sock.fileno(), limit, RECV_SIZE)
            except OSError:
                return []  # an ICMP error reported on the socket: nothing to read
        packets: list[bytes] = []
        recv = self.sock.recv
        for _ in range(limit):
            try:
                packets.append(recv(RECV_SIZE))
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break  # an ICMP error reported on the socket: nothing to read
        return packets

    def _strip_v4(self, packet: bytes) -> RawPacket | None:
        if len(packet) < 20:
            self.malformed += 1
            return None
        b0 = packet[0]
        ihl = (b0 & 0x0F) * 4
        if b0 >> 4 != 4 or ihl < 20 or len(packet) < ihl:
            self.malformed += 1
            return None
        text = _V4_TEXT.get
        return RawPacket(
            packet[9],
            packet[ihl:],
            text(packet[12:16]) or _v4_text(packet[12:16]),
            text(packet[16:20]) or _v4_text(packet[16:20]),
            packet[1],
            packet[8],
            packet,
        )

    def _receive_v6(self, limit: int) -> Iterator[RawPacket]:
        recvmsg = self.sock.recvmsg
        for _ in range(limit):
            try:
                data, anc, _flags, src = recvmsg(RECV_SIZE, _CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            dst = ""
            for level, kind, payload in anc:
                if level == socket.IPPROTO_IPV6 and kind == IPV6_PKTINFO and len(payload) >= 16:
                    dst = socket.inet_ntop(socket.AF_INET6, payload[:16])
            if not dst:
                dst = str(self.sock.getsockname()[0])
            yield RawPacket(self.protocol, data, str(src[0]).split("%")[0], dst)

    # --- sending --------------------------------------------------------------------------------
    def send(self, payload: bytes, dst: str, *, src: str | None = None, tos: int | None = None) -> bool:
        """Send ``payload`` (ESP/AH header onwards) to ``dst`` from ``src`` (None: the kernel
        chooses); ``tos`` sets the IPv4 TOS / IPv6 traffic class. False (counted) on failure.

        The ancillary data is built once per (src, tos) and cached: this is the per-packet path."""
        key = (src, tos)
        cmsg = self._cmsgs.get(key)
        try:
            if cmsg is None:
                cmsg = self._cmsgs[key] = self._ancillary(src, tos)
            self.sock.sendmsg([payload], cmsg, 0, (dst, 0))
        except OSError as e:
            return self._failed(e.errno or 0)
        except ValueError:  # not an address of this family
            return self._failed(0)
        return True

    def send_many(self, messages: Sequence[tuple[bytes, str, str | None]]) -> int:
        """:meth:`send` for each ``(payload, destination, source or None)``, in order, in as few
        system calls as ``sendmmsg`` allows; returns how many went (failures counted as in :meth:`send`)."""
        if not self.batched or len(messages) < 2:
            send = self.send
            return sum(send(payload, dst, src=src) for payload, dst, src in messages)
        batch: list[tuple[bytes, bytes, bytes]] = []
        names, controls = self._names, self._controls
        for payload, dst, src in messages:
            name = names.get(dst)
            control = controls.get(src)
            if name is None or control is None:
                try:
                    name, control = self._packed(dst, src)
                except (OSError, ValueError):  # not an address (of this family)
                    self._failed(0)
                    continue
            batch.append((payload, name, control))
        fd, done, start = self.sock.fileno(), 0, 0
        while start < len(batch):
            sent, err = sendmmsg(fd, batch[start:] if start else batch)
            done += sent
            start += sent
            if err:  # the message at ``start`` failed: count it, go on with the next one
                self._failed(err)
                start += 1
        return done

    def _packed(self, dst: str, src: str | None) -> tuple[bytes, bytes]:
        """The packed destination and control data of :meth:`send_many`, cached (bounded)."""
        if (":" in dst) != (self.family == socket.AF_INET6):
            raise ValueError(f"{dst} is not an address of this socket's family")
        if len(self._names) > 256 or len(self._controls) > 256:
            self._names.clear()
            self._controls.clear()
        name = self._names[dst] = pack_sockaddr(dst)
        control = self._controls[src] = pack_cmsgs(self._ancillary(src, None))
        return name, control

    def _ancillary(self, src: str | None, tos: int | None) -> list[tuple[int, int, bytes]]:
        cmsg: list[tuple[int, int, bytes]] = []
        if src is not None:
            packed = ipaddress.ip_address(src).packed
            if self.family == socket.AF_INET:
                cmsg.append((socket.IPPROTO_IP, IP_PKTINFO, struct.pack("=I4s4s", 0, packed, bytes(4))))
            else:
                cmsg.append((socket.IPPROTO_IPV6, IPV6_PKTINFO, struct.pack("=16sI", packed, 0)))
        if tos is not None:
            if self.family == socket.AF_INET:
                cmsg.append((socket.IPPROTO_IP, socket.IP_TOS, struct.pack("=i", tos & 0xFF)))
            else:
                cmsg.append((socket.IPPROTO_IPV6, IPV6_TCLASS, struct.pack("=i", tos & 0xFF)))
        if len(self._cmsgs) > 256:  # bounded: a handful of local addresses in practice
            self._cmsgs.clear()
        return cmsg

    def _failed(self, code: int) -> bool:
        self.drops += 1
        self.errors[code] = self.errors.get(code, 0) + 1
        return False


BUFFER_BYTES = 4 << 20
SO_RCVBUFFORCE: int = getattr(socket, "SO_RCVBUFFORCE", 33)
SO_SNDBUFFORCE: int = getattr(socket, "SO_SNDBUFFORCE", 32)


def grow_buffers(sock: socket.socket, size: int = BUFFER_BYTES) -> None:
    """Bigger kernel socket buffers (bursts of ESP must not overflow them); the FORCE variants
    pass net.core.rmem_max when we have CAP_NET_ADMIN, the plain ones otherwise."""
    for force, plain in ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, size)
        except OSError:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, plain, size)


class HeaderIncluded:
    """Sends complete IPv4 packets (``IPPROTO_RAW``, header included): AH, whose ICV covers the
    IPv4 header the data plane built. Failures are counted, never raised."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.sock.setblocking(False)
        self.drops = 0

    def send(self, packet: bytes, dst: str) -> bool:
        try:
            self.sock.sendto(packet, (dst, 0))
        except OSError:
            self.drops += 1
            return False
        return True

    def close(self) -> None:
        self.sock.close()
