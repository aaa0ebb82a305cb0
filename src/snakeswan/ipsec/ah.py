"""AH packets (RFC 4302), tunnel and transport mode, IPv4 and IPv6.

AH header: next header | payload length ((AH length in 4-byte words) - 2) | reserved | SPI |
sequence number | ICV, padded to a multiple of 4 bytes (IPv4) or 8 bytes (IPv6) (RFC 4302 2.2,
2.6). The ICV (RFC 4302 3.3.3) covers the IP header with its mutable fields zeroed (IPv4: TOS,
flags and fragment offset, TTL, header checksum; IPv6: traffic class, flow label, hop limit), the AH
header with the ICV zeroed (the padding after it is covered as sent) and the payload.

AH works on whole IP packets: outbound returns the complete packet (to be sent with the header
included, since the IPv4 identification is covered by the ICV), inbound takes the complete packet as
received. Limits: IPv4 options are covered as they are (no option is treated as mutable), and an
inbound IPv6 AH must follow the fixed header directly (no extension headers before it).
"""

from __future__ import annotations

import struct
from typing import Final

from snakeswan.ipsec.algorithms import Integrity, ah_integrity
from snakeswan.ipsec.packet import (
    Drop,
    build_ipv4_header,
    build_ipv6_header,
    split_transport,
    transport_header,
)

__all__ = ["IPPROTO_AH", "AhCodec", "decapsulate", "encapsulate_transport", "encapsulate_tunnel", "peek"]

IPPROTO_AH: Final = 51
_AH = struct.Struct("!BBHII")
_U16 = struct.Struct("!H")
_V6_MUTABLE_ZERO: Final = b"\x60\0\0\0"


class AhCodec:
    """The AH integrity of one SA in one direction, preconstructed once."""

    __slots__ = ("icv_len", "integrity", "lengths", "name", "spi")

    def __init__(self, spi: int, transform_id: int, auth: int | None, integrity_key: bytes) -> None:
        self.spi = spi
        self.integrity: Integrity = ah_integrity(transform_id, auth, integrity_key)
        self.icv_len = self.integrity.icv_len
        self.name = self.integrity.name
        base = 12 + self.icv_len
        # AH length by IP version: ICV padded to 4 (IPv4) or 8 (IPv6) bytes (RFC 4302 2.6)
        self.lengths = {4: base + (-base % 4), 6: base + (-base % 8)}

    def __repr__(self) -> str:
        return f"AhCodec(spi={self.spi:#010x}, {self.name})"


def _zero_mutable(buf: bytearray, version: int) -> None:
    """Zero the mutable fields of the IP header at the start of ``buf`` (RFC 4302 3.3.3.1)."""
    if version == 4:
        buf[1] = 0  # TOS
        buf[6:9] = b"\0\0\0"  # flags, fragment offset, TTL
        buf[10:12] = b"\0\0"  # header checksum
    else:
        buf[0:4] = _V6_MUTABLE_ZERO  # version kept; traffic class and flow label zeroed
        buf[7] = 0  # hop limit


