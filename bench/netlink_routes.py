"""Route, rule and address operations: spawning ``ip`` (io.routes.run_ip, what the drivers did
before issue 11) against netlink in process (io.netlink.run_netlink, what they do now), the same
operations in the same run, in a namespace of our own. Prints milliseconds per operation and the
ratio against the ``ip`` baseline.

    python bench/netlink_routes.py [--count 300]

Needs root (a namespace, a veth pair, routes in table 220).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from snakeswan.io.netlink import run_netlink  # noqa: E402
from snakeswan.io.routes import run_ip  # noqa: E402
from tests.integration.test_io_drivers import inside  # noqa: E402
from tests.netns import Topology, veth  # noqa: E402

Runner = Callable[[Sequence[str]], str]


def ops(i: int) -> dict[str, tuple[list[str], list[str]]]:
    """(do, undo) of each operation kind, on the i-th prefix/address."""
    net = f"10.231.{100 + i // 256}.{i % 256}/32"
    return {
        "route replace+del": (
            ["-4", "route", "replace", net, "dev", "b0", "table", "220", "src", "10.231.0.1"],
            ["-4", "route", "del", net, "dev", "b0", "table", "220"],
        ),
        "rule add+del": (
            [
                "-4",
                "rule",
                "add",
                "to",
                net,
                "ipproto",
                "tcp",
                "dport",
                "5201",
                "lookup",
                "main",
                "priority",
                "219",
            ],
            [
                "-4",
                "rule",
                "del",
                "to",
                net,
                "ipproto",
                "tcp",
                "dport",
                "5201",
                "lookup",
                "main",
                "priority",
                "219",
            ],
        ),
        "addr replace+del": (
            ["-4", "addr", "replace", net, "dev", "b0"],
            ["-4", "addr", "del", net, "dev", "b0"],
        ),
    }


def measure(run: Runner, kind: str, count: int) -> float:
    """Milliseconds per operation (a do or an undo), the median of 3 rounds."""
    rounds = []
    for _ in range(3):
        start = time.perf_counter()
        for i in range(count):
            do, undo = ops(i)[kind]
            run(do)
            run(undo)
        rounds.append((time.perf_counter() - start) * 1000 / (2 * count))
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    with Topology() as topo:
        ns, peer = topo.add("nl"), topo.add("peer")
        veth(ns, "b0", "10.231.0.1/24", peer, "p0", "10.231.0.2/24")
        print(f"{'operation':20} {'ip (spawned)':>14} {'netlink':>10} {'speed-up':>9}")
        with inside(ns):
            for kind in ops(0):
                base = measure(run_ip, kind, args.count)
                ours = measure(run_netlink, kind, args.count)
                print(f"{kind:20} {base:11.3f} ms {ours:7.3f} ms {base / ours:8.1f}x")
            left = run_netlink(["-j", "addr", "show"])
            assert "10.231.100." not in left, "every address removed again"


if __name__ == "__main__":
    main()
