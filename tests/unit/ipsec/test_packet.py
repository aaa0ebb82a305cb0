"""Header parsing and building, checksums, RFC 3948 helpers, the SPD."""

from __future__ import annotations

import struct

import pytest

from snakeswan.errors import LocalError
from snakeswan.ipsec.packet import (
    Drop,
    address_bytes,
    build_ipv4_header,
    build_ipv6_header,
    checksum,
    five_tuple,
    split_transport,
    transport_header,
)
from snakeswan.ipsec.spd import Policy, Spd
from snakeswan.ipsec.udpencap import classify, fix_checksum, incremental_update
from tests.unit.ipsec.helpers import ip_packet, selector

V4 = int.from_bytes(address_bytes("10.1.0.5"), "big"), int.from_bytes(address_bytes("10.2.0.7"), "big")


def test_checksum_rfc1071_example() -> None:
    # RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (checksum 220d)
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    assert checksum(b"\x01") == ~0x0100 & 0xFFFF


def test_ipv4_header_fields() -> None:
    h = build_ipv4_header(address_bytes("192.0.2.1"), address_bytes("192.0.2.2"), 50, 100, 7, tos=4, df=True)
    assert len(h) == 20 and checksum(h) == 0
    assert h[0] == 0x45 and h[1] == 4 and struct.unpack("!H", h[2:4])[0] == 120
    assert h[6] & 0x40 and h[8] == 64 and h[9] == 50
    with pytest.raises(Drop):
        build_ipv4_header(bytes(4), bytes(4), 50, 70000, 0)


def test_five_tuple_v4_udp_tcp_icmp_fragment() -> None:
    assert five_tuple(ip_packet("10.1.0.5", "10.2.0.7", sport=1, dport=2)) == (4, *V4, 17, 1, 2)
    assert five_tuple(ip_packet("10.1.0.5", "10.2.0.7", proto=6, sport=3, dport=4)) == (4, *V4, 6, 3, 4)
    assert five_tuple(ip_packet("10.1.0.5", "10.2.0.7", proto=1, data=b"\x08\x00\0\0")) == (4, *V4, 1, 8, 0)
    frag = bytearray(ip_packet("10.1.0.5", "10.2.0.7"))
    frag[7] = 10  # fragment offset != 0: no ports
    assert five_tuple(bytes(frag)) == (4, *V4, 17, 0, 0)
    for bad in (b"", b"\x45" + bytes(10), b"\x41" + bytes(30), b"\x70" + bytes(40), b"\x60" + bytes(20)):
        with pytest.raises(Drop):
            five_tuple(bad)


def test_five_tuple_v6_extension_headers() -> None:
    base = ip_packet("fd00:1::5", "fd00:2::7", sport=9, dport=10)
    src = int.from_bytes(address_bytes("fd00:1::5"), "big")
    dst = int.from_bytes(address_bytes("fd00:2::7"), "big")
    assert five_tuple(base) == (6, src, dst, 17, 9, 10)
    # insert a hop-by-hop (8 bytes) and a first fragment header before UDP
    hbh = bytes((44, 0)) + bytes(6)
    frag_first = bytes((17, 0, 0, 0)) + b"\0\0\0\1"
    pkt = base[:6] + b"\x00" + base[7:40] + hbh + frag_first + base[40:]
    assert five_tuple(pkt) == (6, src, dst, 17, 9, 10)
    frag_later = bytes((17, 0, 0, 0x08)) + b"\0\0\0\1"
    pkt = base[:6] + b"\x2c" + base[7:40] + frag_later + base[40:]
    assert five_tuple(pkt) == (6, src, dst, 17, 0, 0)
    with pytest.raises(Drop):
        five_tuple(base[:6] + b"\x00" + base[7:40] + b"\x11")


def test_transport_header_rewrite() -> None:
    pkt = ip_packet("192.0.2.1", "192.0.2.2", proto=6)
    header, proto, payload = split_transport(pkt)
    assert proto == 6 and len(header) == 20 and header + payload == pkt
    new = transport_header(header, 50, 77)
    assert new[9] == 50 and struct.unpack("!H", new[2:4])[0] == 97 and checksum(new) == 0
    v6 = ip_packet("2001:db8::1", "2001:db8::2")
    header, proto, payload = split_transport(v6)
    new = transport_header(header, 50, 77)
    assert new[6] == 50 and struct.unpack("!H", new[4:6])[0] == 77 and new[8:] == v6[8:40]
    assert build_ipv6_header(bytes(16), bytes(16), 50, 5)[:8] == bytes.fromhex("6000000000053240")
    with pytest.raises(Drop):
        split_transport(pkt[:-1])


