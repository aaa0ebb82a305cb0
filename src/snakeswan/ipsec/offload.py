"""TUN offloads: the ``virtio_net_hdr`` framing of a TUN device opened with ``IFF_VNET_HDR``, TCP
segmentation of the super-packets the kernel hands us (TSO), checksum completion, and coalescing of
decrypted TCP segments into super-packets for the kernel (GRO). Pure functions on bytes.

With ``TUNSETOFFLOAD`` (``TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6``) every frame read from or written
to the device starts with a 10-byte header (native byte order, the TUN default)::

    flags (u8) | gso_type (u8) | hdr_len (u16) | gso_size (u16) | csum_start (u16) | csum_offset (u16)

- Read (:func:`split_frame`): ``gso_type`` TCPV4/TCPV6 is a TCP super-packet of up to 64 KiB, to
  be cut into ``gso_size`` payload segments (:func:`segment`), every one with its own IP length,
  IPv4 identification and header checksum, TCP sequence number and checksum; FIN and PSH only on
  the last segment, CWR only on the first (as the kernel's own ``tcp_gso_segment``). Without GSO,
  ``NEEDS_CSUM`` means the checksum from ``csum_start`` to the end is still to be computed and
  stored at ``csum_start + csum_offset`` (:func:`complete_checksum`).
- Write (:func:`coalesce`): in-order TCP segments of one flow in one batch become one super-packet
  with ``NEEDS_CSUM`` and the pseudo-header sum in the TCP checksum field (what a NIC doing GRO
  would hand over), so the kernel's TCP stack takes one packet instead of dozens. The segments'
  own checksums are verified first: the kernel trusts a ``NEEDS_CSUM`` packet. Everything else
  goes out as it is, behind an all-zero header.

Checksums (RFC 1071) use that the ones' complement sum of 16-bit words is the number the bytes
spell, modulo 0xFFFF (2**16 = 1 modulo 0xFFFF). The optional C extension ``ipsec._offload``
sums the words (:data:`HAVE_C_SUM`) and cuts super-packets into segments; without it, one
``int.from_bytes`` and a few ``%`` do the sums, and Python the cutting (the same bytes).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Final

from snakeswan.ipsec.packet import Drop

_offload: ModuleType | None
try:  # the optional C extension (setup.py): the same sums, without Python's big integers
    from snakeswan.ipsec import _offload
except ImportError:  # pragma: no cover - built wherever a compiler is
    _offload = None
HAVE_C_SUM = _offload is not None

__all__ = [
    "GSO_NONE",
    "GSO_TCPV4",
    "GSO_TCPV6",
    "NEEDS_CSUM",
    "VNET_HDR_LEN",
    "ZERO_HEADER",
    "VnetHeader",
    "coalesce",
    "complete_checksum",
    "internet_checksum",
    "ones_sum",
    "segment",
    "split_frame",
]

VNET_HDR: Final = struct.Struct("=BBHHHH")
VNET_HDR_LEN: Final = 10
ZERO_HEADER: Final = bytes(VNET_HDR_LEN)
NEEDS_CSUM: Final = 1  # VIRTIO_NET_HDR_F_NEEDS_CSUM
DATA_VALID: Final = 2  # VIRTIO_NET_HDR_F_DATA_VALID
GSO_NONE: Final = 0
GSO_TCPV4: Final = 1
GSO_UDP: Final = 3
GSO_TCPV6: Final = 4
GSO_UDP_L4: Final = 5
GSO_ECN: Final = 0x80
MAX_IP_LEN: Final = 65535  # a coalesced super-packet stays within one IPv4 total length

_TCP: Final = 6
_FIN, _SYN, _RST, _PSH, _ACK, _URG, _CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x80
_TCP_CSUM: Final = 16  # offset of the checksum in the TCP header
_H = struct.Struct("!H")
_I = struct.Struct("!I")
_B = struct.Struct("!B")
_HH = struct.Struct("!HH")


@dataclass(frozen=True, slots=True)
class VnetHeader:
    """``struct virtio_net_hdr`` (legacy, 10 bytes)."""

    flags: int = 0
    gso_type: int = GSO_NONE
    hdr_len: int = 0
    gso_size: int = 0
    csum_start: int = 0
    csum_offset: int = 0

    def pack(self) -> bytes:
        return VNET_HDR.pack(
            self.flags, self.gso_type, self.hdr_len, self.gso_size, self.csum_start, self.csum_offset
        )

    @classmethod
    def unpack(cls, frame: bytes) -> VnetHeader:
        """The header at the start of ``frame``; :class:`Drop` ``malformed`` if it is too short."""
        if len(frame) < VNET_HDR_LEN:
            raise Drop("malformed", f"TUN frame of {len(frame)} bytes has no virtio_net_hdr")
        return cls(*VNET_HDR.unpack_from(frame))


# --------------------------------------------------------------------------------------------------
# Checksums


def ones_sum(data: bytes, initial: int = 0) -> int:
    """The ones' complement sum of ``data``'s big-endian 16-bit words (an odd length is padded
    with a zero byte), plus ``initial`` (a previous sum, or any non-negative integer); 0..0xFFFF,
    0 only when everything added was zero."""
    s = (_sum_mod(data) + initial) % 0xFFFF
    if s or not (initial or any(data)):
        return s
    return 0xFFFF


_FOLD_BITS: Final = 4096  # below this, one ``%`` is cheaper than halving the number first
_MASKS: dict[int, int] = {}


def _mask(bits: int) -> int:
    """``(1 << bits) - 1``, kept for the few sizes that come back packet after packet."""
    mask = _MASKS.get(bits)
    if mask is None:
        if len(_MASKS) >= 64:
            _MASKS.clear()
        mask = _MASKS[bits] = (1 << bits) - 1
    return mask


def _py_sum_mod(data: bytes) -> int:
    """The sum of ``data``'s big-endian 16-bit words (an odd length zero-padded) modulo 0xFFFF.

    ``%`` divides digit by digit, so a long number is halved first (``hi * 2**k + lo`` is
    ``hi + lo`` modulo 0xFFFF when ``k`` is a multiple of 16). It is read little-endian (faster,
    and an odd last byte is then a padded word already): swapping a 16-bit word's bytes multiplies
    it by 256 modulo 0xFFFF, so 256 times that sum is this one."""
    x = int.from_bytes(data, "little")
    bits = len(data) << 3
    while bits > _FOLD_BITS:
        k = (bits >> 5) << 4  # about half the bits, a multiple of 16
        x = (x >> k) + (x & _mask(k))
        bits += 1 - k
    return x % 0xFFFF * 256 % 0xFFFF


_sum_mod: Callable[[bytes], int] = _py_sum_mod if _offload is None else _offload.sum_mod
"""The sum of 16-bit words modulo 0xFFFF: in C when the optional extension is built."""


def internet_checksum(data: bytes, initial: int = 0) -> int:
    """RFC 1071: the ones' complement of :func:`ones_sum`."""
    return 0xFFFF - ones_sum(data, initial)


