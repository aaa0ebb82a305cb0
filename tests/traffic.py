"""Traffic and wire helpers for the data plane namespace tests: two-daemon configurations, TCP
transfers, ICMPv6 echo, an IPv6 site-to-site topology, and packet captures (tcpdump) read back
with tshark.

Ground rules as in :mod:`tests.netns`: IPv4 addresses in 10.231.0.0/16, IPv6 addresses in the
unique local prefix :data:`V6_NET` (fdad:231::/32), traffic only inside the namespaces we create.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.netns import ALLOWED_NET, IFNAMSIZ, Netns, NetnsError, Topology, veth

V6_NET = ipaddress.ip_network("fdad:231::/32")
PSK = "dataplane-modes-psk"


def _check(address: str) -> None:
    ip = ipaddress.ip_interface(address).ip
    if ip not in ALLOWED_NET and ip not in V6_NET:
        raise ValueError(f"{address}: tests only use addresses in {ALLOWED_NET} and {V6_NET}")


# -- configuration ----------------------------------------------------------------------------------
def child(name: str, **options: Any) -> str:
    """A ``[connections.gw.children.<name>]`` table; lists and strings are written as TOML."""
    lines = [f"[connections.gw.children.{name}]"]
    for key, value in options.items():
        text = json.dumps([str(v) for v in value] if isinstance(value, list | tuple) else value)
        lines.append(f"{key} = {text}")  # JSON strings and arrays of them are TOML too
    return "\n".join(lines) + "\n"


def config(local: str, remote: str, *children: str, daemon: str = "") -> str:
    """A daemon configuration: connection ``gw`` (Main Mode PSK) between ``local`` and ``remote``."""
    return f"""{daemon}
[connections.gw]
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
proposals = ["aes128-sha256-modp2048"]
local = {{ auth = "psk" }}
remote = {{ auth = "psk" }}
{"".join(children)}
[secrets.ike-gw]
id = ["{local}", "{remote}"]
secret = "{PSK}"
"""


# -- traffic ------------------------------------------------------------------------------------------
_SERVER = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port)); s.listen(1); print("ready", flush=True)
s.settimeout(30); c, _ = s.accept(); c.settimeout(30); n = 0
while True:
    d = c.recv(65536)
    if not d: break
    n += len(d)
print(n, flush=True)
"""

_CLIENT = """
import socket, sys, time
dst, port, src, nbytes = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
for i in range(100):
    try:
        s = socket.create_connection((dst, port), timeout=10, source_address=(src, 0)); break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("no connection")
s.settimeout(30)
s.sendall(b"y" * nbytes); s.shutdown(socket.SHUT_WR); s.recv(1); s.close()
"""


def tcp_transfer(
    src_ns: Netns, dst_ns: Netns, dst: str, src: str, nbytes: int = 1 << 20, port: int = 5201
) -> int:
    """Send ``nbytes`` over TCP from ``src`` (in ``src_ns``) to ``dst``:``port`` (in ``dst_ns``);
    returns how many bytes the server received (0 if the connection failed)."""
    _check(dst)
    _check(src)
    srv = dst_ns.popen(sys.executable, "-c", _SERVER, dst, str(port), stdout=subprocess.PIPE, text=True)
    try:
        assert srv.stdout is not None
        if srv.stdout.readline().strip() != "ready":
            return 0
        cp = src_ns.run(
            sys.executable, "-c", _CLIENT, dst, str(port), src, str(nbytes), check=False, timeout=60
        )
        if cp.returncode != 0:
            return 0
        out, _ = srv.communicate(timeout=30)
        return int(out.strip() or 0)
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait(5)


_PING6 = r"""
import os, socket, struct, sys, time
src, dst = sys.argv[1], sys.argv[2]
count, interval, deadline = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)  # the kernel sums
if src: s.bind((src, 0))
ident, got, end = os.getpid() & 0xFFFF, set(), time.monotonic() + deadline
for seq in range(1, count + 1):
    try: s.sendto(struct.pack("!BBHHH", 128, 0, 0, ident, seq) + bytes(56), (dst, 0))
    except OSError: pass
    wait_until = min(end, time.monotonic() + (interval if seq < count else 1.0))
    while True:
        left = wait_until - time.monotonic()
        if left <= 0 or (seq == count and len(got) == count): break
        s.settimeout(left)
        try: pkt, addr = s.recvfrom(2048)
        except socket.timeout: break
        t, _c, _k, i, q = struct.unpack("!BBHHH", pkt[:8])
        if t == 129 and i == ident and addr[0] == dst: got.add(q)
    if time.monotonic() >= end: break
print(len(got))
"""


def ping6(ns: Netns, src: str | None, dst: str, count: int = 3, timeout: float = 10) -> int:
    """ICMPv6 echo ``count`` times from ``ns`` (source ``src``) to ``dst``; the number of replies."""
    _check(dst)
    cmd = [sys.executable, "-c", _PING6, src or "", dst, str(count), "0.2", str(timeout)]
    try:
        cp = ns.run(*cmd, timeout=timeout + 5)
    except NetnsError:
        return 0
    return int(cp.stdout.strip() or 0)