def test_udpencap_classify() -> None:
    assert classify(b"\xff") == "keepalive"
    assert classify(b"\0\0\0\0" + bytes(28)) == "ike"
    assert classify(b"\0\0\x10\x01" + bytes(28)) == "esp"
    assert classify(b"\x01\x02") == "invalid"


def test_incremental_checksum_rfc1624() -> None:
    data = bytes(range(40))
    old = checksum(data)
    new_data = b"\x12\x34\x56\x78" + data[4:]
    assert incremental_update(old, data[:4], new_data[:4]) == checksum(new_data)


@pytest.mark.parametrize("proto", [6, 17])
def test_fix_checksum_recomputes(proto: int) -> None:
    orig = ip_packet("172.16.0.9", "198.51.100.1", proto=proto, data=b"x" * 33)
    moved = ip_packet("192.0.2.1", "198.51.100.1", proto=proto, data=b"x" * 33)
    fixed = fix_checksum(orig[20:], proto, orig[12:20], moved[12:20])
    assert fixed == moved[20:]
    assert fix_checksum(orig[20:], 1, orig[12:20], moved[12:20]) == orig[20:]
    no_sum = orig[20:26] + b"\0\0" + orig[28:]
    if proto == 17:
        assert fix_checksum(no_sum, 17, orig[12:20], moved[12:20]) == no_sum


# --- SPD ----------------------------------------------------------------------------------------


def test_spd_order_priority_and_cache() -> None:
    spd = Spd()
    ft = five_tuple(ip_packet("10.1.0.5", "10.2.0.7", dport=443, proto=6))
    spd.add(Policy(selector("10.1.0.0/16"), selector("10.2.0.0/16"), "protect", key=("c", "wide")))
    assert spd.lookup(ft).policy.key == ("c", "wide")  # type: ignore[union-attr]
    spd.add(Policy(selector("10.1.0.0/24"), selector("10.2.0.0/24[tcp/443]"), "bypass", priority=-1))
    assert spd.lookup(ft).policy.action == "bypass"  # type: ignore[union-attr]  # the cache was cleared
    spd.add(Policy(selector("10.1.0.5"), selector("10.2.0.7"), "discard", priority=-1))
    assert spd.lookup(ft).policy.action == "bypass"  # type: ignore[union-attr]  # same priority: insertion order
    assert spd.remove(("c", "wide")) == 1
    assert spd.lookup(five_tuple(ip_packet("10.1.9.5", "10.2.0.7"))) is None
    v6 = five_tuple(ip_packet("fd00:1::5", "fd00:2::7"))
    assert spd.lookup(v6) is None


def test_spd_protocol_and_ports() -> None:
    spd = Spd()
    spd.add(
        Policy(
            selector("10.1.0.0/24[udp/1000-2000]"), selector("10.2.0.0/24[udp/53]"), "protect", key=("c", "d")
        )
    )
    assert spd.lookup(five_tuple(ip_packet("10.1.0.5", "10.2.0.7", sport=1500, dport=53))) is not None
    assert spd.lookup(five_tuple(ip_packet("10.1.0.5", "10.2.0.7", sport=999, dport=53))) is None
    assert spd.lookup(five_tuple(ip_packet("10.1.0.5", "10.2.0.7", proto=6, sport=1500, dport=53))) is None


def test_policy_validation() -> None:
    with pytest.raises(LocalError):
        Policy(selector("10.1.0.0/24"), selector("10.2.0.0/24"), "protect")
    with pytest.raises(LocalError):
        Policy(selector("10.1.0.0/24"), selector("10.2.0.0/24"), "allow")
    with pytest.raises(LocalError):
        Policy(selector("10.1.0.0/24"), selector("fd00::/64"), "bypass")
    with pytest.raises(LocalError):
        Spd().add(Policy(selector("dynamic"), selector("10.2.0.0/24"), "bypass"))
    with pytest.raises(LocalError):
        Spd().add(Policy(selector("10.1.0.0/24[tcp]"), selector("10.2.0.0/24[udp]"), "bypass"))
