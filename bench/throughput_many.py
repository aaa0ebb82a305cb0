"""iperf3 TCP through one tunnel of a snakeswan gateway that also holds N-1 idle negotiated SAs
and their policies (a remote-access hub), against the same gateway holding only that tunnel, in
the same run (alternating rounds); prints Mbit/s min/median/max and the ratio (asserts nothing).

    python bench/throughput_many.py [--n 10000] [--time 5] [--repeat 3] [--esp aes128gcm16]
                                    [--procs 2] [--direction both|to|from] [--ike ...]

Two copies of one topology, built once each and kept for the whole run:

    west 10.231.0.1 (LAN 10.231.1.1) -- veth -- east 10.231.0.2 (LAN 10.231.2.1, the gateway)
                                                 east 10.231.5.2 -- veth -- load 10.231.5.1

The gateway (``snakeswan daemon`` in east, data plane on its TUN) has two connections: ``gw`` for
the real peer (a ``snakeswan daemon`` in west, LAN to LAN, PSK) and ``hub`` for ``%any`` peers on
10.231.5.2 with a Mode Config pool. In the "many" copy, ``snakeswan load`` in the load namespace
brings up N-1 simulated peers on ``hub`` (Main Mode PSK, each its own identity, a virtual IP
from the pool, Quick Mode 10.231.2.0/24 <-> its virtual IP), so the gateway holds N IPsec SA pairs
and N policies (``hub``'s keyed per peer, ``lan@<vip>/32``) and routes N-1 /32s into its TUN;
then the load generator exits (its SAs stay on the gateway, idle). The counts are checked with
``list-sas`` and ``list-pols`` and printed before any measurement, and pings from the gateway's
LAN to three virtual IPs must leave on those peers' own SAs (packets_out) and on no other. The
"one" copy is the same gateway configuration with only the west tunnel. While one copy is
measured, the other's daemons are stopped (SIGSTOP), so neither's idle work lands on the other's
figures.

Directions: "to" = iperf3 from west's LAN to the gateway's LAN (the gateway decrypts), "from" =
the reverse (the gateway encrypts: an SPD lookup among N policies per packet). Besides Mbit/s:
the gateway's CPU seconds per Gbit, its idle CPU, the time to install the N-1 SAs and, at the
end, the time each gateway takes to stop (a Delete per SA, policies and routes removed).
Needs root and iperf3; run under the benchmark lock (``flock /tmp/snakeswan-bench.lock ...``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT), str(ROOT / "bench")]

from throughput import EAST, LAN_E, LAN_W, WEST, iperf, snakeswan, snakeswan_conf  # noqa: E402

from snakeswan.control.client import request  # noqa: E402
from tests.daemons import DaemonProcess, wait_for  # noqa: E402
from tests.netns import Netns, Topology, ping, site_to_site, veth  # noqa: E402

HUB_ADDR, LOAD_ADDR = "10.231.5.2", "10.231.5.1"
POOL = "10.231.64.0/18"  # 16,382 virtual IPs
HUB = """
[daemon]
half_open_per_source = 100000  # every simulated peer comes from one address
[connections.hub]
local_addrs = ["{hub}"]
remote_addrs = ["%any"]
proposals = ["{ike}"]
pools = ["rw"]
local = {{ auth = "psk", id = "hub.load" }}
remote = {{ auth = "psk" }}
[connections.hub.children.lan]
local_ts = ["{lan}"]
esp_proposals = ["{esp}"]
[pools.rw]
addrs = "{pool}"
[secrets.ike-group]
secret = "load-psk"
"""


@dataclass
class Site:
    """One copy of the topology: its namespaces and daemons."""

    kind: str
    west: Netns
    east: Netns
    gateway: DaemonProcess
    peer: DaemonProcess
    facts: dict[str, Any] = field(default_factory=dict)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Both daemons stopped (SIGSTOP) for the duration: the other copy is being measured."""
        pids = (self.gateway.proc.pid, self.peer.proc.pid)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)


def gateway_conf(ike: str, esp: str) -> str:
    """``gw`` as bench/throughput.py configures east (its PSK, its proposal), plus ``hub``."""
    hub = HUB.format(hub=HUB_ADDR, ike=ike, esp=esp, lan=LAN_E, pool=POOL)
    return snakeswan_conf(EAST, WEST, LAN_E, LAN_W, esp) + hub