def complete_checksum(packet: bytes, csum_start: int, csum_offset: int) -> bytes:
    """``packet`` with the checksum a ``NEEDS_CSUM`` header asks for: the ones' complement of the
    sum from ``csum_start`` to the end (the field holds the pseudo-header sum already) stored at
    ``csum_start + csum_offset``; 0 is sent as 0xFFFF, as the kernel does."""
    where = csum_start + csum_offset
    if csum_start < 20 or where + 2 > len(packet):
        raise Drop("malformed", f"checksum at {csum_start}+{csum_offset} outside a {len(packet)}-byte packet")
    check = 0xFFFF - ones_sum(packet[csum_start:]) or 0xFFFF
    return packet[:where] + _H.pack(check) + packet[where + 2 :]


# --------------------------------------------------------------------------------------------------
# Reading: frames -> packets


def split_frame(frame: bytes) -> list[bytes]:
    """The IP packets in one frame read from a TUN device with a ``virtio_net_hdr``: the packet
    itself (its checksum completed if asked), or the segments of a TCP super-packet.
    :class:`Drop` ``malformed`` for what cannot be taken apart (an unknown GSO type among them)."""
    if len(frame) <= VNET_HDR_LEN:
        raise Drop("malformed", f"TUN frame of {len(frame)} bytes")
    if not frame[1]:  # GSO_NONE: the common case for everything but bulk TCP
        if frame[0] & NEEDS_CSUM:
            _f, _g, _h, _s, start, offset = VNET_HDR.unpack_from(frame)
            return [complete_checksum(frame[VNET_HDR_LEN:], start, offset)]
        return [frame[VNET_HDR_LEN:]]
    return segment(VnetHeader.unpack(frame), frame[VNET_HDR_LEN:])


