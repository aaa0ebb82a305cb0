"""Data-plane workers (``[daemon] workers``): a snakeswan pair with 1 worker a side against the same
pair with N, in the same run and namespaces; prints Mbit/s, the ratio and CPU per Gbit (asserts
nothing).

    python bench/workers.py [--workers 2] [--children 4] [--time 5] [--repeat 3] [--esp aes128gcm16]
                            [--encap]

Topology as ``bench/throughput.py``'s: west (LAN 10.231.1.1) -- veth -- east (LAN 10.231.2.0/24
with an address in each of ``--children`` blocks). The connection has one child per block, so
one SA pair each; an IKEv1 SA cannot be split between workers, so the workers spread SAs, not
packets of one SA (``daemon/workers.py``): the pair's owner is its inbound SPI mod N, and the bench
prints how the children's pairs fell on each side. One iperf3 TCP stream per child, all at once.
CPU: the IPsec processes (the daemons and their workers) and the whole machine, per Gbit moved.
``--encap``: ESP-in-UDP (``encap = true``, as clients behind NAT), steered to the workers by the
NAT-T port's SO_REUSEPORT group instead of the raw sockets' filters.

On a machine with fewer cores than the processes that want them (two daemons, their workers,
iperf3 and the kernel) expect no gain: the measure is whether it scales where there are cores,
and what it costs where there are not.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT), str(ROOT / "bench")]

from throughput import PSK, _busy, _ticks  # noqa: E402

from tests.daemons import DaemonProcess, wait_for  # noqa: E402
from tests.netns import Netns, Topology, site_to_site  # noqa: E402

WEST, EAST = "10.231.0.1", "10.231.0.2"


def blocks(children: int) -> list[ipaddress.IPv4Network]:
    prefix = 24 + max(0, (children - 1).bit_length())
    return list(ipaddress.ip_network("10.231.2.0/24").subnets(new_prefix=prefix))[:children]


def conf(side: str, workers: int, esp: str, children: int, encap: bool = False) -> str:
    local, remote = (WEST, EAST) if side == "west" else (EAST, WEST)
    out = f"""[daemon]
workers = {workers}
[connections.gw]
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
proposals = ["aes128-sha256-modp2048"]
encap = {"true" if encap else "false"}
local = {{ auth = "psk" }}
remote = {{ auth = "psk" }}
[secrets.ike-gw]
id = ["{local}", "{remote}"]
secret = "{PSK}"
"""
    for i, block in enumerate(blocks(children)):
        lts, rts = ("10.231.1.0/24", str(block)) if side == "west" else (str(block), "10.231.1.0/24")
        out += f"""[connections.gw.children.c{i}]
local_ts = ["{lts}"]
remote_ts = ["{rts}"]
esp_proposals = ["{esp}"]
"""
    return out


def ipsec_pids(d: DaemonProcess) -> list[int]:
    pids = [d.proc.pid]
    pids += [w["pid"] for w in d.cmd("list-pols")["workers"] if w.get("pid") and w["pid"] != d.proc.pid]
    return pids


def owners(d: DaemonProcess, workers: int) -> list[int]:
    """How many pairs each worker owns on this side (the inbound SPI mod N)."""
    counts = [0] * workers
    for sa in d.sas():
        for c in sa["children"]:
            counts[int(c["spi_in"], 16) % workers] += 1
    return counts


def run(
    workers: int, esp: str, children: int, seconds: float, work: Path, encap: bool = False
) -> tuple[float, float, float, str]:
    with Topology() as topo:
        west, east = site_to_site(topo)
        hosts = [str(next(b.hosts())) if i else "10.231.2.1" for i, b in enumerate(blocks(children))]
        for h in hosts[1:]:
            east.ip("addr", "add", f"{h}/24", "dev", "ssw-lan")
        sides = {}
        for ns, name in ((east, "east"), (west, "west")):
            d = DaemonProcess(
                work, name, conf(name, workers, esp, children, encap), netns=ns.name, log_level="warning"
            )
            topo.on_close(d.stop)
            sides[name] = d
        w = sides["west"]
        w.cmd("up", conn="gw")
        wait_for(lambda: w.sas() and len(w.sas()[0]["children"]) == children, timeout=30, what="the children")
        spread = f"west {owners(w, workers)} east {owners(sides['east'], workers)}"
        pids = ipsec_pids(w) + ipsec_pids(sides["east"])
        return (*streams(west, east, hosts, seconds, pids), spread)


def streams(
    west: Netns, east: Netns, hosts: list[str], seconds: float, pids: list[int]
) -> tuple[float, float, float]:
    servers = [east.popen("iperf3", "-s", "-1", "-B", h, stdout=subprocess.DEVNULL) for h in hosts]
    time.sleep(0.5)
    try:
        hz = os.sysconf("SC_CLK_TCK")
        ticks, busy, start = sum(map(_ticks, pids)), _busy(), time.monotonic()
        clients = [
            west.popen(
                "iperf3", "-c", h, "-B", "10.231.1.1", "-t", str(seconds), "-J", stdout=subprocess.PIPE
            )
            for h in hosts
        ]
        outs = [c.communicate(timeout=seconds + 30)[0] for c in clients]
        elapsed = time.monotonic() - start
        ipsec, machine = (sum(map(_ticks, pids)) - ticks) / hz, _busy() - busy
        mbits = sum(float(json.loads(o)["end"]["sum_received"]["bits_per_second"]) / 1e6 for o in outs)
        scale = seconds / elapsed if elapsed > seconds else 1.0
        gbit = mbits * seconds / 1000
        return mbits, ipsec * scale / gbit, machine * scale / gbit
    finally:
        for s in servers:
            s.kill()
            s.wait(5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2, help="workers a side in the compared pair")
    ap.add_argument("--children", type=int, default=4, help="children (SA pairs), one stream each")
    ap.add_argument("--time", type=float, default=5.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--esp", default="aes128gcm16")
    ap.add_argument("--encap", action="store_true", help="ESP-in-UDP (encap = true)")
    args = ap.parse_args()
    results: dict[int, list[tuple[float, float, float, str]]] = {1: [], args.workers: []}
    with tempfile.TemporaryDirectory(prefix="snakeswan-bench-") as tmp:
        for r in range(args.repeat):  # alternating rounds
            for n, samples in results.items():
                work = Path(tmp) / f"{n}-{r}"
                work.mkdir()
                samples.append(run(n, args.esp, args.children, args.time, work, args.encap))
                mbits, _, _, spread = samples[-1]
                print(f"round {r + 1}, {n} worker(s): {mbits:.0f} Mbit/s, pairs by worker: {spread}")
    base = statistics.median(x[0] for x in results[1])
    what = f"{args.children} streams (one per child SA), {args.time:g} s x {args.repeat} rounds"
    print(f"\niperf3 TCP, {what}, {args.esp}{', ESP-in-UDP' if args.encap else ''}")
    print(
        f"{'workers a side':<16} {'min':>8} {'median':>8} {'max':>8} {'ratio':>6} {'IPsec':>6} {'machine':>7}"
    )
    for n, samples in results.items():
        mb = [x[0] for x in samples]
        med = statistics.median(mb)
        cpu = statistics.median(x[1] for x in samples)
        busy = statistics.median(x[2] for x in samples)
        print(f"{n:<16} {min(mb):8.1f} {med:8.1f} {max(mb):8.1f} {med / base:5.2f}x {cpu:6.2f} {busy:7.2f}")
    print("(Mbit/s; ratio of medians against 1 worker; CPU seconds per Gbit moved)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
