"""iperf3 TCP through a snakeswan tunnel, through a strongSwan kernel-libipsec tunnel, and over the
bare link, in the same run and the same namespaces; prints Mbit/s, ratios and CPU per Gbit/s
(asserts nothing).

    python bench/throughput.py [--time 5] [--repeat 3] [--esp aes128gcm16[,aes256-sha256...]]
                               [--plain] [--roles] [--encap] [--baseline-src /path/to/other/src]

Needs root, iperf3 and strongSwan (scripts/setup.sh installs them). Topology: west 10.231.0.1
(LAN 10.231.1.1) -- veth -- east 10.231.0.2 (LAN 10.231.2.1); iperf3 from west's LAN address to
east's through the tunnel, from 10.231.0.1 to 10.231.0.2 for the bare link. ``--plain`` adds a
snakeswan run without TUN offloads (``[daemon] tun_offload = false``), to show what they bring.
``--roles`` adds the mixed pairs: snakeswan sending to strongSwan (west snakeswan, east strongSwan)
and strongSwan sending to snakeswan; strongSwan's kernel-libipsec forces UDP encapsulation, so these
run ESP-in-UDP. ``--baseline-src`` adds a snakeswan pair running another source tree (e.g. main's,
to show a branch's gain in the same run), and with ``--roles`` that tree in the mixed pairs too.
``--encap`` adds a snakeswan pair with ``encap = true``: ESP-in-UDP as kernel-libipsec always
sends it (UDP GSO out, GRO in), where the default pair sends raw ESP (IP protocol 50, one packet
per datagram through the kernel's raw socket path). Several suites (``--esp a,b``) run one after
the other, each with its own strongSwan baseline. Every ratio is against the strongSwan pair of
this run and suite.

CPU per Gbit/s: the IPsec processes' CPU time (user + system of the snakeswan daemons or charons
and their threads, from /proc; kernel work done in their context is in it, softirq work done
elsewhere is not) and the whole machine's busy time (/proc/stat, iperf3 and the kernel included),
each over the iperf3 run, divided by the Gbit moved. Lower is better.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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


def snakeswan_conf(
    local: str, remote: str, lnet: str, rnet: str, esp: str, offload: bool = True, encap: bool = False
) -> str:
    daemon = "" if offload else "[daemon]\ntun_offload = false\n"
    return f"""{daemon}
[connections.gw]
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
proposals = ["aes128-sha256-modp2048"]
encap = {"true" if encap else "false"}
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


@dataclass
class Sample:
    mbits: float  # iperf3's received rate
    seconds: float  # how long the transfer ran
    ipsec_cpu: float  # CPU seconds of the IPsec processes over the run
    busy_cpu: float  # CPU seconds the whole machine was busy over the run

    def per_gbit(self, cpu: float) -> float:
        gbit = self.mbits * self.seconds / 1000
        return cpu / gbit if gbit else float("nan")


