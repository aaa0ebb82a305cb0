"""AH (RFC 4302): ICV independent of mutable fields, tunnel and transport, IPv4 and IPv6."""

from __future__ import annotations

import struct

import pytest

from snakeswan.ipsec import ah
from snakeswan.ipsec.packet import Drop, address_bytes, checksum
from tests.unit.ipsec.helpers import AH_ALGORITHMS, ALGORITHMS, OUTER, ip_packet


def codec(alg: str) -> ah.AhCodec:
    _p, tid, _k, auth, _e, int_len = ALGORITHMS[alg]
    return ah.AhCodec(0x5151, tid, auth, bytes(range(int_len)))


def set_ttl(packet: bytes, ttl: int, tos: int = 0) -> bytes:
    """A router's changes: TTL (hop limit), TOS (traffic class), DF flag; IPv4 checksum fixed."""
    buf = bytearray(packet)
    if packet[0] >> 4 == 4:
        buf[8] = ttl
        buf[1] = tos
        buf[6] |= 0x40
        buf[10:12] = b"\0\0"
        buf[10:12] = struct.pack("!H", checksum(bytes(buf[:20])))
    else:
        buf[7] = ttl
        buf[1] = (buf[1] & 0x0F) | 0x30  # traffic class / flow label bits
        buf[3] = 0x99
    return bytes(buf)


def tunnel_packet(alg: str, version: int) -> tuple[ah.AhCodec, bytes, bytes]:
    c = codec(alg)
    inner = ip_packet("10.1.0.5", "10.2.0.7", data=b"tunnelled" * 5)
    src, dst = (address_bytes(a) for a in OUTER[version])
    return c, inner, ah.encapsulate_tunnel(c, inner, 9, src, dst, 0x4242)


@pytest.mark.parametrize("alg", AH_ALGORITHMS)
@pytest.mark.parametrize("version", [4, 6])
def test_tunnel_round_trip_and_mutable_fields(alg: str, version: int) -> None:
    c, inner, packet = tunnel_packet(alg, version)
    assert ah.peek(packet)[1:] == (0x5151, 9)
    offset = 20 if version == 4 else 40
    ah_len = (packet[offset + 1] + 2) * 4
    assert ah_len % (4 if version == 4 else 8) == 0
    assert ah.decapsulate(c, packet, transport=False) == (4, inner)
    # routers change TTL/hop limit, TOS, flags: still verifies
    assert ah.decapsulate(c, set_ttl(packet, 3, 0x20), transport=False) == (4, inner)
    # the payload is covered
    bad = bytearray(packet)
    bad[-1] ^= 1
    with pytest.raises(Drop) as exc:
        ah.decapsulate(c, bytes(bad), transport=False)
    assert exc.value.reason == "icv"


@pytest.mark.parametrize("version", [4, 6])
def test_immutable_header_fields_are_covered(version: int) -> None:
    c, _inner, packet = tunnel_packet("ah-sha256", version)
    bad = bytearray(packet)
    if version == 4:
        bad[4] ^= 1  # identification
        bad[15] ^= 1  # source address
        bad[10:12] = b"\0\0"
        bad[10:12] = struct.pack("!H", checksum(bytes(bad[:20])))
    else:
        bad[23] ^= 1  # source address
    with pytest.raises(Drop) as exc:
        ah.decapsulate(c, bytes(bad), transport=False)
    assert exc.value.reason == "icv"
    bad = bytearray(packet)
    offset = 20 if version == 4 else 40
    bad[offset + 8 + 3] ^= 1  # sequence number
    with pytest.raises(Drop):
        ah.decapsulate(c, bytes(bad), transport=False)


@pytest.mark.parametrize("alg", AH_ALGORITHMS)
@pytest.mark.parametrize("version", [4, 6])
def test_transport_round_trip(alg: str, version: int) -> None:
    c = codec(alg)
    original = ip_packet(*OUTER[version], proto=6, sport=5000, dport=22, data=b"ssh")
    packet = ah.encapsulate_transport(c, original, 1)
    proto = packet[9] if version == 4 else packet[6]
    assert proto == 51
    if version == 4:
        assert checksum(packet[:20]) == 0
        assert struct.unpack("!H", packet[2:4])[0] == len(packet)
    assert ah.decapsulate(c, packet, transport=True) == (6, original)
    assert ah.decapsulate(c, set_ttl(packet, 1), transport=True)[0] == 6


def test_ipv6_icv_padding_to_8() -> None:
    c = codec("ah-sha256")  # 12 + 16 = 28 -> 32 in IPv6, 28 in IPv4
    assert c.lengths == {4: 28, 6: 32}
    assert codec("ah-sha1").lengths == {4: 24, 6: 24}
    assert codec("ah-sha512").lengths == {4: 44, 6: 48}


def test_malformed() -> None:
    c, _inner, packet = tunnel_packet("ah-sha1", 4)
    for bad in (b"", b"\x45" + bytes(30), packet[:25], b"\x75" + packet[1:]):
        with pytest.raises(Drop) as exc:
            ah.decapsulate(c, bad, transport=False)
        assert exc.value.reason == "malformed"
    short = bytearray(packet)
    short[21] = 1  # AH payload length too small for the ICV
    with pytest.raises(Drop) as exc:
        ah.decapsulate(c, bytes(short), transport=False)
    assert exc.value.reason == "malformed"
