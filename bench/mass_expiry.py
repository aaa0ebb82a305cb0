"""The longest single engine call while N half-open SAs (a spoofed MM1 flood) time out together:
with the per-call bound (ike/timers.py PER_TICK) against the same engine without it, in one run.

The daemon's event loop runs nothing else during one engine call, so the longest call is the
longest gap an established tunnel's packets can see. Run: python bench/mass_expiry.py [--n 20000].
Prints figures and their ratio; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from snakeswan.ike import timers  # noqa: E402
from tests.unit.ike.test_anti_clogging import real_mm1, responder  # noqa: E402


def expire(n: int, per_tick: int | None) -> tuple[float, float, int]:
    """(longest call s, all calls s, calls) for ``n`` half-open SAs timing out."""
    timers.PER_TICK = per_tick  # type: ignore[assignment]
    b = responder()
    mm1 = real_mm1()
    for i in range(n):
        src = (f"10.231.{100 + i // 250}.{i % 250 + 1}", 500)
        b.receive_datagram(i.to_bytes(8, "big") + mm1[8:], src, ("10.231.0.2", 500), 0.0)
    b.datagrams_to_send(0.0)
    longest = total = 0.0
    calls = 0
    while (due := b.get_timer()) is not None:
        t0 = time.perf_counter()
        b.handle_timer(due)
        b.datagrams_to_send(due)
        while b.next_event() is not None:
            pass
        dt = time.perf_counter() - t0
        longest, total, calls = max(longest, dt), total + dt, calls + 1
    assert not b.ike_sas
    return longest, total, calls


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    args = ap.parse_args()
    bound = timers.PER_TICK
    base = expire(args.n, None)
    ours = expire(args.n, bound)
    print(f"{args.n} half-open SAs timing out together")
    for label, (longest, total, calls) in (("unbounded (baseline)", base), (f"PER_TICK={bound}", ours)):
        print(f"  {label:22} longest call {longest * 1000:8.1f} ms, all {total:.2f} s in {calls} calls")
    print(f"  longest call: {base[0] / ours[0]:.0f}x shorter; total work ratio {ours[1] / base[1]:.2f}")


if __name__ == "__main__":
    main()
