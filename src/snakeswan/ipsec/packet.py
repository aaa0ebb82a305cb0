"""Minimal IPv4/IPv6 header handling for the data plane: selectors of a packet, outer headers.

Only what ESP/AH processing needs: the 5-tuple a policy is looked up by (addresses as ints, the
upper-layer protocol and its ports), building an outer header for tunnel mode and rewriting the
header in transport mode. The Internet checksum (RFC 1071) is computed here: it is arithmetic, not
cryptography.

Ports of a packet for selector matching (RFC 4301 4.4.1.1): TCP, UDP, SCTP and UDP-Lite source
and destination ports; ICMP and ICMPv6 put the message type in the source port and the code in the
destination port; other protocols and non-first fragments have no ports (0, 0): they match only
selectors covering all ports (or port 0).
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Final

from snakeswan.errors import DecodeError

__all__ = [
    "Drop",
    "FiveTuple",
    "address_bytes",
    "address_text",
    "build_ipv4_header",
    "build_ipv6_header",
    "checksum",
    "five_tuple",
    "transport_header",
]

IPPROTO_IPIP: Final = 4
IPPROTO_IPV6: Final = 41
IPPROTO_NONE: Final = 59
_PORT_PROTOCOLS: Final = frozenset((6, 17, 132, 136))  # TCP, UDP, SCTP, UDP-Lite
_ICMP_PROTOCOLS: Final = frozenset((1, 58))
# IPv6 extension headers walked to find the upper-layer protocol: (hdr ext len + 1) * 8 bytes.
_V6_EXTENSIONS: Final = frozenset((0, 43, 60))
_V6_FRAGMENT: Final = 44

_PORTS = struct.Struct("!HH")
_V4_HEADER = struct.Struct("!BBHHHBBH4s4s")
_V6_HEADER = struct.Struct("!IHBB16s16s")
_U16 = struct.Struct("!H")

FiveTuple = tuple[int, int, int, int, int, int]
"""(IP version, source as int, destination as int, protocol, source port, destination port)."""


class Drop(DecodeError):
    """A packet the data plane refuses; ``reason`` is the drop counter it is counted under."""

    def __init__(self, reason: str, what: str = "") -> None:
        self.reason = reason
        super().__init__(what or reason, 0, "packet")


def five_tuple(packet: bytes) -> FiveTuple:
    """Selectors of an IP packet (module docstring); raises :class:`Drop` ``malformed``."""
    if not packet:
        raise Drop("malformed", "empty packet")
    version = packet[0] >> 4
    if version == 4:
        ihl = (packet[0] & 15) * 4
        if ihl < 20 or len(packet) < ihl:
            raise Drop("malformed", "short IPv4 header")
        proto = packet[9]
        src = int.from_bytes(packet[12:16], "big")
        dst = int.from_bytes(packet[16:20], "big")
        if packet[6] & 0x1F or packet[7]:  # not the first fragment: no ports
            return 4, src, dst, proto, 0, 0
        return 4, src, dst, proto, *_ports(packet, ihl, proto)
    if version == 6:
        if len(packet) < 40:
            raise Drop("malformed", "short IPv6 header")
        src = int.from_bytes(packet[8:24], "big")
        dst = int.from_bytes(packet[24:40], "big")
        proto, offset = ipv6_upper_layer(packet)
        if offset < 0:
            return 6, src, dst, proto, 0, 0
        return 6, src, dst, proto, *_ports(packet, offset, proto)
    raise Drop("malformed", f"IP version {version}")


def selector_bytes(packet: bytes) -> bytes | None:
    """Header bytes that decide :func:`five_tuple` (packets with equal ones have equal 5-tuples),
    for the common shapes: an unfragmented option-less IPv4 packet, an IPv6 packet without
    extension headers; None for anything else (or too short to carry ports)."""
    if len(packet) < 24:
        return None
    if packet[0] == 0x45:
        if packet[6] & 0x1F or packet[7]:
            return None
        return packet[9:10] + packet[12:24]
    if packet[0] >> 4 == 6 and len(packet) >= 44 and packet[6] not in _V6_SKIP:
        return packet[6:7] + packet[8:44]
    return None


_V6_SKIP: Final = frozenset((*_V6_EXTENSIONS, _V6_FRAGMENT))


def _ports(packet: bytes, offset: int, proto: int) -> tuple[int, int]:
    if proto in _PORT_PROTOCOLS:
        if len(packet) >= offset + 4:
            sport, dport = _PORTS.unpack_from(packet, offset)
            return sport, dport
    elif proto in _ICMP_PROTOCOLS and len(packet) >= offset + 2:
        return packet[offset], packet[offset + 1]
    return 0, 0


def ipv6_upper_layer(packet: bytes) -> tuple[int, int]:
    """(upper-layer protocol, its offset) past hop-by-hop, routing, destination options and
    fragment headers; the offset is -1 for a non-first fragment (ports unknown)."""
    proto = packet[6]
    offset = 40
    for _ in range(8):  # bounded: a chain of more extension headers is treated as opaque
        if proto in _V6_EXTENSIONS:
            if len(packet) < offset + 8:
                raise Drop("malformed", "short IPv6 extension header")
            proto, offset = packet[offset], offset + (packet[offset + 1] + 1) * 8
        elif proto == _V6_FRAGMENT:
            if len(packet) < offset + 8:
                raise Drop("malformed", "short IPv6 fragment header")
            first = not (_U16.unpack_from(packet, offset + 2)[0] & 0xFFF8)
            proto, offset = packet[offset], offset + 8
            if not first:
                return proto, -1
        else:
            break
    return proto, offset


# --------------------------------------------------------------------------------------------------
# Addresses


def address_bytes(text: str) -> bytes:
    """``"10.0.0.1"`` -> 4 bytes, ``"2001:db8::1"`` -> 16 bytes (raises ``ValueError``)."""
    return ipaddress.ip_address(text).packed


def address_text(packed: bytes) -> str:
    return str(ipaddress.ip_address(packed))


# --------------------------------------------------------------------------------------------------
# Checksums and headers


def checksum(data: bytes | bytearray, initial: int = 0) -> int:
    """The Internet checksum (RFC 1071): ones' complement of the ones' complement sum of 16-bit
    words; ``initial`` is a partial sum to continue (for pseudo headers)."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    total: int = initial + sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def build_ipv4_header(
    src: bytes, dst: bytes, protocol: int, payload_len: int, ident: int, *, tos: int = 0, df: bool = False
) -> bytes:
    """An option-less IPv4 header (TTL 64) with a correct header checksum."""
    total = 20 + payload_len
    if total > 0xFFFF:
        raise Drop("too_big", f"IPv4 packet of {total} bytes")
    flags = 0x4000 if df else 0
    header = _V4_HEADER.pack(0x45, tos, total, ident & 0xFFFF, flags, 64, protocol, 0, src, dst)
    return header[:10] + _U16.pack(checksum(header)) + header[12:]


