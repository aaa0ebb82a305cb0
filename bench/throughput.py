"""iperf3 TCP through a snakeswan tunnel, through a strongSwan kernel-libipsec tunnel, and over the
bare link, in the same run and the same namespaces; prints Mbit/s and ratios (asserts nothing).

    python bench/throughput.py [--time 5] [--repeat 3] [--esp aes128gcm16] [--plain] [--roles]
                               [--baseline-src /path/to/other/checkout/src]

Needs root, iperf3 and strongSwan (scripts/setup.sh installs them). Topology: west 10.231.0.1
(LAN 10.231.1.1) -- veth -- east 10.231.0.2 (LAN 10.231.2.1); iperf3 from west's LAN address to
east's through the tunnel, from 10.231.0.1 to 10.231.0.2 for the bare link. ``--plain`` adds a
snakeswan run without TUN offloads (``[daemon] tun_offload = false``), to show what they bring.
``--roles`` adds the mixed pairs: snakeswan sending to strongSwan (west snakeswan, east strongSwan)
and strongSwan sending to snakeswan; strongSwan's kernel-libipsec forces UDP encapsulation, so these
run ESP-in-UDP. ``--baseline-src`` adds a snakeswan pair running another source tree (e.g. main's,
to show a branch's gain in the same run), and with ``--roles`` that tree in the mixed pairs too.
Every ratio is against the strongSwan pair of this run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import tests.daemons  # noqa: E402
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
    srv = server.popen("iperf3", "-s", "-1", "-B", dst, stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        cp = client.run("iperf3", "-c", dst, "-B", src, "-t", str(seconds), "-J", timeout=seconds + 30)
        result = json.loads(cp.stdout)
        return float(result["end"]["sum_received"]["bits_per_second"]) / 1e6
    finally:
        srv.kill()
        srv.wait(5)


def snakeswan(ns: Netns, name: str, esp: str, work: Path, offload: bool = True) -> DaemonProcess:
    local, remote, lnet, rnet = (WEST, EAST, LAN_W, LAN_E) if name == "west" else (EAST, WEST, LAN_E, LAN_W)
    conf = snakeswan_conf(local, remote, lnet, rnet, esp, offload)
    return DaemonProcess(work, name, conf, netns=ns.name, log_level="warning")


def strongswan(ns: Netns, name: str, esp: str, work: Path) -> Charon:
    local, remote, lnet, rnet = (WEST, EAST, LAN_W, LAN_E) if name == "west" else (EAST, WEST, LAN_E, LAN_W)
    charon = Charon(ns, work / f"sw-{name}", swanctl_conf=strongswan_conf(local, remote, lnet, rnet, esp))
    charon.start()
    charon.load_all()
    return charon


def measure(
    kind: str, esp: str, seconds: float, repeat: int, work: Path, baseline: Path | None
) -> list[float]:
    with Topology() as topo:
        west, east = site_to_site(topo)
        if kind == "bare":
            return [iperf(west, east, WEST, EAST, seconds) for _ in range(repeat)]
        # (west, east): who runs where; iperf3 sends from west to east
        roles = {
            "strongswan": ("strongswan", "strongswan"),
            "send": ("snakeswan", "strongswan"),
            "recv": ("strongswan", "snakeswan"),
            "baseline-send": ("snakeswan", "strongswan"),
            "baseline-recv": ("strongswan", "snakeswan"),
        }.get(kind, ("snakeswan", "snakeswan"))
        saved = tests.daemons.ROOT
        if kind.startswith("baseline") and baseline is not None:
            tests.daemons.ROOT = baseline.parent  # DaemonProcess runs ROOT/src
        try:
            sides: dict[str, DaemonProcess | Charon] = {}
            for ns, name, role in ((east, "east", roles[1]), (west, "west", roles[0])):
                if role == "snakeswan":
                    d = snakeswan(ns, name, esp, work, offload=kind != "snakeswan-plain")
                    topo.on_close(d.stop)
                    sides[name] = d
                else:
                    c = strongswan(ns, name, esp, work)
                    topo.on_close(c.stop)
                    sides[name] = c
        finally:
            tests.daemons.ROOT = saved
        w = sides["west"]
        if isinstance(w, DaemonProcess):
            w.cmd("up", conn="gw")
            wait_for(lambda: w.sas() and w.sas()[0]["children"], what="the snakeswan tunnel")
        else:
            w.initiate("net", ike="gw")
            w.wait_sas(lambda sas: sas and children(sas[0]))
        return [iperf(west, east, "10.231.1.1", "10.231.2.1", seconds) for _ in range(repeat)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time", type=float, default=5.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--esp", default="aes128gcm16")
    ap.add_argument("--plain", action="store_true", help="also snakeswan with tun_offload = false")
    ap.add_argument("--roles", action="store_true", help="also snakeswan -> strongSwan and back")
    ap.add_argument("--baseline-src", type=Path, help="also a snakeswan pair running this src tree")
    ap.add_argument(
        "--only", help="just these kinds (comma-separated, e.g. recv,baseline-recv) and strongSwan"
    )
    args = ap.parse_args()
    results: dict[str, list[float]] = {}
    kinds = ["bare", "strongswan", "snakeswan"] + (["snakeswan-plain"] if args.plain else [])
    kinds += ["send", "recv"] if args.roles else []
    kinds += ["baseline"] if args.baseline_src else []
    kinds += ["baseline-send", "baseline-recv"] if args.baseline_src and args.roles else []
    if args.only:
        kinds = ["strongswan", *(k for k in args.only.split(",") if k != "strongswan")]
    with tempfile.TemporaryDirectory(prefix="snakeswan-bench-") as tmp:
        for round_ in range(args.repeat):  # alternate: a burst of load elsewhere hits every kind alike
            for kind in kinds:
                work = Path(tmp) / f"{kind}-{round_}"
                work.mkdir()
                results.setdefault(kind, []).extend(
                    measure(kind, args.esp, args.time, 1, work, args.baseline_src)
                )
    base = statistics.median(results["strongswan"])
    print(f"iperf3 TCP, one stream, {args.time:g} s x {args.repeat} alternating rounds, ESP {args.esp}")
    print("(Mbit/s, min / median / max; ratio of medians against strongSwan)")
    print(f"{'path':<34} {'min':>9} {'median':>9} {'max':>9}  vs strongSwan")
    labels = {
        "bare": "bare veth, no IPsec",
        "strongswan": "strongSwan kernel-libipsec",
        "snakeswan": "snakeswan userspace data plane",
        "snakeswan-plain": "snakeswan, tun_offload = false",
        "send": "snakeswan sending -> strongSwan",
        "recv": "strongSwan -> snakeswan receiving",
        "baseline": f"snakeswan pair, {args.baseline_src}",
        "baseline-send": "the same sending -> strongSwan",
        "baseline-recv": "strongSwan -> the same receiving",
    }
    for kind, values in results.items():
        med = statistics.median(values)
        print(f"{labels[kind]:<34} {min(values):9.1f} {med:9.1f} {max(values):9.1f}  {med / base:6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
