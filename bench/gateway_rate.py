"""Gateway handshake rate over real sockets in namespaces, snakeswan against strongSwan in the same
run, with one and the same client: ``snakeswan load`` (N simulated peers, MM PSK + QM) from one
namespace against a snakeswan gateway, then against strongSwan 5.9 (charon, kernel-libipsec
loaded but no traffic) configured alike (one %any connection, group PSK, half-open limits lifted
on both; ours logs at info, charon nothing). Prints tunnels/s, latency percentiles, the
gateway's own CPU ms per tunnel (from /proc: the client's CPU is not in it) and the ratios per N.
Needs root. ``--procs P``: the client in P processes (``snakeswan load --procs``). The client
reuses one DH key pair for all its peers (``snakeswan load --reuse-dh``, against both gateways
alike: on 2 cores its CPU is taken from the gateway's); ``--fresh-dh`` draws one per peer.

Run: python bench/gateway_rate.py [--n 1000 3000] [--ike aes128-sha256-modp2048]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from tests.daemons import DaemonProcess  # noqa: E402
from tests.interop.strongswan import Charon  # noqa: E402
from tests.netns import Topology, site_to_site  # noqa: E402

OURS = """
[daemon]
dataplane = false
half_open_per_source = 100000
[connections.hub]
local_addrs = ["10.231.0.2"]
remote_addrs = ["%any"]
proposals = ["{ike}"]
local = {{ auth = "psk", id = "hub.load" }}
remote = {{ auth = "psk" }}
[connections.hub.children.lan]
local_ts = ["10.231.2.0/24"]
esp_proposals = ["aes128gcm16"]
[secrets.ike-group]
secret = "load-psk"
"""

THEIRS = """connections {{
  hub {{
    version = 1
    local_addrs = 10.231.0.2
    remote_addrs = %any
    proposals = {ike}
    local {{
      auth = psk
      id = hub.load
    }}
    remote {{
      auth = psk
    }}
    children {{
      lan {{
        local_ts = 10.231.2.0/24
        esp_proposals = aes128gcm16
      }}
    }}
  }}
}}
secrets {{
  ike-group {{
    secret = "load-psk"
  }}
}}
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(ns: object, n: int, ike: str, procs: int = 1, reuse_dh: bool = True) -> dict[str, object]:
    # several processes: an address each (strongSwan with kernel-libipsec fakes NAT, and our
    # engine floats IKE to its own NAT-T port on both ends: ports of their own would not do)
    local = ",".join(["10.231.0.1"] + [f"10.231.0.{10 + k}" for k in range(1, procs)])
    for k in range(1, procs):
        ns.run("ip", "addr", "add", f"10.231.0.{10 + k}/24", "dev", "w0")  # type: ignore[attr-defined]
    cmd = [sys.executable, "-m", "snakeswan.cli.main", "load", "10.231.0.2", "--local", local,
           "--psk", "load-psk", "-n", str(n), "--ike", ike, "--remote-ts", "10.231.2.0/24",
           "--concurrency", "200", "--timeout", "900", "--json", "-q", "--procs", str(procs)]  # fmt: skip
    cmd += ["--reuse-dh"] if reuse_dh else []
    cp = ns.run(*cmd, check=False, timeout=1200, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})  # type: ignore[attr-defined]
    return json.loads(cp.stdout)  # type: ignore[no-any-return]


def run(
    n: int, ike: str, work: Path, procs: int = 1, reuse_dh: bool = True
) -> tuple[dict[str, object], dict[str, object]]:
    results = []
    for gateway in ("snakeswan", "strongswan"):
        (work / f"ours{n}").mkdir(parents=True, exist_ok=True)
        topo = Topology()
        try:
            west, east = site_to_site(topo)
            if gateway == "snakeswan":
                conf = OURS.format(ike=ike)
                d = DaemonProcess(work / f"ours{n}", "east", conf, netns=east.name, log_level="info")
                topo.on_close(d.stop)
                pid = d.proc.pid
            else:
                c = Charon(east, work / f"theirs{n}", swanctl_conf=THEIRS.format(ike=ike),
                           settings={"init_limit_half_open": 0, "block_threshold": 100000,
                                     "ikesa_table_size": 65536, "ikesa_table_segments": 64},
                           default_log=-1)  # fmt: skip
                c.start()
                c.load_all()
                topo.on_close(c.stop)
                assert c.pid is not None
                pid = c.pid
            before = cpu_seconds(pid)
            result = load(west, n, ike, procs, reuse_dh)
            result["gateway_cpu_ms"] = round(
                (cpu_seconds(pid) - before) * 1e3 / max(1, int(result["established"])), 2
            )  # type: ignore[call-overload]
            results.append(result)
        finally:
            topo.close()
    return results[0], results[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1000])
    ap.add_argument("--ike", default="aes128-sha256-modp2048")
    ap.add_argument("--procs", type=int, default=1, help="snakeswan load processes (the client)")
    ap.add_argument(
        "--fresh-dh", action="store_true", help="the client draws a DH key pair per peer (default: reuse one)"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ssw-rate-") as tmp:
        head = ("N", "gateway", "est.", "per s", "p50 ms", "p99 ms", "CPU ms/tunnel")
        print("{:>6} {:>10} {:>6} {:>8} {:>8} {:>8} {:>14}".format(*head))
        for n in args.n:
            ours, theirs = run(n, args.ike, Path(tmp), args.procs, not args.fresh_dh)
            for name, r in (("snakeswan", ours), ("strongSwan", theirs)):
                lat = r["latency_ms"]
                print(f"{n:>6} {name:>10} {r['established']:>6} {r['per_second']:>8} "
                      f"{lat.get('p50', '-'):>8} {lat.get('p99', '-'):>8} {r['gateway_cpu_ms']:>14}")  # type: ignore[union-attr]  # fmt: skip
            ratio = float(ours["per_second"]) / max(float(theirs["per_second"]), 1e-9)  # type: ignore[arg-type]
            cpu = float(theirs["gateway_cpu_ms"]) / max(float(ours["gateway_cpu_ms"]), 1e-9)  # type: ignore[arg-type]
            print(
                f"{n:>6} snakeswan/strongSwan: rate {ratio:.2f}x, gateway CPU per tunnel {cpu:.2f}x cheaper"
            )


if __name__ == "__main__":
    main()