def _seal(codec: AhCodec, header: bytes, next_header: int, seq: int, payload: bytes) -> bytes:
    """header | AH with the ICV computed | payload."""
    version = header[0] >> 4
    ah_len = codec.lengths[version]
    ah_zero = _AH.pack(next_header, ah_len // 4 - 2, 0, codec.spi, seq) + bytes(ah_len - 12)
    zeroed = bytearray(header)
    _zero_mutable(zeroed, version)
    icv = codec.integrity.mac(bytes(zeroed), ah_zero, payload)
    return header + ah_zero[:12] + icv + ah_zero[12 + codec.icv_len :] + payload


def encapsulate_tunnel(codec: AhCodec, inner: bytes, seq: int, src: bytes, dst: bytes, ident: int) -> bytes:
    """A new outer header from ``src`` to ``dst`` (packed addresses, same family), AH, ``inner``.

    IPv4 outer: identification ``ident``, TOS and DF copied from an IPv4 inner packet. IPv6 outer:
    traffic class copied from an IPv6 inner packet.
    """
    next_header = 4 if inner[0] >> 4 == 4 else 41
    ah_len = codec.lengths[4 if len(src) == 4 else 6]
    if len(src) == 4:
        tos = inner[1] if next_header == 4 else 0
        df = next_header == 4 and bool(inner[6] & 0x40)
        header = build_ipv4_header(src, dst, IPPROTO_AH, ah_len + len(inner), ident, tos=tos, df=df)
    else:
        tclass = (int.from_bytes(inner[0:2], "big") >> 4) & 0xFF if next_header == 41 else 0
        header = build_ipv6_header(src, dst, IPPROTO_AH, ah_len + len(inner), traffic_class=tclass)
    return _seal(codec, header, next_header, seq, inner)


def encapsulate_transport(codec: AhCodec, packet: bytes, seq: int) -> bytes:
    """``packet`` with AH inserted after its IP header (IPv6: after the fixed header)."""
    header, protocol, payload = split_transport(packet)
    ah_len = codec.lengths[header[0] >> 4]
    new_header = transport_header(header, IPPROTO_AH, ah_len + len(payload))
    return _seal(codec, new_header, protocol, seq, payload)


def peek(packet: bytes) -> tuple[int, int, int]:
    """(AH offset, SPI, sequence number) of an IP packet carrying AH; :class:`Drop` ``malformed``."""
    if not packet:
        raise Drop("malformed", "empty packet")
    version = packet[0] >> 4
    if version == 4:
        offset = (packet[0] & 15) * 4
        if offset < 20 or len(packet) < offset + 12 or packet[9] != IPPROTO_AH:
            raise Drop("malformed", "not an IPv4 packet carrying AH")
    elif version == 6:
        offset = 40
        if len(packet) < 52 or packet[6] != IPPROTO_AH:
            raise Drop("malformed", "not an IPv6 packet with AH after the fixed header")
    else:
        raise Drop("malformed", f"IP version {version}")
    _nh, _plen, _res, spi, seq = _AH.unpack_from(packet, offset)
    return offset, spi, seq


def _end(packet: bytes) -> int:
    end: int = _U16.unpack_from(packet, 2)[0] if packet[0] >> 4 == 4 else 40 + _U16.unpack_from(packet, 4)[0]
    if end > len(packet):
        raise Drop("malformed", "IP length beyond the packet")
    return end


def verify(codec: AhCodec, packet: bytes) -> tuple[int, int, int] | None:
    """(next header, AH offset, AH end, as offsets into ``packet``) after the ICV verified, or None
    when it does not. :class:`Drop` ``malformed`` for impossible lengths."""
    offset = peek(packet)[0]
    end = _end(packet)
    ah_len = (packet[offset + 1] + 2) * 4
    if ah_len < 12 + codec.icv_len or offset + ah_len > end:
        raise Drop("malformed", f"AH length {ah_len}")
    icv_at = offset + 12
    buf = bytearray(packet[:end])
    _zero_mutable(buf, packet[0] >> 4)
    buf[icv_at : icv_at + codec.icv_len] = bytes(codec.icv_len)
    if not codec.integrity.verify(packet[icv_at : icv_at + codec.icv_len], bytes(buf)):
        return None
    return packet[offset], offset, offset + ah_len


def decapsulate(codec: AhCodec, packet: bytes, transport: bool) -> tuple[int, bytes]:
    """(next header, packet without AH): for tunnel mode the inner packet; for transport mode the
    IP header rewritten (protocol, length, checksum) followed by the payload. :class:`Drop` ``icv``
    when the ICV does not verify. Replay protection is the caller's."""
    result = verify(codec, packet)
    if result is None:
        raise Drop("icv", f"AH ICV mismatch on SPI {codec.spi:#010x}")
    return strip(packet, result, transport)


def strip(packet: bytes, verified: tuple[int, int, int], transport: bool) -> tuple[int, bytes]:
    """What :func:`decapsulate` returns, from :func:`verify`'s result."""
    next_header, offset, ah_end = verified
    end = _end(packet)
    payload = packet[ah_end:end]
    if not transport:
        return next_header, payload
    return next_header, transport_header(packet[:offset], next_header, len(payload)) + payload
