"""What the raw ESP sockets of N data-plane workers cost the kernel per packet (``[daemon]
workers``): every raw socket of protocol 50 gets a clone of every ESP packet, and the SPI filters
(``io/steering.py``) drop all but one. Prints, for each N in the same run, the packets a second one
sender pushes through and its CPU (system) microseconds per packet, which include the receiving
namespace's softirq; ratios against N = 1 (asserts nothing).

    python bench/raw_fanout.py [--workers 1 2 8 32] [--time 3] [--repeat 3]

Topology: west 10.231.0.1 -- veth -- east 10.231.0.2. East holds N steered raw ESP sockets and
drains the one that owns the SPI sent (a process of its own); west sends 64-packet ``sendmmsg``
batches of 1,400-byte ESP packets as fast as it can.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.netns import Topology, veth  # noqa: E402

RECEIVER = """
import select, sys, time
sys.path.insert(0, sys.argv[3])
from snakeswan.io.rawip import ESP, RawIp
n, seconds = int(sys.argv[1]), float(sys.argv[2])
socks = [RawIp(ESP, steer=(k, n)) if n > 1 else RawIp(ESP) for k in range(n)]
print("ready", flush=True)
got, end = 0, time.monotonic() + seconds + 2
while time.monotonic() < end:
    if select.select([socks[0]], [], [], 0.2)[0]:
        got += len(socks[0].receive_payloads(256))
print(got, flush=True)
"""

SENDER = """
import os, struct, sys, time
sys.path.insert(0, sys.argv[2])
from snakeswan.io.rawip import ESP, RawIp
seconds = float(sys.argv[1])
tx = RawIp(ESP)
batch = [(struct.pack("!II", 0x100, i) + bytes(1392), "10.231.0.2", None) for i in range(64)]
sent, start, t0 = 0, time.monotonic(), os.times()
while time.monotonic() - start < seconds:
    sent += tx.send_many(batch)
t1 = os.times()
print(sent, t1.system - t0.system, t1.user - t0.user, time.monotonic() - start, flush=True)
"""


def run(workers: int, seconds: float) -> tuple[float, float, int]:
    """(packets a second, sender system µs a packet, packets the owner received)."""
    with Topology() as topo:
        west, east = topo.add("west"), topo.add("east")
        veth(west, "w0", "10.231.0.1/24", east, "e0", "10.231.0.2/24")
        src = str(ROOT / "src")
        rx = east.popen(
            sys.executable, "-c", RECEIVER, str(workers), str(seconds), src, stdout=subprocess.PIPE, text=True
        )
        try:
            assert rx.stdout is not None and rx.stdout.readline().strip() == "ready"
            out = west.run(
                sys.executable, "-c", SENDER, str(seconds), src, timeout=seconds + 30
            ).stdout.split()
            received = int(rx.communicate(timeout=seconds + 30)[0].strip())
        finally:
            if rx.poll() is None:
                rx.kill()
                rx.wait()
        sent, system, _user, elapsed = int(out[0]), float(out[1]), float(out[2]), float(out[3])
        return sent / elapsed, system / sent * 1e6, received


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 8, 32])
    ap.add_argument("--time", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    results: dict[int, list[tuple[float, float, int]]] = {n: [] for n in args.workers}
    for _ in range(args.repeat):  # alternating rounds
        for n, samples in results.items():
            samples.append(run(n, args.time))
            time.sleep(0.2)
    base_pps = statistics.median(x[0] for x in results[args.workers[0]])
    base_us = statistics.median(x[1] for x in results[args.workers[0]])
    print(f"1,400-byte ESP packets, one sender, {args.time:g} s x {args.repeat} rounds (medians)")
    head = f"{'raw ESP sockets':<16} {'kpps':>8} {'ratio':>6} {'sender sys us/pkt':>18} {'ratio':>6}"
    print(f"{head} {'owner got':>10}")
    for n, samples in results.items():
        pps = statistics.median(x[0] for x in samples)
        us = statistics.median(x[1] for x in samples)
        got = statistics.median(x[2] for x in samples)
        print(f"{n:<16} {pps / 1000:8.1f} {pps / base_pps:5.2f}x {us:18.2f} {us / base_us:5.2f}x {got:10.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
