"""``snakeswan demo``: a site-to-site tunnel between two snakeswan gateways in network namespaces.

    host-a 10.231.11.2 -- gw-a (10.231.11.1, 10.231.0.1) ==ESP== gw-b (10.231.0.2, 10.231.12.1) -- host-b

Both gateways run ``snakeswan daemon`` with ``start_action = "trap"``: host-a's first packet to
host-b is "interesting traffic" and starts Main Mode + Quick Mode. Then ping and a TCP transfer go
through the tunnel, the negotiation trace and ``list-sas`` are printed, a capture on the gateways'
link shows that only ESP crosses it, and everything is removed. Needs root (namespaces, TUN).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from snakeswan.analysis import diagram
from snakeswan.analysis.records import parse_lines
from snakeswan.control.client import ControlError, request
from snakeswan.daemon.views import render_sas

WAN_A, WAN_B = "10.231.0.1", "10.231.0.2"
LAN_A, LAN_B = "10.231.11.0/24", "10.231.12.0/24"
HOST_A, HOST_B = "10.231.11.2", "10.231.12.2"
GW_A_LAN, GW_B_LAN = "10.231.11.1", "10.231.12.1"

GATEWAY_CONF = """
[connections.site]
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
proposals = ["aes128-sha256-modp2048"]
local = {{ auth = "psk" }}
remote = {{ auth = "psk" }}
[connections.site.children.lan]
local_ts = ["{lnet}"]
remote_ts = ["{rnet}"]
esp_proposals = ["aes128gcm16-modp2048"]
start_action = "trap"
[secrets.ike-site]
id = ["{local}", "{remote}"]
secret = "{psk}"
[daemon]
tun = "{tun}"
"""


class DemoError(RuntimeError):
    pass


def sh(*cmd: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess[str]:
    cp = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False)
    if check and cp.returncode != 0:
        raise DemoError(f"{' '.join(cmd)}: {cp.stderr.strip() or cp.stdout.strip()}")
    return cp


class Lab:
    """The four namespaces, their links, and the two daemons; ``close()`` removes all of it."""

    def __init__(self) -> None:
        tag = secrets.token_hex(2)
        self.ns = {role: f"ssdemo{tag}-{role}" for role in ("host-a", "gw-a", "gw-b", "host-b")}
        self.dir = Path(tempfile.mkdtemp(prefix="snakeswan-demo-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.tag = tag

    def ex(
        self, role: str, *cmd: str, timeout: float = 30, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", self.ns[role], *cmd, timeout=timeout, check=check)

    def build(self) -> None:
        for name in self.ns.values():
            sh("ip", "netns", "add", name)
            sh("ip", "-n", name, "link", "set", "lo", "up")
        self._link("host-a", "ha0", f"{HOST_A}/24", "gw-a", "gal0", f"{GW_A_LAN}/24")
        self._link("gw-a", "gaw0", f"{WAN_A}/24", "gw-b", "gbw0", f"{WAN_B}/24")
        self._link("gw-b", "gbl0", f"{GW_B_LAN}/24", "host-b", "hb0", f"{HOST_B}/24")
        sh("ip", "-n", self.ns["host-a"], "route", "add", "default", "via", GW_A_LAN)
        sh("ip", "-n", self.ns["host-b"], "route", "add", "default", "via", GW_B_LAN)
        for gw in ("gw-a", "gw-b"):
            self.ex(gw, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")

    def _link(self, a: str, ifa: str, addr_a: str, b: str, ifb: str, addr_b: str) -> None:
        ifa_t, ifb_t = f"{ifa}{self.tag}", f"{ifb}{self.tag}"
        sh(
            "ip",
            "link",
            "add",
            ifa_t,
            "netns",
            self.ns[a],
            "type",
            "veth",
            "peer",
            "name",
            ifb_t,
            "netns",
            self.ns[b],
        )
        for role, tmp, name, addr in ((a, ifa_t, ifa, addr_a), (b, ifb_t, ifb, addr_b)):
            sh("ip", "-n", self.ns[role], "link", "set", tmp, "name", name)
            sh("ip", "-n", self.ns[role], "addr", "add", addr, "dev", name)
            sh("ip", "-n", self.ns[role], "link", "set", name, "up")

    def start_daemon(self, gw: str, local: str, remote: str, lnet: str, rnet: str, psk: str) -> str:
        conf = self.dir / f"{gw}.toml"
        conf.write_text(
            GATEWAY_CONF.format(local=local, remote=remote, lnet=lnet, rnet=rnet, psk=psk, tun="ssw-tun0")
        )
        control = str(self.dir / f"{gw}.sock")
        log = open(self.dir / f"{gw}.log", "wb")  # noqa: SIM115 - closed with the process
        cmd = [sys.executable, "-m", "snakeswan.cli.main", "daemon", "-c", str(conf), "--control", control]
        self.procs.append(
            subprocess.Popen(["ip", "netns", "exec", self.ns[gw], *cmd], stdout=log, stderr=log)
        )
        end = time.monotonic() + 15
        while time.monotonic() < end:
            with contextlib.suppress(ControlError):
                request(control, "list-conns", timeout=2)
                return control
            if self.procs[-1].poll() is not None:
                break
            time.sleep(0.05)
        raise DemoError(f"daemon on {gw} did not start:\n{self.log(gw)}")

    def log(self, gw: str) -> str:
        path = self.dir / f"{gw}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        for name in self.ns.values():
            sh("ip", "netns", "del", name, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def capture(lab: Lab, gw: str, iface: str) -> Iterator[list[str]]:
    """tcpdump on the gateway link while the block runs; yields the list its lines end up in."""
    lines: list[str] = []
    out = lab.dir / f"tcpdump-{gw}.txt"
    with open(out, "wb") as f:
        p = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns[gw], "tcpdump", "-l", "-n", "-i", iface, "ip"],
            stdout=f,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # tcpdump needs a moment before its filter is live
        try:
            yield lines
        finally:
            time.sleep(0.5)
            p.terminate()
            p.wait(5)
    lines += out.read_text(errors="replace").splitlines()


def tcp_transfer(lab: Lab, nbytes: int) -> int:
    """Send ``nbytes`` from host-a to host-b over TCP; returns what host-b received."""
    server = (
        "import socket,sys\n"
        "s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
        f"s.bind(('{HOST_B}',5201));s.listen(1);s.settimeout(20);c,_=s.accept();n=0\n"
        "while True:\n d=c.recv(65536)\n if not d: break\n n+=len(d)\n"
        "print(n)\n"
    )
    client = (
        "import socket,time\n"
        f"for i in range(50):\n try: s=socket.create_connection(('{HOST_B}',5201),timeout=10); break\n"
        " except OSError: time.sleep(0.1)\n"
        f"s.sendall(b'x'*{nbytes});s.close()\n"
    )
    srv = subprocess.Popen(
        ["ip", "netns", "exec", lab.ns["host-b"], sys.executable, "-c", server],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.3)
    lab.ex("host-a", sys.executable, "-c", client, timeout=60)
    out, _ = srv.communicate(timeout=30)
    return int(out.strip() or 0)


def ping(lab: Lab, count: int) -> int:
    cp = lab.ex("host-a", "ping", "-c", str(count), "-i", "0.2", "-W", "2", HOST_B, timeout=30, check=False)
    m = re.search(r"(\d+) received", cp.stdout)
    return int(m.group(1)) if m else 0


def _trace(lab: Lab, gw: str) -> list[str]:
    keep = re.compile(
        r"snakeswan\.(ike|daemon|ipsec): (initiate|sent|received|ike_sa|child_sa|IKE SA|IPsec SA|acquire)"
    )
    return [line for line in lab.log(gw).splitlines() if keep.search(line)]


def run_demo(argv: Sequence[str] = ()) -> int:
    if os.geteuid() != 0:
        print("snakeswan demo: needs root (network namespaces and TUN devices)", file=sys.stderr)
        return 2
    for tool in ("ip", "ping", "tcpdump"):
        if shutil.which(tool) is None:
            print(f"snakeswan demo: needs {tool} (run scripts/setup.sh)", file=sys.stderr)
            return 2
    lab = Lab()
    try:
        print(f"== building 4 namespaces: {', '.join(lab.ns.values())}")
        lab.build()
        psk = secrets.token_hex(16)
        ctl_a = lab.start_daemon("gw-a", WAN_A, WAN_B, LAN_A, LAN_B, psk)
        ctl_b = lab.start_daemon("gw-b", WAN_B, WAN_A, LAN_B, LAN_A, psk)
        print(
            "== two snakeswan daemons running; the tunnel is trapped, not up:",
            request(ctl_a, "list-sas") == [],
        )
        with capture(lab, "gw-a", "gaw0") as wire:
            print(f"== ping host-a {HOST_A} -> host-b {HOST_B} (the first packet triggers IKE)")
            received = ping(lab, 10)
            print(f"   {received}/10 replies")
            nbytes = 4 << 20
            got = tcp_transfer(lab, nbytes)
            print(f"== TCP transfer host-a -> host-b: {got} of {nbytes} bytes arrived")
        print("== negotiation trace (gw-a)")
        for line in _trace(lab, "gw-a"):
            print("   " + line[line.find("snakeswan.") :])
        print("== sequence diagram (gw-a's view, each message explained)")
        entries = list(parse_lines(lab.log("gw-a").splitlines()))
        print(
            diagram.render_text(
                diagram.steps(entries), "gw-a", f"peer {diagram.peer_of(entries)}", explain=True
            )
        )
        print("== list-sas (gw-a)")
        print(render_sas(request(ctl_a, "list-sas")))
        print("== list-sas (gw-b)")
        print(render_sas(request(ctl_b, "list-sas")))
        esp = sum(1 for w in wire if "ESP(spi=" in w)
        clear = sum(1 for w in wire if (HOST_A in w or HOST_B in w) and "ESP" not in w)
        print(
            f"== on the wire between the gateways: {esp} ESP packets, "
            f"{clear} packets of host-a/host-b in clear"
        )
        for w in wire[:4]:
            print("   " + w)
        ok = received >= 8 and got == nbytes and esp > 0 and clear == 0
        print("== demo PASSED: traffic went through the tunnel" if ok else "== demo FAILED")
        if not ok:
            print(lab.log("gw-a")[-4000:])
        return 0 if ok else 1
    except (DemoError, ControlError, subprocess.TimeoutExpired) as e:
        print(f"snakeswan demo: {e}", file=sys.stderr)
        return 1
    finally:
        lab.close()
        print("== namespaces removed")
