"""A spoofed Main Mode flood in namespaces, snakeswan's gateway against strongSwan's in one run.

west sends MM1s (copies of a real one with fresh initiator cookies) from spoofed sources
10.231.128.0/17 through a raw socket, as fast as one process can for ``--seconds``; east routes
those sources back to west, so every byte east answers crosses the link and is counted (east's
e0 tx bytes, minus the legitimate peer's share). During the flood a legitimate peer (``snakeswan
load -n L --concurrency 1`` from west's real address, ``--legit L``, default 1) negotiates MM+QM:
its time to tunnel is printed (median/max), with the flood's bytes in, the gateway's bytes out
(reflection), its peak RSS, the datagrams the kernel dropped for want of receive buffer and, for
snakeswan, what the daemon shed before parsing (its last log line). Needs root.

Run: python bench/flood.py [--seconds 10]. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from tests.daemons import DaemonProcess  # noqa: E402
from tests.interop.strongswan import Charon  # noqa: E402
from tests.netns import Topology, site_to_site  # noqa: E402

GATEWAY_OURS = """
[connections.hub]
local_addrs = ["10.231.0.2"]
remote_addrs = ["%any"]
proposals = ["aes128-sha256-modp2048"]
local = { auth = "psk", id = "hub.load" }
remote = { auth = "psk" }
[connections.hub.children.lan]
local_ts = ["10.231.2.0/24"]
esp_proposals = ["aes128gcm16"]
[secrets.ike-group]
secret = "load-psk"
[daemon]
dataplane = false
"""
GATEWAY_THEIRS = """connections {
  hub {
    version = 1
    local_addrs = 10.231.0.2
    remote_addrs = %any
    proposals = aes128-sha256-modp2048
    local {
      auth = psk
      id = hub.load
    }
    remote {
      auth = psk
    }
    children {
      lan {
        local_ts = 10.231.2.0/24
        esp_proposals = aes128gcm16
      }
    }
  }
}
secrets {
  ike-group {
    secret = "load-psk"
  }
}
"""

FLOODER = r"""
import socket, struct, sys, time, os
mm1 = bytes.fromhex(sys.argv[1]); seconds = float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
dst = socket.inet_aton("10.231.0.2"); sent = nbytes = 0; end = time.monotonic() + seconds
while time.monotonic() < end:
    for _ in range(200):
        n = sent % 31000 + 1
        src = socket.inet_aton(f"10.231.{128 + n // 250}.{n % 250 + 1}")
        payload = sent.to_bytes(8, "big") + mm1[8:]
        udp = struct.pack("!HHHH", 500, 500, 8 + len(payload), 0) + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst)
        s.sendto(ip + udp, ("10.231.0.2", 0)); sent += 1; nbytes += len(ip) + len(udp)
print(sent, nbytes)
"""


def tx_bytes(ns: object, ifname: str) -> int:
    return int(ns.run("cat", f"/sys/class/net/{ifname}/statistics/tx_bytes").stdout)  # type: ignore[attr-defined]


def udp_rcvbuf_errors(ns: object) -> int:
    """Datagrams the kernel dropped in ``ns`` because a socket's receive buffer was full."""
    snmp = ns.run("cat", "/proc/net/snmp").stdout  # type: ignore[attr-defined]
    lines = [ln.split() for ln in snmp.splitlines() if ln.startswith("Udp:")]
    return int(dict(zip(lines[0], lines[1], strict=True))["RcvbufErrors"])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def mm1_hex() -> str:
    from snakeswan.config.loader import parse_config  # noqa: PLC0415
    from snakeswan.ike.engine import Engine  # noqa: PLC0415
    from tests.pair import site_config  # noqa: PLC0415

    a = Engine(
        parse_config(site_config("10.231.0.1", "10.231.0.2", "10.231.1.0/24", "10.231.2.0/24")), os.urandom
    )
    a.initiate("site", now=0.0)
    return a.datagrams_to_send(0.0)[0].data.hex()