def segment(header: VnetHeader, packet: bytes) -> list[bytes]:
    """TSO in software: the IP packets of TCP super-packet ``packet`` (see the module docstring).

    The TCP header starts at ``csum_start`` (IPv6 extension headers before it are copied into every
    segment); ``gso_size`` is the payload of every segment but the last."""
    gso = header.gso_type & ~GSO_ECN
    if gso == GSO_NONE:
        if header.flags & NEEDS_CSUM:
            return [complete_checksum(packet, header.csum_start, header.csum_offset)]
        return [packet]
    if gso not in (GSO_TCPV4, GSO_TCPV6):
        raise Drop("malformed", f"GSO type {header.gso_type} is not TCP")
    t, mss, size = header.csum_start, header.gso_size, len(packet)
    version = packet[0] >> 4 if packet else 0
    if version != (4 if gso == GSO_TCPV4 else 6):
        raise Drop("malformed", f"GSO type {header.gso_type} on an IP version {version} packet")
    if version == 4:
        ihl = (packet[0] & 15) * 4
        if ihl < 20 or t != ihl or size < ihl + 20 or packet[9] != _TCP:
            raise Drop("malformed", "TSO: not a TCP/IPv4 packet with the TCP header at csum_start")
    elif size < 60 or t < 40:
        raise Drop("malformed", "TSO: TCP header of an IPv6 packet before its end")
    if t + 20 > size:
        raise Drop("malformed", "TSO: short TCP header")
    thl = (packet[t + 12] >> 4) * 4
    end = t + thl
    if thl < 20 or end > size or mss <= 0:
        raise Drop("malformed", f"TSO: TCP header of {thl} bytes, segment size {mss}")
    return _segment_tcp(packet, version, t, end, mss)


