"""iperf3 TCP through a snakeswan tunnel, through a strongSwan kernel-libipsec tunnel, and over the
bare link, in the same run and the same namespaces; prints Mbit/s and ratios (asserts nothing).

    python bench/throughput.py [--time 5] [--repeat 3] [--esp aes128gcm16] [--plain]

Needs root, iperf3 and strongSwan (scripts/setup.sh installs them). Topology: west 10.231.0.1
(LAN 10.231.1.1) -- veth -- east 10.231.0.2 (LAN 10.231.2.1); iperf3 from west's LAN address to
east's through the tunnel, from 10.231.0.1 to 10.231.0.2 for the bare link. ``--plain`` adds a
snakeswan run without TUN offloads (``[daemon] tun_offload = false``), to show what they bring.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.daemons import DaemonProcess, wait_for  # noqa: E402
from tests.interop.strongswan import Charon, children, psk_secret, swanctl_conf, swanctl_conn  # noqa: E402
from tests.netns import Netns, Topology, site_to_site  # noqa: E402

PSK = "bench-pre-shared-key"
WEST, EAST = "10.231.0.1", "10.231.0.2"
LAN_W, LAN_E = "10.231.1.0/24", "10.231.2.0/24"


def snakeswan_conf(local: str, remote: str, lnet: str, rnet: str, esp: str, offload: bool = True) -> str:
    daemon = "" if offload else "[daemon]\ntun_offload = false\n"
    return f"""{daemon}
[connections.gw]
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
proposals = ["aes128-sha256-modp2048"]
local = {{ auth = "psk" }}
remote = {{ auth = "psk" }}
[connections.gw.children.net]
local_ts = ["{lnet}"]
remote_ts = ["{rnet}"]
esp_proposals = ["{esp}"]
[secrets.ike-gw]
id = ["{local}", "{remote}"]
secret = "{PSK}"
"""


def strongswan_conf(local: str, remote: str, lnet: str, rnet: str, esp: str) -> str:
    conn = swanctl_conn(
        "gw", local_addrs=local, remote_addrs=remote, local_ts=lnet, remote_ts=rnet, esp_proposals=esp
    )
    return swanctl_conf(conn, secrets=[psk_secret(PSK, WEST, EAST)])


def iperf(client: Netns, server: Netns, src: str, dst: str, seconds: float) -> float:
    srv = server.popen("iperf3", "-s", "-1", "-B", dst)
    time.sleep(0.5)
    try:
        cp = client.run("iperf3", "-c", dst, "-B", src, "-t", str(seconds), "-J", timeout=seconds + 30)
        result = json.loads(cp.stdout)
        return float(result["end"]["sum_received"]["bits_per_second"]) / 1e6
    finally:
        srv.kill()
        srv.wait(5)


def measure(kind: str, esp: str, seconds: float, repeat: int, work: Path) -> list[float]:
    with Topology() as topo:
        west, east = site_to_site(topo)
        if kind == "bare":
            return [iperf(west, east, WEST, EAST, seconds) for _ in range(repeat)]
        if kind.startswith("snakeswan"):
            offload = kind == "snakeswan"
            e = DaemonProcess(
                work,
                "east",
                snakeswan_conf(EAST, WEST, LAN_E, LAN_W, esp, offload),
                netns=east.name,
                log_level="warning",
            )
            topo.on_close(e.stop)
            w = DaemonProcess(
                work,
                "west",
                snakeswan_conf(WEST, EAST, LAN_W, LAN_E, esp, offload),
                netns=west.name,
                log_level="warning",
            )
            topo.on_close(w.stop)
            w.cmd("up", conn="gw")
            wait_for(lambda: w.sas() and w.sas()[0]["children"], what="the snakeswan tunnel")
        else:
            cw = Charon(west, work / "sw-west", swanctl_conf=strongswan_conf(WEST, EAST, LAN_W, LAN_E, esp))
            ce = Charon(east, work / "sw-east", swanctl_conf=strongswan_conf(EAST, WEST, LAN_E, LAN_W, esp))
            for c in (cw, ce):
                c.start()
                c.load_all()
                topo.on_close(c.stop)
            cw.initiate("net", ike="gw")
            cw.wait_sas(lambda sas: sas and children(sas[0]))
        return [iperf(west, east, "10.231.1.1", "10.231.2.1", seconds) for _ in range(repeat)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time", type=float, default=5.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--esp", default="aes128gcm16")
    ap.add_argument("--plain", action="store_true", help="also snakeswan with tun_offload = false")
    args = ap.parse_args()
    results: dict[str, list[float]] = {}
    kinds = ["bare", "strongswan", "snakeswan"] + (["snakeswan-plain"] if args.plain else [])
    with tempfile.TemporaryDirectory(prefix="snakeswan-bench-") as tmp:
        for kind in kinds:
            work = Path(tmp) / kind
            work.mkdir()
            results[kind] = measure(kind, args.esp, args.time, args.repeat, work)
    base = statistics.median(results["strongswan"])
    print(f"iperf3 TCP, one stream, {args.time:g} s x {args.repeat}, ESP {args.esp}")
    print("(Mbit/s, min / median / max; ratio of medians against strongSwan)")
    print(f"{'path':<34} {'min':>9} {'median':>9} {'max':>9}  vs strongSwan")
    labels = {
        "bare": "bare veth, no IPsec",
        "strongswan": "strongSwan kernel-libipsec",
        "snakeswan": "snakeswan userspace data plane",
        "snakeswan-plain": "snakeswan, tun_offload = false",
    }
    for kind, values in results.items():
        med = statistics.median(values)
        print(f"{labels[kind]:<34} {min(values):9.1f} {med:9.1f} {max(values):9.1f}  {med / base:6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
