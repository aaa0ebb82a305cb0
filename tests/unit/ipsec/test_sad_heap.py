"""SA time limits from the heap: events in deadline order with thousands of SAs installed, none for
SAs removed before their time, soft then hard for each, and get_timer the next live deadline."""

from __future__ import annotations

import random

from snakeswan.ipsec import Expired, Processor
from tests.unit.ipsec.helpers import counter_rng, sa_params


def events(p: Processor) -> list[Expired]:
    out = []
    while (ev := p.next_event()) is not None:
        assert isinstance(ev, Expired)
        out.append(ev)
    return out


def test_thousands_of_sas_expire_in_deadline_order() -> None:
    p = Processor(counter_rng())
    rng = random.Random(7)
    lifetimes = {}
    for i in range(3000):
        soft = float(rng.randrange(10, 1000))
        spi_in, spi_out = 0x10000 + 2 * i, 0x10001 + 2 * i
        extra = {"soft_seconds": soft, "hard_seconds": soft + 5.0}
        p.install(
            sa_params("aes128gcm16", spi_in, **extra),
            sa_params("aes128gcm16", spi_out, **extra),
            ("c", f"k{i}"),
            now=0.0,
        )
        lifetimes[spi_in] = soft
    removed = {0x10000 + 2 * i for i in range(0, 3000, 3)}
    for spi_in in removed:
        p.remove(spi_in)
    expected_first = min(s for spi, s in lifetimes.items() if spi not in removed)
    assert p.get_timer() == expected_first
    seen: list[tuple[float, int, str]] = []
    now = 0.0
    while (deadline := p.get_timer()) is not None:
        assert deadline >= now
        now = deadline
        p.handle_timer(now)
        for ev in events(p):
            seen.append((now, ev.spi, ev.kind))
    live = {spi: s for spi, s in lifetimes.items() if spi not in removed}
    assert len(seen) == 4 * len(live)  # soft and hard, both directions
    for spi_in, soft in live.items():
        mine = [(t, kind) for t, spi, kind in seen if spi in (spi_in, spi_in + 1)]
        assert mine == [(soft, "soft"), (soft, "soft"), (soft + 5.0, "hard"), (soft + 5.0, "hard")]
    assert not any(spi in removed or spi - 1 in removed for _t, spi, _k in seen)
    assert p.sad.all() == [] and p.get_timer() is None