def _ticks(pid: int) -> int:
    """utime + stime of ``pid`` (all its threads), in clock ticks; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def _busy() -> float:
    """Seconds all CPUs have been busy (not idle or iowait) since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def iperf(
    client: Netns, server: Netns, src: str, dst: str, seconds: float, pids: tuple[int, ...] = ()
) -> Sample:
    srv = server.popen("iperf3", "-s", "-1", "-B", dst, stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        hz = os.sysconf("SC_CLK_TCK")
        ticks, busy, start = sum(map(_ticks, pids)), _busy(), time.monotonic()
        cp = client.run("iperf3", "-c", dst, "-B", src, "-t", str(seconds), "-J", timeout=seconds + 30)
        elapsed = time.monotonic() - start
        ipsec, busy = (sum(map(_ticks, pids)) - ticks) / hz, _busy() - busy
        result = json.loads(cp.stdout)
        mbits = float(result["end"]["sum_received"]["bits_per_second"]) / 1e6
        # the run's own length (iperf3 also spends time connecting): scale the CPU to it
        scale = seconds / elapsed if elapsed > seconds else 1.0
        return Sample(mbits, seconds, ipsec * scale, busy * scale)
    finally:
        srv.kill()
        srv.wait(5)


def snakeswan(
    ns: Netns, name: str, esp: str, work: Path, offload: bool = True, encap: bool = False
) -> DaemonProcess:
    local, remote, lnet, rnet = (WEST, EAST, LAN_W, LAN_E) if name == "west" else (EAST, WEST, LAN_E, LAN_W)
    conf = snakeswan_conf(local, remote, lnet, rnet, esp, offload, encap)
    return DaemonProcess(work, name, conf, netns=ns.name, log_level="warning")


def strongswan(ns: Netns, name: str, esp: str, work: Path) -> Charon:
    local, remote, lnet, rnet = (WEST, EAST, LAN_W, LAN_E) if name == "west" else (EAST, WEST, LAN_E, LAN_W)
    charon = Charon(ns, work / f"sw-{name}", swanctl_conf=strongswan_conf(local, remote, lnet, rnet, esp))
    charon.start()
    charon.load_all()
    return charon


def measure(
    kind: str, esp: str, seconds: float, repeat: int, work: Path, baseline: Path | None
) -> list[Sample]:
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
                    plain, encap = kind == "snakeswan-plain", kind == "snakeswan-encap"
                    d = snakeswan(ns, name, esp, work, offload=not plain, encap=encap)
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
        pids = tuple(p for p in (_pid(side) for side in sides.values()) if p is not None)
        return [iperf(west, east, "10.231.1.1", "10.231.2.1", seconds, pids) for _ in range(repeat)]


def _pid(side: DaemonProcess | Charon) -> int | None:
    return side.proc.pid if isinstance(side, DaemonProcess) else side.pid


LABELS = {
    "bare": "bare veth, no IPsec",
    "strongswan": "strongSwan kernel-libipsec pair",
    "snakeswan": "snakeswan pair (raw ESP)",
    "snakeswan-encap": "snakeswan pair, encap = true",
    "snakeswan-plain": "snakeswan, tun_offload = false",
    "send": "snakeswan sending -> strongSwan",
    "recv": "strongSwan -> snakeswan receiving",
    "baseline": "snakeswan pair, --baseline-src",
    "baseline-send": "the same sending -> strongSwan",
    "baseline-recv": "strongSwan -> the same receiving",
}


def run_suite(args: argparse.Namespace, esp: str, tmp: Path) -> dict[str, list[Sample]]:
    kinds = ["bare", "strongswan", "snakeswan"] + (["snakeswan-encap"] if args.encap else [])
    kinds += ["snakeswan-plain"] if args.plain else []
    kinds += ["send", "recv"] if args.roles else []
    kinds += ["baseline"] if args.baseline_src else []
    kinds += ["baseline-send", "baseline-recv"] if args.baseline_src and args.roles else []
    if args.only:
        kinds = ["strongswan", *(k for k in args.only.split(",") if k != "strongswan")]
    results: dict[str, list[Sample]] = {}
    for round_ in range(args.repeat):  # alternate: a burst of load elsewhere hits every kind alike
        for kind in kinds:
            work = tmp / f"{esp}-{kind}-{round_}"
            work.mkdir()
            results.setdefault(kind, []).extend(measure(kind, esp, args.time, 1, work, args.baseline_src))
    return results


def report(args: argparse.Namespace, esp: str, results: dict[str, list[Sample]]) -> None:
    base = statistics.median(s.mbits for s in results["strongswan"])
    print(f"\niperf3 TCP, one stream, {args.time:g} s x {args.repeat} alternating rounds, ESP {esp}")
    print("(Mbit/s min / median / max; ratio of medians against the strongSwan pair; medians of CPU")
    print(" seconds per Gbit moved: the IPsec processes', and the whole machine's)")
    print(f"{'path':<34} {'min':>8} {'median':>8} {'max':>8}  {'vs sS':>6}  {'IPsec':>6} {'machine':>7}")
    for kind, samples in results.items():
        mb = [s.mbits for s in samples]
        med = statistics.median(mb)
        ipsec = statistics.median(s.per_gbit(s.ipsec_cpu) for s in samples) if kind != "bare" else 0.0
        busy = statistics.median(s.per_gbit(s.busy_cpu) for s in samples)
        print(
            f"{LABELS[kind]:<34} {min(mb):8.1f} {med:8.1f} {max(mb):8.1f}  {med / base:5.2f}x"
            f"  {ipsec:6.2f} {busy:7.2f}"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time", type=float, default=5.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--esp", default="aes128gcm16", help="ESP proposal(s), comma-separated")
    ap.add_argument("--plain", action="store_true", help="also snakeswan with tun_offload = false")
    ap.add_argument("--roles", action="store_true", help="also snakeswan -> strongSwan and back")
    ap.add_argument("--encap", action="store_true", help="also a snakeswan pair with encap = true")
    ap.add_argument("--baseline-src", type=Path, help="also a snakeswan pair running this src tree")
    ap.add_argument(
        "--only", help="just these kinds (comma-separated, e.g. recv,baseline-recv) and strongSwan"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="snakeswan-bench-") as tmp:
        for esp in args.esp.split(","):
            report(args, esp, run_suite(args, esp, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