def run(
    gateway: str, seconds: float, work: Path, profile: str | None = None, legit_n: int = 1
) -> dict[str, object]:
    topo = Topology()
    try:
        west, east = site_to_site(topo)
        east.run("ip", "route", "add", "10.231.128.0/17", "via", "10.231.0.1")  # answers cross the link
        if gateway == "snakeswan":
            (work / "ours").mkdir(parents=True, exist_ok=True)
            d = DaemonProcess(work / "ours", "east", GATEWAY_OURS, netns=east.name, log_level="info")
            topo.on_close(d.stop)
            pid = d.proc.pid
        else:
            c = Charon(east, work / "theirs", swanctl_conf=GATEWAY_THEIRS, default_log=-1)
            c.start()
            c.load_all()
            topo.on_close(c.stop)
            assert c.pid is not None
            pid = c.pid
        before = tx_bytes(east, "e0")
        drops_before = udp_rcvbuf_errors(east)
        flooder = west.popen(
            sys.executable, "-c", FLOODER, mm1_hex(), str(seconds), stdout=-1, stderr=-1, text=True
        )
        spy = None
        if profile:  # py-spy's view of the gateway during the flood (flamegraph-ready raw stacks)
            cmd = ["py-spy", "record", "-p", str(pid), "-d", str(int(seconds)), "--format", "raw"]
            spy = subprocess.Popen([*cmd, "-o", f"{profile}.{gateway}.txt"], stdout=-1, stderr=-1)
        time.sleep(min(2.0, seconds / 3))  # the legitimate peer arrives in the middle of the flood
        cmd = [sys.executable, "-m", "snakeswan.cli.main", "load", "10.231.0.2"]
        cmd += ["--local", "10.231.0.1", "--psk", "load-psk", "-n", str(legit_n), "--concurrency", "1"]
        cmd += ["--remote-ts", "10.231.2.0/24"]
        cmd += ["--timeout", "60", "--json", "-q"]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        legit = json.loads(west.run(*cmd, check=False, timeout=90, env=env).stdout)
        out, err = flooder.communicate(timeout=seconds + 30)
        if not out.strip():
            raise RuntimeError(f"flooder failed: {err}")
        sent, bytes_in = (int(x) for x in out.split())
        if spy is not None:
            spy.communicate(timeout=30)
        time.sleep(1.0)
        bytes_out = tx_bytes(east, "e0") - before
        shed = ""
        if gateway == "snakeswan":
            lines = [ln for ln in d.log().splitlines() if "dropped before parsing" in ln]
            found = re.search(r"\d+ IKE datagrams dropped before parsing.*", lines[-1]) if lines else None
            shed = found.group(0) if found else "nothing shed"
        return {
            "sent": sent,
            "bytes_in": bytes_in,
            "bytes_out": bytes_out,
            "legit": legit,
            "rss_kib": rss_kib(pid),
            "kernel_drops": udp_rcvbuf_errors(east) - drops_before,
            "shed": shed,
        }
    finally:
        topo.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--gateways", nargs="+", default=["snakeswan", "strongswan"])
    ap.add_argument("--legit", type=int, default=1, help="tunnels the legitimate peer makes, one at a time")
    ap.add_argument("--profile", help="py-spy the gateways to PREFIX.<gateway>.txt (raw stacks)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ssw-flood-") as tmp:
        head = ("gateway", "MM1s", "MiB in", "MiB out", "out/in", "legit p50/max", "peak RSS", "kernel drops")
        print("{:>10} {:>8} {:>8} {:>8} {:>7} {:>18} {:>10} {:>12}".format(*head))
        notes = []
        for gw in args.gateways:
            r = run(gw, args.seconds, Path(tmp), args.profile, args.legit)
            legit = r["legit"]
            lat = legit["latency_ms"] or {}  # type: ignore[index]
            took = f"{lat['p50']}/{lat['p99']}" if lat else "failed"  # type: ignore[index]
            if legit["established"] != args.legit:  # type: ignore[index]
                took += f" ({legit['established']}/{args.legit} up)"  # type: ignore[index]
            ratio = int(r["bytes_out"]) / max(int(r["bytes_in"]), 1)  # type: ignore[call-overload]
            mib_in, mib_out = int(r["bytes_in"]) / 2**20, int(r["bytes_out"]) / 2**20  # type: ignore[call-overload]
            rss = int(r["rss_kib"]) // 1024  # type: ignore[call-overload]
            print(
                f"{gw:>10} {r['sent']:>8} {mib_in:>8.1f} {mib_out:>8.1f} "
                f"{ratio:>7.2f} {took + ' ms':>18} {rss:>7} MiB {r['kernel_drops']:>12}"
            )
            if r["shed"]:
                notes.append(f"{gw} shed before parsing: {r['shed']}")
        for line in notes:
            print(line)


if __name__ == "__main__":
    main()