# -- IPv6 topology ------------------------------------------------------------------------------------
def enable_ipv6(ns: Netns) -> None:
    """IPv6 on (tests.netns turns it off) for the interfaces created from now on, without DAD."""
    for key in ("all", "default"):
        ns.run("sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=0")
        ns.run("sysctl", "-qw", f"net.ipv6.conf.{key}.accept_dad=0")
    ns.run("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
    ns.run("sysctl", "-qw", "net.ipv6.conf.lo.disable_ipv6=0")


def add_addr6(ns: Netns, ifname: str, cidr: str) -> None:
    _check(cidr)
    ns.ip("-6", "addr", "add", cidr, "dev", ifname, "nodad")


def lan(ns: Netns, ifname: str, *cidrs: str) -> None:
    """A "protected subnet" (a veth pair whose both ends stay in ``ns``) holding ``cidrs``."""
    peer = ifname[: IFNAMSIZ - 1] + "p"
    ns.ip("link", "add", ifname, "type", "veth", "peer", "name", peer)
    for cidr in cidrs:
        if ":" in cidr:
            add_addr6(ns, ifname, cidr)
        else:
            ns.add_addr(ifname, cidr)
    ns.link_up(peer)
    ns.link_up(ifname)


def site_to_site6(topo: Topology) -> tuple[Netns, Netns]:
    """Dual-stack sites: ``west`` fdad:231::1 / 10.231.0.1 (LANs fdad:231:1::1/64, 10.231.1.1/24)
    and ``east`` fdad:231::2 / 10.231.0.2 (LANs fdad:231:2::1/64, 10.231.2.1/24), a veth between."""
    west, east = topo.add("west"), topo.add("east")
    for ns in (west, east):
        enable_ipv6(ns)
    veth(west, "w0", "10.231.0.1/24", east, "e0", "10.231.0.2/24")
    add_addr6(west, "w0", "fdad:231::1/64")
    add_addr6(east, "e0", "fdad:231::2/64")
    lan(west, "ssw-lan", "10.231.1.1/24", "fdad:231:1::1/64")
    lan(east, "ssw-lan", "10.231.2.1/24", "fdad:231:2::1/64")
    return west, east


# -- captures -----------------------------------------------------------------------------------------
class Capture:
    """``tcpdump -i IFACE -w FILE`` in a namespace, started when the capture is live; read back
    with :meth:`fields` (tshark) after :meth:`stop`."""

    def __init__(self, ns: Netns, iface: str, path: Path, bpf: str = "not arp and not icmp6") -> None:
        self.path = path
        self.proc = ns.popen(
            "tcpdump",
            "-i",
            iface,
            "-n",
            "-U",
            "-s",
            "0",
            "-w",
            str(path),
            bpf,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        seen = ""
        for _ in range(5):  # "tcpdump: listening on w0, ..." once the filter is live
            line = self.proc.stderr.readline()
            seen += line
            if "listening on" in line or not line:
                break
        if "listening on" not in seen:
            self.stop()
            raise AssertionError(f"tcpdump did not start: {seen}")
        time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            time.sleep(0.3)  # let the last packets in
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def fields(self, display_filter: str, *fields: str, opts: Sequence[str] = ()) -> list[list[str]]:
        """One row per packet matching ``display_filter``: the values of ``fields`` (tshark -T fields)."""
        self.stop()
        args = ["tshark", "-n", "-r", str(self.path), *opts, "-Y", display_filter, "-T", "fields"]
        args += [a for f in fields or ("frame.number",) for a in ("-e", f)]
        cp = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
        return [line.split("\t") for line in cp.stdout.splitlines() if line.strip()]

    def count(self, display_filter: str, opts: Sequence[str] = ()) -> int:
        return len(self.fields(display_filter, opts=opts))


@contextlib.contextmanager
def capture(ns: Netns, iface: str, path: Path, bpf: str = "not arp and not icmp6") -> Iterator[Capture]:
    cap = Capture(ns, iface, path, bpf)
    try:
        yield cap
    finally:
        cap.stop()


def keylog_opts(keylog: Path) -> list[str]:
    """tshark options that decrypt ESP with a daemon's ``--keylog`` lines (and check the ICVs)."""
    opts = ["-o", "esp.enable_encryption_decode:TRUE", "-o", "esp.enable_authentication_check:TRUE"]
    for line in keylog.read_text().splitlines():
        if line.startswith('"'):
            opts += ["-o", f"uat:esp_sa:{line}"]
    return opts


def ip_rules(ns: Netns, version: int = 4) -> str:
    return ns.ip(f"-{version}", "rule", "show").stdout


def raw_frames(path: Path) -> list[bytes]:
    """The IP packets of a classic pcap file written by tcpdump on an Ethernet link (frame N of
    tshark is element N - 1)."""
    data = path.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    skip = 14 if linktype == 1 else 0
    out, pos = [], 24
    while pos + 16 <= len(data):
        caplen = struct.unpack(endian + "I", data[pos + 8 : pos + 12])[0]
        out.append(data[pos + 16 + skip : pos + 16 + caplen])
        pos += 16 + caplen
    return out


_INJECT = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.SOL_SOCKET, 36, int(sys.argv[3]))  # SO_MARK: around the TUN's table
s.sendto(bytes.fromhex(sys.argv[1]), (sys.argv[2], 0))
"""


def inject(ns: Netns, packet: bytes, dst: str, mark: int = 0x42) -> None:
    """Send the complete IPv4 ``packet`` from ``ns`` (IP_HDRINCL), with the daemon's mark so that
    it is not routed into the TUN device."""
    _check(dst)
    ns.run(sys.executable, "-c", _INJECT, packet.hex(), dst, str(mark))
