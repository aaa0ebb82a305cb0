"""Anti-clogging (RFC 2408 2.5.3, issue 15): spoofed MM1s from many addresses get one MM2 each,
never retransmitted and never larger than the MM1; half-open SAs time out, are capped in total
(the oldest makes room) and per address; a real peer connecting during the flood gets its tunnel."""

from __future__ import annotations

from snakeswan.config.loader import parse_config
from snakeswan.ike.engine import Engine
from snakeswan.ike.events import ChildSaEstablished
from snakeswan.trace import Tracer
from snakeswan.wire.enums import ExchangeType
from snakeswan.wire.message import decode_header
from tests.pair import A_ADDR, B_ADDR, Pair, rng_for, site_config

LAN_A, LAN_B = "10.231.1.0/24", "10.231.2.0/24"


def responder(extra: str = "") -> Engine:
    text = site_config(B_ADDR, A_ADDR, LAN_B, LAN_A, remote_addrs="%any")
    text = text.replace("[connections.site]", f"[daemon]\n{extra}\n[connections.site]")
    return Engine(parse_config(text, "b.toml"), rng_for(5), tracer=Tracer(keep=100))


def real_mm1() -> bytes:
    a = Engine(parse_config(site_config(A_ADDR, B_ADDR, LAN_A, LAN_B), "a.toml"), rng_for(9), tracer=Tracer())
    a.initiate("site", now=0.0)
    [d] = a.datagrams_to_send(0.0)
    return d.data


def spoofed(mm1: bytes, n: int) -> tuple[bytes, tuple[str, int]]:
    return n.to_bytes(8, "big") + mm1[8:], (f"10.231.{100 + n // 250}.{n % 250 + 1}", 500)


def test_spoofed_mm1s_get_one_small_mm2_each_and_time_out() -> None:
    b = responder()
    mm1 = real_mm1()
    bytes_in = bytes_out = 0
    for n in range(2000):
        data, src = spoofed(mm1, n)
        b.receive_datagram(data, src, (B_ADDR, 500), 0.0)
        bytes_in += len(data)
    out = b.datagrams_to_send(0.0)
    assert len(out) == 2000 and all(
        decode_header(d.data).exchange == ExchangeType.IDENTITY_PROTECTION for d in out
    )
    bytes_out = sum(len(d.data) for d in out)
    assert bytes_out <= bytes_in and all(len(d.data) <= len(mm1) for d in out)
    assert len(b.table.half_open) == 2000
    # nothing is retransmitted to the addresses that never answered; they are gone after 30 s
    now = 0.0
    while (t := b.get_timer()) is not None and t <= 60.0:
        now = t
        b.handle_timer(now)
        assert not b.datagrams_to_send(now)
    assert not b.ike_sas and not b.table.half_open
    assert len(list(b.tracer.find("half_open_timeout"))) > 0


def test_half_open_limit_evicts_the_oldest_and_per_address_cap() -> None:
    b = responder("half_open_limit = 100\nhalf_open_per_source = 3")
    mm1 = real_mm1()
    for n in range(250):
        data, src = spoofed(mm1, n)
        b.receive_datagram(data, src, (B_ADDR, 500), 0.0)
    assert len(b.table.half_open) == 100 and len(b.ike_sas) == 100
    assert min(sa.unique_id for sa in b.ike_sas) == 151  # the 150 oldest made room
    for n in range(5):  # one address: three half-open SAs at most
        b.receive_datagram((9000 + n).to_bytes(8, "big") + mm1[8:], ("10.231.99.9", 500), (B_ADDR, 500), 0.0)
    assert b.table.half_open_from("10.231.99.9") == 3


def test_a_real_peer_gets_its_tunnel_during_a_flood() -> None:
    a_conf = site_config(A_ADDR, B_ADDR, LAN_A, LAN_B)
    b_conf = site_config(B_ADDR, A_ADDR, LAN_B, LAN_A, remote_addrs="%any").replace(
        "[connections.site]", "[daemon]\nhalf_open_limit = 300\n[connections.site]"
    )
    p = Pair(a_conf, b_conf)
    mm1 = real_mm1()
    p.a.engine.initiate("site", now=p.now)
    flood = 0
    for _ in range(40):  # 100 spoofed MM1s per round trip of the real negotiation
        for _ in range(100):
            data, src = spoofed(mm1, flood)
            p.b.engine.receive_datagram(data, src, (B_ADDR, 500), p.now)
            flood += 1
        out = p.b.engine.datagrams_to_send(p.now)  # the MM2s to spoofed addresses go nowhere
        p.b.engine.ctx.outbox.extend(d for d in out if d.dst[0] == A_ADDR)
        p.step()
    assert p.of(p.a, ChildSaEstablished) and p.of(p.b, ChildSaEstablished)
    # the table held a few round trips' worth of flood: the spoofed SAs evicted each other
    assert len(p.b.engine.table.half_open) <= 300 and flood == 4000
    assert len(list(p.b.engine.tracer.find("half_open_evicted"))) > 0
