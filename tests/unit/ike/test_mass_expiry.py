"""20,000 half-open SAs (a spoofed MM1 flood) time out at once: each engine call handles a bounded
number of them and the rest stay due for the next call (issue 17: the daemon removed 26,594 in one
go and froze for 26 s; an established tunnel's traffic stopped with it)."""

from __future__ import annotations

from snakeswan.ike.timers import PER_TICK
from tests.unit.ike.test_anti_clogging import real_mm1, responder

FLOOD = 20_000


def test_20000_half_open_sas_time_out_in_bounded_steps() -> None:
    b = responder()
    mm1 = real_mm1()
    for n in range(FLOOD):  # spoofed: a new initiator cookie and source address each time
        src = (f"10.231.{100 + n // 250}.{n % 250 + 1}", 500)
        b.receive_datagram(n.to_bytes(8, "big") + mm1[8:], src, ("10.231.0.2", 500), 0.0)
    b.datagrams_to_send(0.0)
    assert len(b.table.half_open) == FLOOD

    fired: list[int] = []
    real_fire_sa = b.timers._fire_sa

    def counting(sa: object, now: float) -> None:
        fired[-1] += 1
        real_fire_sa(sa, now)  # type: ignore[arg-type]

    b.timers._fire_sa = counting  # type: ignore[method-assign]
    removed: list[int] = []
    now = 0.0
    while (due := b.get_timer()) is not None:
        assert len(removed) < 10 * FLOOD, "the timers do not settle"
        now = max(now, due)
        before = len(b.ike_sas)
        fired.append(0)
        b.handle_timer(now)
        removed.append(before - len(b.ike_sas))
        b.datagrams_to_send(now)
        while b.next_event() is not None:
            pass
        if len(b.ike_sas):  # a backlog left: the next call is due at once, not at some later time
            assert b.get_timer() is not None and b.get_timer() <= now  # type: ignore[operator]
    assert not b.ike_sas and not b.table.half_open
    assert sum(removed) == FLOOD
    # the work of one call is bounded: SAs looked at and SAs removed, and the bound is used in full
    assert max(fired) == max(removed) == PER_TICK
    assert len(removed) >= FLOOD // PER_TICK
    assert now == 30.0  # all at the half-open timeout (30 s), spread over calls, none later
