"""Overload shedding before parsing (ike/shedding.py): known cookies always pass, new IKE SAs under
a budget with the quietest sources first, strays dropped, all counted."""

from __future__ import annotations

from snakeswan.ike.shedding import OVER_BUDGET, SHORT, UNKNOWN, ZERO, Shedder, prefix_of

KNOWN = (b"K" * 8, b"R" * 8)


def dgram(icookie: bytes, rcookie: bytes = ZERO) -> bytes:
    return icookie + rcookie + bytes(12) + b"x" * 100


def shedder(**kw: float) -> Shedder[str]:
    return Shedder(lambda i, r: (i, r) == KNOWN, **kw)  # type: ignore[arg-type]


def flood(n: int, prefix: bytes = b"\x0a\xe7\x80", start: int = 0) -> list[tuple[bytes, bytes, str]]:
    return [(dgram((start + i).to_bytes(8, "big")), prefix, f"f{start + i}") for i in range(n)]


def test_prefix_is_slash24_or_slash64() -> None:
    assert prefix_of(bytes([10, 231, 0, 1])) == bytes([10, 231, 0])
    assert prefix_of(bytes(range(16))) == bytes(range(8))


def test_under_budget_everything_passes_in_order_known_first() -> None:
    s = shedder(rate=1000, burst=10)
    batch = [*flood(3), (dgram(*KNOWN), b"p", "known")]
    assert s.sort(batch, 0.0) == ["known", "f0", "f1", "f2"]
    assert not s.dropped


def test_strays_and_short_datagrams_are_dropped_unparsed() -> None:
    s = shedder()
    batch = [(b"short", b"p", "a"), (dgram(b"A" * 8, b"B" * 8), b"p", "b"), (dgram(*KNOWN), b"p", "c")]
    assert s.sort(batch, 0.0) == ["c"]
    assert s.dropped == {SHORT: 1, UNKNOWN: 1}


def test_known_cookies_pass_whatever_the_load() -> None:
    s = shedder(rate=0, burst=0)
    out = s.sort([*flood(500), (dgram(*KNOWN), b"p", "known")], 0.0, backlog=True)
    assert out == ["known"]
    assert s.dropped[OVER_BUDGET] == 500 - s.waiting_room


def test_budget_is_a_token_bucket() -> None:
    s = shedder(rate=100, burst=5)
    assert len(s.sort(flood(20), 0.0)) == 5
    assert s.sort(flood(20, start=100), 0.0) == []  # no tokens left, same instant
    assert len(s.sort(flood(20, start=200), 0.05)) == 5  # 0.05 s x 100/s
    assert s.passed_new == 10


def test_a_quiet_source_goes_first_under_a_flood() -> None:
    s = shedder(rate=1000, burst=3)
    s.sort(flood(300), 0.0)  # the flood's prefix is loud from now on
    legit = (dgram(b"L" * 8), bytes([10, 231, 0]), "legit")
    out = s.sort([*flood(100, start=300), legit, *flood(100, start=400)], 0.01)
    assert len(out) == 3 and "legit" in out  # 3 tokens (the burst) for 265: the quiet one has one


def test_a_quiet_source_waits_for_the_next_token_instead_of_being_dropped() -> None:
    s = shedder(rate=100, burst=1)
    s.sort(flood(50), 0.0)  # takes the only token
    legit = (dgram(b"L" * 8), bytes([10, 231, 0]), "legit")
    assert s.sort([*flood(50, start=50), legit], 0.001) == []  # no token yet: it waits
    assert s.sort(flood(50, start=100), 0.011) == ["legit"]  # the next token is its


def test_waiting_is_bounded_in_count_and_time() -> None:
    s = shedder(rate=10, burst=0, waiting_room=4, max_wait=0.5)
    s.sort(flood(10), 0.0)
    assert s.dropped[OVER_BUDGET] == 6
    assert s.sort([], 0.6) == []  # they waited too long: dropped, not admitted late
    assert s.dropped[OVER_BUDGET] == 10


def test_backlog_lowers_the_budget_for_a_while() -> None:
    s = shedder(rate=1000, burst=1000, rate_under_load=10, burst_under_load=2, hold=1.0)
    assert len(s.sort(flood(10), 0.0, backlog=True)) == 2  # the burst falls to burst_under_load
    assert len(s.sort(flood(100, start=10), 0.5)) == 2  # 0.5 s x 10/s, capped by that burst
    assert len(s.sort(flood(100, start=200), 1.6)) == 100  # pressure over: 1000/s again


def test_prefix_memory_is_bounded() -> None:
    s = shedder(rate=1e9, burst=1e9, max_prefixes=10)
    for i in range(100):
        s.sort([(dgram(i.to_bytes(8, "big")), i.to_bytes(3, "big"), "x")], 0.0)
    assert len(s._recent) == 10


def test_the_engine_knows_the_cookies_its_sas_hold() -> None:
    """What the shedder asks the engine: a responder's SA by both cookies, an initiator's SA
    waiting for the responder's cookie by its own with any responder cookie; nothing else."""
    from snakeswan.config.loader import parse_config  # noqa: PLC0415
    from snakeswan.ike.engine import Engine  # noqa: PLC0415
    from snakeswan.trace import Tracer  # noqa: PLC0415
    from tests.pair import A_ADDR, B_ADDR, rng_for, site_config  # noqa: PLC0415

    a = Engine(parse_config(site_config(A_ADDR, B_ADDR, "10.231.1.0/24", "10.231.2.0/24")), rng_for(1))
    b = Engine(
        parse_config(site_config(B_ADDR, A_ADDR, "10.231.2.0/24", "10.231.1.0/24")),
        rng_for(2),
        tracer=Tracer(),
    )
    a.initiate("site", now=0.0)
    [mm1] = a.datagrams_to_send(0.0)
    icookie = mm1.data[:8]
    assert a.knows(icookie, b"\x01" * 8)  # the responder's answer, whatever its cookie
    assert not b.knows(icookie, ZERO)
    b.receive_datagram(mm1.data, mm1.src, mm1.dst, 0.0)
    [mm2] = b.datagrams_to_send(0.0)
    rcookie = mm2.data[8:16]
    assert b.knows(icookie, rcookie)
    assert not b.knows(icookie, b"\x02" * 8) and not b.knows(b"\x03" * 8, rcookie)
    assert not b.knows(icookie, ZERO)  # an MM1 retransmission is "new" (the budget lets it in)