def build_ipv6_header(
    src: bytes, dst: bytes, next_header: int, payload_len: int, *, traffic_class: int = 0, hop_limit: int = 64
) -> bytes:
    """A fixed IPv6 header (flow label 0)."""
    if payload_len > 0xFFFF:
        raise Drop("too_big", f"IPv6 payload of {payload_len} bytes")
    return _V6_HEADER.pack((6 << 28) | (traffic_class << 20), payload_len, next_header, hop_limit, src, dst)


def transport_header(header: bytes, protocol: int, payload_len: int) -> bytes:
    """``header`` (a whole IPv4 header with options, or a fixed IPv6 header) with its protocol /
    next header and length fields set for a new payload; the IPv4 checksum recomputed."""
    if header[0] >> 4 == 4:
        buf = bytearray(header)
        total = len(header) + payload_len
        if total > 0xFFFF:
            raise Drop("too_big", f"IPv4 packet of {total} bytes")
        buf[2:4] = _U16.pack(total)
        buf[9] = protocol
        buf[10:12] = b"\0\0"
        buf[10:12] = _U16.pack(checksum(buf))
        return bytes(buf)
    if payload_len > 0xFFFF:
        raise Drop("too_big", f"IPv6 payload of {payload_len} bytes")
    return header[:4] + _U16.pack(payload_len) + bytes((protocol,)) + header[7:40]


def split_transport(packet: bytes) -> tuple[bytes, int, bytes]:
    """(IP header, upper-layer protocol, upper-layer payload) of a packet for transport mode.

    IPv4 options stay in the header. IPv6 extension headers are carried as part of the payload
    (the fixed header's next header is returned as the protocol): ESP/AH then protect them too.
    """
    version = packet[0] >> 4
    if version == 4:
        ihl = (packet[0] & 15) * 4
        total = _U16.unpack_from(packet, 2)[0]
        if ihl < 20 or total < ihl or total > len(packet):
            raise Drop("malformed", "bad IPv4 lengths")
        return packet[:ihl], packet[9], packet[ihl:total]
    if version == 6 and len(packet) >= 40:
        end = 40 + _U16.unpack_from(packet, 4)[0]
        if end > len(packet):
            raise Drop("malformed", "bad IPv6 payload length")
        return packet[:40], packet[6], packet[40:end]
    raise Drop("malformed", "not an IP packet")


def inner_version(next_header: int) -> int:
    """The IP version an ESP/AH next header of a tunnel-mode SA announces (0: not an IP packet)."""
    return 4 if next_header == IPPROTO_IPIP else 6 if next_header == IPPROTO_IPV6 else 0
