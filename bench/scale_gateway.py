"""Tens of thousands of peers over real sockets in namespaces (issue 15): snakeswan<->snakeswan
against strongSwan<->strongSwan at the same N, in one run.

west initiates N tunnels (Main Mode PSK + Quick Mode, one %any connection on the gateway, group
PSK, each peer its own identity, 200 negotiations in flight) to a gateway in east:

- ours: ``snakeswan load --procs P`` (P processes, default one per core) -> ``snakeswan daemon``;
- theirs: charon -> charon (strongSwan 5.9.8; Debian builds no load-tester plugin, so the
  initiator is charon driven over vici: one connection per peer loaded with
  ``start_action = start`` while fewer than 200 are in flight, ``child-updown`` events timed),
  P charons with a share of the peers each, as our P load processes (:class:`SwanShards`).

Per N and pair: tunnels/s, latency p50/p99, the gateway's CPU ms per tunnel and RSS per SA
(growth over the run / N; both measured after 20 tunnels that warm the gateway up), its idle CPU
over 10 s with the N SAs up, and the time to establish one more tunnel then (median of 5, one at a
time); then the ratios ours/theirs and, for each pair, the largest N against the smallest. The
gateways log as they would in production (ours at info, charon nothing). Needs root, strongSwan
and the ``vici`` package.

Run: python bench/scale_gateway.py [--n 1000 50000] [--procs 2]. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src"), str(ROOT / "bench")]

import vici  # type: ignore[import-untyped]  # noqa: E402
from gateway_rate import OURS, THEIRS, cpu_seconds  # noqa: E402

from tests.daemons import DaemonProcess  # noqa: E402
from tests.interop.strongswan import Charon  # noqa: E402
from tests.netns import Netns, Topology, site_to_site, veth  # noqa: E402

IKE = "aes128-sha256-modp2048"
IN_FLIGHT = 200
WARMUP = 20  # tunnels before the clock and the RSS baseline
SETTINGS = {"init_limit_half_open": 0, "block_threshold": 1000000, "ikesa_table_size": 65536,
            "ikesa_table_segments": 64}  # fmt: skip


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def our_load(
    ns: Any, n: int, procs: int, ident: str = "peer{i}.load", concurrency: int = IN_FLIGHT
) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "snakeswan.cli.main", "load", "10.231.0.2", "--local", "10.231.0.1",
           "--psk", "load-psk", "-n", str(n), "--ike", IKE, "--remote-ts", "10.231.2.0/24",
           "--concurrency", str(concurrency), "--timeout", "900", "--json", "-q", "--id", ident,
           "--procs", str(procs)]  # fmt: skip
    cp = ns.run(*cmd, check=False, timeout=1200, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    result: dict[str, Any] = json.loads(cp.stdout)
    return result


class SwanLoad:
    """A charon as the initiator of many peers, driven over vici: one connection per peer loaded
    with ``start_action = start`` while fewer than ``in_flight`` are under way. Bookkeeping is O(1)
    per event (a finished count kept by the event thread), so the driver does not slow down as
    tunnels pile up; charon itself does (see :class:`SwanShards`)."""

    def __init__(
        self,
        charon: Charon,
        *,
        ike: str = IKE,
        esp: str = "aes128gcm16",
        aggressive: bool = False,
        local: str = "10.231.0.1",
    ) -> None:
        self.charon = charon
        self.ike, self.esp, self.aggressive, self.local = ike, esp, aggressive, local
        self.started: dict[str, float] = {}
        self.up: dict[str, float] = {}
        self.failed: set[str] = set()
        self.finished = 0  # names of ours that came up or failed (each counted once)
        self._lock = threading.Lock()
        self._events = self._session()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()
        self._ctl = self._session()
        self._ctl.load_shared({"type": "IKE", "data": "load-psk", "owners": []})

    def _session(self) -> Any:
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(self.charon.vici_path))
        return vici.Session(s)

    def _listen(self) -> None:
        try:
            self._follow()
        except OSError:  # charon stopped
            return

    def _follow(self) -> None:
        for label, event in self._events.listen(["child-updown", "ike-updown"]):
            now = time.monotonic()
            names = [k for k in event if k != "up"]
            with self._lock:
                for name in names:
                    if name not in self.started or name in self.up:
                        continue
                    if label == b"child-updown" and event.get("up") == b"yes":
                        self.up[name] = now
                        self.finished += name not in self.failed
                    elif event.get("up") != b"yes" and name not in self.failed:
                        self.failed.add(name)
                        self.finished += 1

    def conn(self, name: str, ident: str) -> dict[str, Any]:
        return {name: {"version": "1", "local_addrs": [self.local], "remote_addrs": ["10.231.0.2"],
                       "proposals": [self.ike], "aggressive": "yes" if self.aggressive else "no",
                       "local": {"auth": "psk", "id": ident}, "remote": {"auth": "psk", "id": "hub.load"},
                       "children": {"load": {"remote_ts": ["10.231.2.0/24"], "esp_proposals": [self.esp],
                                             "start_action": "start"}}}}  # fmt: skip

    def drive(
        self, names: list[tuple[str, str]], in_flight: int, timeout: float
    ) -> tuple[list[float], int, float]:
        """Initiate ``names``; (latencies in s, failures, elapsed s)."""
        t0 = time.monotonic()
        base = self.finished
        i = 0
        while time.monotonic() - t0 < timeout:
            done = self.finished - base
            if done >= len(names):
                break
            while i < len(names) and i - done < in_flight:
                name, ident = names[i]
                with self._lock:
                    self.started[name] = time.monotonic()
                self._ctl.load_conn(self.conn(name, ident))
                i += 1
            time.sleep(0.005)
        elapsed = time.monotonic() - t0
        with self._lock:
            lat = [self.up[n] - self.started[n] for n, _ in names if n in self.up]
            failed = sum(1 for n, _ in names if n in self.failed and n not in self.up)
        return lat, failed, elapsed

    def run(self, names: list[tuple[str, str]], in_flight: int, timeout: float) -> dict[str, Any]:
        return summary(*self.drive(names, in_flight, timeout))


def summary(lat: list[float], failed: int, elapsed: float) -> dict[str, Any]:
    lat = sorted(lat)
    pct = {f"p{q}": round(lat[min(len(lat) - 1, len(lat) * q // 100)] * 1e3, 1) for q in (50, 99) if lat}
    return {"established": len(lat), "failed": failed, "seconds": round(elapsed, 2),
            "per_second": round(len(lat) / max(elapsed, 1e-9), 1), "latency_ms": pct}  # fmt: skip


class SwanShards:
    """Several charon initiators, each with a share of the peers, driven at once: the counterpart
    of ``snakeswan load --procs P``. One charon slows as its IKE SAs pile up whatever drives it:
    for IKEv1 every initiation (vici ``initiate``, ``start_action = start`` or a trap) goes
    through ``ike_sa_manager.checkout_by_config``, which cannot skip IKE SA reuse for IKEv1 and so
    walks every IKE SA it holds, waiting for each one another thread has checked out (strongSwan
    5.9.8 ``ike_sa_manager.c``). A template connection initiated many times would be folded into
    one IKE SA for the same reason. Shard 0 is the charon in west (10.231.0.1); shard k > 0 is a
    charon in a namespace of its own, joined to east by a veth (10.231.(20+k).1, routed to
    10.231.0.2)."""

    def __init__(self, topo: Topology, west: Netns, east: Netns, work: Path, shards: int) -> None:
        table = {"ikesa_table_size": 65536, "ikesa_table_segments": 64}
        self.loads: list[SwanLoad] = []
        for k in range(shards):
            if k == 0:
                ns, local = west, "10.231.0.1"
            else:
                ns, local = topo.add(f"ini{k}"), f"10.231.{20 + k}.1"
                veth(ns, "w0", f"{local}/24", east, f"x{k}", f"10.231.{20 + k}.2/24")
                ns.route("10.231.0.0/24", via=f"10.231.{20 + k}.2")
            ini = Charon(ns, work / f"ini{k}", settings=table, default_log=-1)
            ini.start()
            topo.on_close(ini.stop)
            self.loads.append(SwanLoad(ini, local=local))

    def run(self, names: list[tuple[str, str]], in_flight: int, timeout: float) -> dict[str, Any]:
        k = len(self.loads)
        out: list[tuple[list[float], int, float]] = [([], 0, 0.0)] * k

        def one(j: int) -> None:
            out[j] = self.loads[j].drive(names[j::k], max(1, in_flight // k), timeout)

        threads = [threading.Thread(target=one, args=(j,)) for j in range(k)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return summary([x for r in out for x in r[0]], sum(r[1] for r in out), max(r[2] for r in out))


def one_more(measure: Any) -> float:
    """Median of 5 single tunnels, one at a time (ms)."""
    return float(statistics.median(measure(k) for k in range(5)))


def run_pair(pair: str, n: int, procs: int, work: Path, timeout: float = 900) -> dict[str, Any]:
    topo = Topology()
    try:
        west, east = site_to_site(topo)
        if pair == "snakeswan":
            (work / f"ours{n}").mkdir(parents=True, exist_ok=True)
            conf = OURS.format(ike=IKE)
            d = DaemonProcess(work / f"ours{n}", "east", conf, netns=east.name, log_level="info")
            topo.on_close(d.stop)
            pid = d.proc.pid
        else:
            gw = Charon(east, work / f"theirs{n}", swanctl_conf=THEIRS.format(ike=IKE), settings=SETTINGS,
                        default_log=-1)  # fmt: skip
            gw.start()
            gw.load_all()
            topo.on_close(gw.stop)
            assert gw.pid is not None
            pid = gw.pid
            swan = SwanShards(topo, west, east, work / f"ini{n}", procs)
        # a few tunnels first, not counted: what the first handshakes load once (modules, caches,
        # the state store's pages) is not a cost per SA, on either gateway
        if pair == "snakeswan":
            our_load(west, WARMUP, 1, "warm{i}.load", WARMUP)
        else:
            swan.loads[0].run([(f"w{i}", f"warm{i}.load") for i in range(WARMUP)], WARMUP, 60)
        rss0, cpu0 = rss_kib(pid), cpu_seconds(pid)
        if pair == "snakeswan":
            r = our_load(west, n, procs)
        else:
            r = swan.run([(f"c{i}", f"peer{i}.load") for i in range(n)], IN_FLIGHT, timeout)
        r["gateway_cpu_ms"] = round((cpu_seconds(pid) - cpu0) * 1e3 / max(1, r["established"]), 2)
        r["rss_per_sa_kib"] = round((rss_kib(pid) - rss0) / max(1, r["established"]), 2)
        cpu1 = cpu_seconds(pid)
        time.sleep(10.0)
        r["idle_cpu_pct"] = round((cpu_seconds(pid) - cpu1) / 10.0 * 100, 2)
        if pair == "snakeswan":
            r["one_more_ms"] = one_more(
                lambda k: our_load(west, 1, 1, f"extra{k}.load", 1)["latency_ms"].get("p50", float("nan"))
            )
        else:

            def theirs(k: int) -> float:
                res = swan.loads[0].run([(f"x{k}", f"extra{k}.load")], 1, 30)
                return float(res["latency_ms"].get("p50", float("nan")))

            r["one_more_ms"] = one_more(theirs)
        return r
    finally:
        topo.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 50000])
    ap.add_argument("--procs", type=int, default=os.cpu_count() or 1, help="snakeswan load processes")
    ap.add_argument("--pairs", nargs="+", default=["snakeswan", "strongswan"], help="which pairs to run")
    ap.add_argument("--timeout", type=float, default=900, help="strongSwan pair: stop initiating after (s)")
    args = ap.parse_args()
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="ssw-scale-") as tmp:
        for n in args.n:
            for pair in args.pairs:
                rows[(pair, n)] = run_pair(pair, n, args.procs, Path(tmp), args.timeout)
                print(f"# {pair} N={n}: {json.dumps(rows[(pair, n)])}", flush=True)
    head = ("N", "pair", "est.", "per s", "p50 ms", "p99 ms", "CPU ms/tun", "KiB/SA", "idle CPU", "one more")
    print("{:>6} {:>10} {:>6} {:>7} {:>8} {:>8} {:>10} {:>7} {:>8} {:>9}".format(*head))
    for (pair, n), r in rows.items():
        lat = r["latency_ms"]
        print(f"{n:>6} {pair:>10} {r['established']:>6} {r['per_second']:>7} {lat.get('p50', '-'):>8} "
              f"{lat.get('p99', '-'):>8} {r['gateway_cpu_ms']:>10} {r['rss_per_sa_kib']:>7} "
              f"{r['idle_cpu_pct']:>7}% {r['one_more_ms']:>6.1f} ms")  # fmt: skip
    for n in args.n if len(args.pairs) == 2 else ():
        ours, theirs = rows[("snakeswan", n)], rows[("strongswan", n)]
        rate = ours["per_second"] / max(theirs["per_second"], 1e-9)
        more = theirs["one_more_ms"] / max(ours["one_more_ms"], 1e-9)
        print(f"N={n}: rate ours/theirs {rate:.2f}x, one more tunnel theirs/ours {more:.2f}x")
    lo, hi = min(args.n), max(args.n)
    for pair in args.pairs:
        a, b = rows[(pair, lo)], rows[(pair, hi)]
        print(f"{pair}: N={hi} against N={lo}: rate x{b['per_second'] / max(a['per_second'], 1e-9):.2f}, "
              f"one more tunnel x{b['one_more_ms'] / max(a['one_more_ms'], 1e-9):.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
