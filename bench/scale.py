"""Cost per datagram and per timer as the number of SAs grows (issue 15), one process, in memory.

A responder engine ("hub") holds N IKE SAs (+ one IPsec SA each) from one initiator engine with N
connections (bench/handshake.py's spokes, ECP-256, no PFS, to build N quickly). At each N it prints:

- ``one more tunnel``: CPU ms of both ends for 20 further MM+QM handshakes (mean): flat if nothing
  on the path walks all SAs;
- ``get_timer``: the engine's next timer after one SA was touched (what the daemon calls after
  every datagram), through the heaps, against the old way measured in the same run (a scan of
  every SA, ``Timers.scan_due``), and their ratio;
- ``handle_timer``: a timer tick with nothing due.

Run: python bench/scale.py [--n 1000 5000 20000]. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]
_spec = importlib.util.spec_from_file_location("handshake", ROOT / "bench" / "handshake.py")
assert _spec is not None and _spec.loader is not None
hs = importlib.util.module_from_spec(_spec)
sys.modules["handshake"] = hs
_spec.loader.exec_module(hs)

from snakeswan.config.loader import parse_config  # noqa: E402
from snakeswan.ike.engine import Engine  # noqa: E402
from snakeswan.trace import Tracer  # noqa: E402

VARIANT = next(v for v in hs.VARIANTS if v.key == "ecp")


def per_call(fn, reps: int) -> float:  # type: ignore[no-untyped-def]
    t0 = time.process_time()
    for _ in range(reps):
        fn()
    return (time.process_time() - t0) / reps


def measure(n: int) -> dict[str, float]:
    hub = Engine(
        parse_config(hs.HUB.format(ike=VARIANT.ike, esp=VARIANT.esp), "hub.toml"),
        os.urandom,
        tracer=Tracer(keep=64),
    )
    spoke = hs.spokes(VARIANT, 0, n + 20)
    hs.establish(spoke, hub, 0, n)
    sas = hub.ike_sas
    extra0 = time.process_time()
    hs.establish(spoke, hub, n, 20)
    one_more = (time.process_time() - extra0) / 20
    one = sas[n // 2]

    def heap() -> None:
        hub.timers.touch(one)
        hub.get_timer()

    def scan() -> None:
        hub.timers.scan_due(hub.ike_sas)

    hub.get_timer()  # the SAs the handshakes touched are rescheduled once, before timing
    reps = max(200, 200_000 // n)
    t_heap = per_call(heap, reps * 10)
    t_scan = per_call(scan, reps)
    t_tick = per_call(lambda: hub.handle_timer(hs.NOW), reps * 10)
    return {"n": n, "one_more_ms": one_more * 1e3, "heap_us": t_heap * 1e6, "scan_us": t_scan * 1e6,
            "tick_us": t_tick * 1e6, "sas": len(hub.ike_sas)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 5000])
    args = ap.parse_args()
    head = ("N", "one more tunnel", "get_timer heap", "scan (old)", "scan/heap", "tick")
    print("{:>7} {:>16} {:>15} {:>12} {:>10} {:>9}".format(*head))
    rows = [measure(n) for n in args.n]
    for r in rows:
        print(
            f"{r['n']:>7} {r['one_more_ms']:>13.2f} ms {r['heap_us']:>12.2f} us {r['scan_us']:>9.1f} us"
            f" {r['scan_us'] / r['heap_us']:>9.0f}x {r['tick_us']:>6.2f} us"
        )
    first, last = rows[0], rows[-1]
    print(
        f"N {first['n']} -> {last['n']}: one more tunnel x{last['one_more_ms'] / first['one_more_ms']:.2f}, "
        f"get_timer x{last['heap_us'] / first['heap_us']:.2f} "
        f"(scan x{last['scan_us'] / first['scan_us']:.1f})"
    )


if __name__ == "__main__":
    main()