def counts(gateway: DaemonProcess) -> tuple[int, int, int]:
    """(IPsec SAs, policies with an SA installed, policies) of the gateway, as the CLI sees them."""
    sas = request(gateway.control, "list-sas", timeout=120)
    children = sum(len(s["children"]) for s in sas)
    pols = request(gateway.control, "list-pols", timeout=120)["policies"]
    return children, sum(1 for p in pols if p["installed"]), len(pols)


def load(ns: Netns, n: int, ike: str, esp: str, procs: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "snakeswan.cli.main", "load", HUB_ADDR, "--local", LOAD_ADDR,
           "--psk", "load-psk", "-n", str(n), "--ike", ike, "--esp", esp, "--remote-ts", LAN_E,
           "--vips", "--concurrency", "200", "--timeout", "600", "--json", "-q",
           "--procs", str(procs)]  # fmt: skip
    cp = ns.run(*cmd, check=False, timeout=900, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    try:
        result: dict[str, Any] = json.loads(cp.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"snakeswan load failed ({cp.returncode}): {cp.stderr[-2000:]}") from None
    return result


def build(topo: Topology, kind: str, n: int, args: argparse.Namespace, work: Path) -> Site:
    west, east = site_to_site(topo)
    loadns = topo.add("load")
    veth(loadns, "l0", f"{LOAD_ADDR}/24", east, "e1", f"{HUB_ADDR}/24")
    gw = DaemonProcess(work, "east", gateway_conf(args.ike, args.esp), netns=east.name, log_level="warning")
    topo.on_close(gw.stop)
    peer = snakeswan(west, "west", args.esp, work)
    topo.on_close(peer.stop)
    site = Site(kind, west, east, gw, peer)
    peer.cmd("up", conn="gw")
    wait_for(lambda: peer.sas() and peer.sas()[0]["children"], what="the west tunnel")
    if n > 1:
        t0 = time.monotonic()
        r = load(loadns, n - 1, args.ike, args.esp, args.procs)
        site.facts["load"] = {k: r[k] for k in ("established", "failed", "seconds", "per_second")}
        if r["failures"]:
            site.facts["load"]["failures"] = r["failures"]

        def installed() -> bool:
            pols = request(gw.control, "list-pols", timeout=120)["policies"]
            done = sum(1 for p in pols if p["installed"]) >= n
            time.sleep(0 if done else 0.25)
            return done

        wait_for(installed, timeout=300, what=f"{n} policies with their SAs on the gateway")
        site.facts["install_s"] = round(time.monotonic() - t0, 1)
    site.facts["sas"], site.facts["installed_policies"], site.facts["policies"] = counts(gw)
    routes = east.ip("route", "show", "table", "220").stdout.splitlines()
    site.facts["tun_routes"] = len(routes)
    if n > 1:
        site.facts["own_sa_check"] = own_sa_check(site)
    return site


def own_sa_check(site: Site, peers: int = 3, count: int = 2) -> str:
    """Ping a few simulated peers' virtual IPs from the gateway's LAN: each one's packets must
    leave on its own SA and on no other (the load generator is gone: nobody answers)."""
    sas = [s for s in request(site.gateway.control, "list-sas", timeout=120) if s["conn"] == "hub"]
    vips = sorted(s["vips"][0] for s in sas)
    chosen = [vips[0], vips[len(vips) // 2], vips[-1]][:peers]
    for vip in chosen:
        ping(site.east, "10.231.2.1", vip, count=count, timeout=3)
    sas = [s for s in request(site.gateway.control, "list-sas", timeout=120) if s["conn"] == "hub"]
    out = {s["vips"][0]: sum(c["packets_out"] for c in s["children"]) for s in sas}
    wrong = {v: k for v, k in out.items() if k != (count if v in chosen else 0)}
    if wrong:
        raise SystemExit(f"packets out per virtual IP, expected {count} on {chosen} and 0 elsewhere: {wrong}")
    others = len(out) - len(chosen)
    return f"{count} pings each to {len(chosen)} peers left on their own SAs, 0 packets on {others} others"


def measure(site: Site, direction: str, seconds: float) -> tuple[float, float]:
    """(Mbit/s, the gateway's CPU seconds per Gbit carried) of one iperf3 run."""
    pids = (site.gateway.proc.pid,)
    if direction == "to":
        sample = iperf(site.west, site.east, "10.231.1.1", "10.231.2.1", seconds, pids)
    else:
        sample = iperf(site.east, site.west, "10.231.2.1", "10.231.1.1", seconds, pids)
    return sample.mbits, sample.per_gbit(sample.ipsec_cpu)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop_time(site: Site) -> float:
    """Seconds the gateway takes to stop (it deletes every SA and removes its routes first)."""
    t0 = time.monotonic()
    site.gateway.stop(timeout=300)
    return time.monotonic() - t0


def idle_cpu(site: Site, seconds: float = 5.0) -> float:
    """The gateway's CPU while nothing flows (its timers, its once-a-second walks), % of a core."""
    pid = site.gateway.proc.pid
    cpu0 = cpu_seconds(pid)
    time.sleep(seconds)
    return round((cpu_seconds(pid) - cpu0) / seconds * 100, 2)


def report(
    args: argparse.Namespace,
    directions: list[str],
    results: dict[tuple[str, str], list[float]],
    cpu: dict[tuple[str, str], list[float]],
) -> None:
    print(f"iperf3 TCP, one stream, {args.time:g} s x {args.repeat} alternating rounds, ESP {args.esp}")
    print(f"gateway with 1 SA pair vs {args.n} ({args.n - 1} idle, one policy each)")
    print("(Mbit/s min / median / max, ratio of medians many/one, median of the rounds' ratios;")
    print(" the gateway's CPU seconds per Gbit carried, median, and its ratio many/one)")
    labels = {"to": "west -> gateway (decrypt)", "from": "gateway -> west (encrypt)"}
    for d in directions:
        base = statistics.median(results[("one", d)])
        rounds = [m / o for m, o in zip(results[("many", d)], results[("one", d)], strict=True)]
        for kind in ("one", "many"):
            v = results[(kind, d)]
            med = statistics.median(v)
            label = f"{labels[d]}, {1 if kind == 'one' else args.n} SAs"
            per_round = f"{statistics.median(rounds):5.2f}x" if kind == "many" else " " * 6
            c = statistics.median(cpu[(kind, d)])
            c_ratio = c / statistics.median(cpu[("one", d)])
            print(f"{label:<44} {min(v):7.1f} {med:7.1f} {max(v):7.1f} {med / base:5.2f}x {per_round}"
                  f"  CPU {c:5.2f} s/Gbit {c_ratio:5.2f}x")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10000, help="IPsec SAs on the gateway in the 'many' copy")
    ap.add_argument("--time", type=float, default=5.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--esp", default="aes128gcm16")
    ap.add_argument("--ike", default="aes128-sha256-ecp256", help="the simulated peers' IKE proposal")
    ap.add_argument("--procs", type=int, default=os.cpu_count() or 1, help="snakeswan load processes")
    ap.add_argument("--direction", choices=("both", "to", "from"), default="both")
    args = ap.parse_args()
    directions = ["to", "from"] if args.direction == "both" else [args.direction]
    results: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="ssw-many-") as tmp, Topology() as t1, Topology() as t2:
        sites = {}
        for topo, kind, n in ((t1, "one", 1), (t2, "many", args.n)):
            work = Path(tmp) / kind
            work.mkdir()
            sites[kind] = build(topo, kind, n, args, work)
            print(f"# {kind}: {json.dumps(sites[kind].facts)}", flush=True)
        many = sites["many"]
        if many.facts["installed_policies"] < args.n:
            raise SystemExit(f"only {many.facts['installed_policies']} of {args.n} policies installed")
        idle = {kind: idle_cpu(site) for kind, site in sites.items()}
        print(f"# the gateways idle (% of a core over 5 s): {json.dumps(idle)}", flush=True)
        for round_ in range(args.repeat):  # a burst of load elsewhere hits both copies alike
            for d in directions:
                order = ("one", "many") if round_ % 2 == 0 else ("many", "one")
                for kind in order:
                    with sites["many" if kind == "one" else "one"].paused():
                        mbps, per_gbit = measure(sites[kind], d, args.time)
                        results.setdefault((kind, d), []).append(mbps)
                        cpu.setdefault((kind, d), []).append(per_gbit)
        stop = {kind: stop_time(site) for kind, site in sites.items()}
    report(args, directions, results, cpu)
    print(f"stopping the gateway (SIGTERM: a Delete per SA, policies and routes removed): "
          f"{stop['one']:.2f} s with 1 SA, {stop['many']:.2f} s with {args.n}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