def _py_segment_tcp(packet: bytes, version: int, t: int, end: int, mss: int) -> list[bytes]:
    """The segments of a checked super-packet (TCP header at ``t``, payload from ``end``); the C
    extension's ``segment_tcp`` makes the same bytes (it is :func:`_segment_tcp` when built).

    Sums are kept apart: the big one over each segment's payload is reduced on its own, and the
    words that change per segment (lengths, identification, sequence number, flags) are added to
    precomputed sums of everything else; a checksum is then ``-sum % 0xFFFF`` (RFC 1071: the sum
    of a header's non-zero words is 0xFFFF, never 0, when it is 0 modulo 0xFFFF)."""
    ports, ack_off, window = packet[t : t + 4], packet[t + 8 : t + 13], packet[t + 14 : t + 16]
    rest = packet[t + 18 : end]  # urgent pointer and options
    seq0, flags0, thl = _I.unpack_from(packet, t + 4)[0], packet[t + 13], end - t
    # the TCP header without sequence number, flags and checksum, and the pseudo header's
    # addresses and protocol (its length comes per segment)
    tcp_fixed = ones_sum(ports + ack_off[:4] + window + rest, (packet[t + 12] << 8) + _TCP)
    if version == 4:
        tcp_fixed += ones_sum(packet[12:20])
        ip_a, ip_b, ip_rest = packet[0:2], packet[6:10], packet[12:t]
        ip_fixed = ones_sum(ip_a + ip_b + ip_rest)  # the IPv4 header but length, id and checksum
        ident0 = _H.unpack_from(packet, 4)[0]
        pack = struct.Struct(f"!2sHH4sH{t - 12}s4sI5sB2sH{len(rest)}s").pack
    else:
        tcp_fixed += ones_sum(packet[8:40])
        ip_a, ip_rest = packet[0:4], packet[6:t]  # extension headers, if any, ride along
        pack = struct.Struct(f"!4sH{t - 6}s4sI5sB2sH{len(rest)}s").pack
    tail = packet[end:]
    last = max(0, (len(tail) - 1) // mss)
    out = []
    sum_mod = _sum_mod
    for i in range(last + 1):
        chunk = tail[i * mss : (i + 1) * mss]
        seq = (seq0 + i * mss) & 0xFFFFFFFF
        flags = flags0 if i == last else flags0 & ~(_FIN | _PSH)
        if i:
            flags &= ~_CWR
        tcp_len = thl + len(chunk)
        csum = -(sum_mod(chunk) + tcp_fixed + tcp_len + (seq >> 16) + (seq & 0xFFFF) + flags) % 0xFFFF
        if version == 4:
            total, ident = t + tcp_len, (ident0 + i) & 0xFFFF
            ip_csum = -(ip_fixed + total + ident) % 0xFFFF
            header = pack(
                ip_a, total, ident, ip_b, ip_csum, ip_rest, ports, seq, ack_off, flags, window, csum, rest
            )
        else:
            header = pack(ip_a, t - 40 + tcp_len, ip_rest, ports, seq, ack_off, flags, window, csum, rest)
        out.append(header + chunk)
    return out


_segment_tcp: Callable[[bytes, int, int, int, int], list[bytes]] = getattr(
    _offload, "segment_tcp", _py_segment_tcp
)
"""TSO in software: in C when the optional extension is built."""


# --------------------------------------------------------------------------------------------------
# Writing: packets -> frames


class _Group:
    """Consecutive segments of one TCP flow on their way to become one super-packet."""

    __slots__ = ("closed", "first", "gso_size", "hdr_end", "inv", "length", "next_seq", "packets")

    def __init__(self, packet: bytes, hdr_end: int, seq: int, payload: int, inv: bytes, psh: bool) -> None:
        self.first = packet
        self.packets = [packet]
        self.hdr_end = hdr_end
        self.gso_size = payload
        self.length = len(packet)
        self.next_seq = (seq + payload) & 0xFFFFFFFF
        self.inv = inv
        self.closed = psh  # nothing may follow a segment with PSH


def _tcp_valid(packet: bytes, version: int) -> bool:
    """The TCP checksum of an option-less IPv4 or extension-less IPv6 packet verifies: the
    addresses (the pseudo header's) sit right before the TCP segment, so one sum covers both."""
    start = 12 if version == 4 else 8
    tcp_len = len(packet) - (20 if version == 4 else 40)
    return (_sum_mod(packet[start:]) + _TCP + tcp_len) % 0xFFFF == 0


_V6_EXTENSIONS: Final = frozenset((0, 43, 44, 50, 51, 60, 135, 139, 140, 253, 254))


def _flow(p: bytes) -> tuple[bytes, int] | bool:
    """(flow key, TCP header offset) of a TCP packet that may be coalesced; False for a packet that
    is none of coalescing's business, True for one that might be TCP in a form not coalesced
    (IPv4 options or fragments, IPv6 extension headers): no group may pass it."""
    n = len(p)
    b0 = p[0] if n >= 40 else 0
    if b0 == 0x45:
        if p[9] != _TCP:
            return False
        if p[6] & 0xBF or p[7] or _H.unpack_from(p, 2)[0] != n:
            return True
        return p[12:24], 20
    if b0 >> 4 == 6 and n >= 60:
        if p[6] != _TCP:
            return p[6] in _V6_EXTENSIONS
        if _H.unpack_from(p, 4)[0] + 40 != n:
            return True
        return p[8:44], 40
    return b0 >> 4 == 4 and n >= 20 and p[9] == _TCP  # IPv4 with options


def coalesce(packets: list[bytes]) -> list[bytes]:
    """The frames to write for ``packets`` (plain IP packets, checksums valid), each with its
    ``virtio_net_hdr``: runs of in-order, equally sized (the last may be shorter) TCP segments of
    one flow with ACK (and PSH on the last only), the same IP and TCP header fields but for
    lengths, identification, sequence number and checksum, and valid checksums become one
    super-packet of at most :data:`MAX_IP_LEN` bytes. Other packets go out unchanged behind
    :data:`ZERO_HEADER`; the order within a flow is kept (another flow's packets may pass)."""
    out: list[bytes | _Group] = []
    groups: dict[bytes, _Group] = {}  # the open group of each flow
    for p in packets:
        flow = _flow(p)
        if flow is False or flow is True:
            if flow:
                groups.clear()
            out.append(p)
            continue
        key, t = flow
        n = len(p)
        end = t + (p[t + 12] >> 4) * 4
        flags = p[t + 13]
        if end < t + 20 or end >= n or (flags != _ACK and flags != _ACK | _PSH):
            groups.pop(key, None)  # a control segment or pure ACK: what follows must not pass it
            out.append(p)
            continue
        seq = _I.unpack_from(p, t + 4)[0]
        payload = n - end
        if t == 20:
            inv = p[1:2] + p[6:7] + p[8:9] + p[28:33] + p[34:36] + p[38:end]
        else:
            inv = p[0:4] + p[7:8] + p[48:53] + p[54:56] + p[58:end]
        g = groups.get(key)
        if g is not None and _append(g, p, seq, payload, inv, flags & _PSH):
            continue
        g = _Group(p, end, seq, payload, inv, bool(flags & _PSH))
        groups[key] = g
        out.append(g)
    frames: list[bytes] = []
    for o in out:
        if isinstance(o, bytes):
            frames.append(ZERO_HEADER + o)
        else:
            frames += _group_frames(o)
    return frames


def _append(g: _Group, p: bytes, seq: int, payload: int, inv: bytes, psh: int) -> bool:
    """Add segment ``p`` to ``g`` if it may follow (see :func:`coalesce`); checksums are verified
    for the whole group at the end (:func:`_group_valid`)."""
    if (
        g.closed
        or seq != g.next_seq
        or payload > g.gso_size
        or inv != g.inv
        or g.length + payload > MAX_IP_LEN
    ):
        return False
    g.packets.append(p)
    g.length += payload
    g.next_seq = (seq + payload) & 0xFFFFFFFF
    if psh or payload < g.gso_size:
        g.closed = True
    return True


def _group_frames(g: _Group) -> list[bytes]:
    """The frames of a group: the super-packet with its GSO header, or (one packet, or a checksum
    that does not verify) its packets as they are, for the kernel to check one by one."""
    first, packets = g.first, g.packets
    if len(packets) == 1:
        return [ZERO_HEADER + first]
    end, length = g.hdr_end, g.length
    if first[0] == 0x45:
        t, gso_type, addresses = 20, GSO_TCPV4, first[12:20]
        ip_csum = 0xFFFF - ones_sum(first[0:2] + first[4:10] + addresses, length)
        iph = first[0:2] + _H.pack(length) + first[4:10] + _H.pack(ip_csum) + addresses
    else:
        t, gso_type, addresses = 40, GSO_TCPV6, first[8:40]
        iph = first[0:4] + _H.pack(length - t) + first[6:40]
    pseudo = ones_sum(addresses, _TCP + length - t)
    flags = packets[-1][t + 13]  # ACK, with PSH if the last segment had it
    header = VNET_HDR.pack(NEEDS_CSUM, gso_type, end, g.gso_size, t, _TCP_CSUM)
    tcph = first[t : t + 13] + _B.pack(flags) + first[t + 14 : t + 16] + _H.pack(pseudo) + first[t + 18 : end]
    frame = b"".join([header, iph, tcph, *[memoryview(q)[end:] for q in packets]])
    if _group_valid(g, t, addresses, frame):
        return [frame]
    return [ZERO_HEADER + q for q in packets]


def _group_valid(g: _Group, t: int, addresses: bytes, frame: bytes) -> bool:
    """Whether every segment of ``g`` has a valid TCP checksum, tested on their sum: each valid
    segment (with its pseudo header) sums to 0 modulo 0xFFFF, so all of them do, and one bad
    segment makes the sum non-zero. The payloads are summed in one go, straight from ``frame``
    (word-aligned there when the segment size is even; else segment by segment)."""
    packets, end = g.packets, g.hdr_end
    if g.gso_size & 1:
        return all(_tcp_valid(q, 4 if t == 20 else 6) for q in packets)
    payload = frame[VNET_HDR_LEN + end :]
    count, thl = len(packets), end - t
    pseudo = count * (_sum_mod(addresses) + _TCP + thl) + len(payload)  # sum of the tcp lengths
    headers = _sum_mod(b"".join([q[t:end] for q in packets]))
    return (pseudo + headers + _sum_mod(payload)) % 0xFFFF == 0
