"""Processor.outbound_many (the TUN read batch: one policy lookup for the segments of a flow) and
packet.selector_bytes, the header bytes it compares instead."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from snakeswan.ipsec import Acquire, Bypass, Deliver, Expired, Policy, Processor, SendIp
from snakeswan.ipsec.offload import segment
from snakeswan.ipsec.packet import address_bytes, five_tuple, selector_bytes
from tests.unit.ipsec.helpers import INNER, KEY, counter_rng, deliver_to, ip_packet, make_pair, selector
from tests.unit.ipsec.test_offload import super_packet


def delivered(p: object, outs: list[object]) -> list[object]:
    got: list[object] = []
    for o in outs:
        got += deliver_to(p.b, o) if isinstance(o, SendIp) else [o]  # type: ignore[attr-defined,arg-type]
    return got


def test_outbound_many_is_outbound_in_order() -> None:
    p = make_pair("aes128gcm16")
    q = make_pair("aes128gcm16")
    flow = [p.inner(proto=6, sport=5000, data=bytes([i]) * 100) for i in range(5)]
    other = p.inner(proto=17, sport=5001, data=b"other")
    no_policy = ip_packet("10.9.9.9", "10.2.0.7")
    batch = [*flow[:3], other, no_policy, b"\x99", *flow[3:], b"", flow[0]]
    outs = p.a.outbound_many(batch, 1.0)
    one_by_one = [o for packet in batch for o in q.a.outbound(packet, 1.0)]
    assert [type(o) for o in outs] == [type(o) for o in one_by_one]
    expect = [Deliver(x) for x in [*flow[:3], other]] + [Bypass(no_policy)]
    expect += [Deliver(x) for x in [*flow[3:], flow[0]]]
    assert delivered(p, outs) == expect
    assert p.a.drops == q.a.drops == {"malformed": 2}
    assert p.a.counters(0x1001, "out")["packets"] == q.a.counters(0x1001, "out")["packets"] == 7


def test_outbound_many_segments_of_a_super_packet() -> None:
    for version in (4, 6):
        p = make_pair("aes128gcm16", version=version)
        h, big = super_packet(version, bytes(range(256)) * 40, 1300)
        big = bytearray(big)  # the pair's inner addresses (segment() computes every checksum anew)
        src, dst = (address_bytes(a) for a in INNER[version])
        at = 12 if version == 4 else 8
        big[at : at + 2 * len(src)] = src + dst
        segs = segment(h, bytes(big))
        outs = p.a.outbound_many(segs, 2.0)
        assert len(outs) == len(segs) == 8
        assert delivered(p, outs) == [Deliver(s) for s in segs]
        assert p.a.drops == {} and p.b.drops == {}


def test_outbound_many_stops_using_an_sa_that_expired_mid_batch() -> None:
    p = make_pair("aes128gcm16", soft_bytes=3000, hard_bytes=5000)
    packets = [p.inner(data=bytes(972)) for _ in range(7)]  # 1000 bytes each
    outs = p.a.outbound_many(packets, 0.0)
    assert len(outs) == 5  # the hard limit took the SA away after the fifth
    kinds = []
    while (ev := p.a.next_event()) is not None:
        kinds.append((type(ev), getattr(ev, "kind", None)))
    assert kinds == [(Expired, "soft"), (Expired, "hard"), (Acquire, None)]  # the rest is queued
    assert len(p.a.spd.children[KEY].queue) == 2


def test_outbound_many_queues_then_acquires_once() -> None:
    a = Processor(counter_rng())
    a.add_policy(Policy(selector("10.1.0.0/24"), selector("10.2.0.0/24"), "protect", key=KEY))
    packets = [ip_packet(*INNER[4], data=bytes([i])) for i in range(3)]
    assert a.outbound_many(packets, 1.0) == []
    assert isinstance(a.next_event(), Acquire) and a.next_event() is None
    assert a.outbound_many([], 1.0) == []


def test_selector_bytes_shapes() -> None:
    udp = ip_packet(*INNER[4])
    assert selector_bytes(udp) == udp[9:10] + udp[12:24]
    v6 = ip_packet(*INNER[6])
    assert selector_bytes(v6) == v6[6:7] + v6[8:44]
    frag = bytearray(udp)
    frag[7] = 1  # a non-first fragment: no ports
    assert selector_bytes(bytes(frag)) is None
    options = bytes([0x46]) + udp[1:20] + bytes(4) + udp[20:]
    assert selector_bytes(options) is None
    ext = bytearray(v6)
    ext[6] = 0  # hop-by-hop options first
    assert selector_bytes(bytes(ext)) is None
    assert selector_bytes(b"") is None and selector_bytes(udp[:23]) is None


@given(
    st.sampled_from([4, 6]),
    st.sampled_from([1, 6, 17, 47, 58, 132]),
    st.integers(0, 0xFFFF),
    st.binary(min_size=0, max_size=8),
    st.integers(0, 200),
    st.integers(1, 255),
)
def test_equal_selector_bytes_mean_equal_five_tuples(
    version: int, proto: int, port: int, data: bytes, where: int, flip: int
) -> None:
    src, dst = INNER[version]
    a = ip_packet(src, dst, proto=proto, sport=port, dport=port ^ 0x5A5A, data=data)
    b = bytearray(a)
    b[where % len(b)] ^= flip
    ka, kb = selector_bytes(a), selector_bytes(bytes(b))
    if ka is not None and ka == kb:
        assert five_tuple(a) == five_tuple(bytes(b))
