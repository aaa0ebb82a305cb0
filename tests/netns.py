"""Network namespaces for integration and interop tests.

Every namespace a test creates is named ``ssw<tag>-<role>`` (``ssw3f2a-west``), where the tag is
random per :class:`Topology`, so parallel runs never collide. A :class:`Topology` removes all of its
namespaces (killing every process still inside them first) when it closes, even when the test
failed; :func:`cleanup_stale` removes what killed earlier runs left behind (the owner of each tag is
recorded in :data:`OWNERS_DIR`, and only tags whose owner process is gone are touched).

Ground rules: addresses in 10.231.0.0/16 only, traffic only inside the namespaces we create.
This kernel has no ``dummy`` driver: :func:`protected` builds a "protected subnet" from a veth pair
whose two ends stay in one namespace (as the shell lab's ``protected()`` does).
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

PREFIX = "ssw"
ALLOWED_NET = ipaddress.ip_network("10.231.0.0/16")
IFNAMSIZ = 15
OWNERS_DIR = Path(tempfile.gettempdir()) / "ssw-netns-owners"
_NS_RE = re.compile(rf"^{PREFIX}([0-9a-f]{{4,8}})-[A-Za-z0-9_.-]+$")


class NetnsError(RuntimeError):
    """A namespace command failed (the message holds the command and its output)."""


def _check_addr(cidr: str) -> None:
    iface = ipaddress.ip_interface(cidr)
    if iface.ip not in ALLOWED_NET:
        raise ValueError(f"{cidr}: tests only use addresses in {ALLOWED_NET}")


def _check_ifname(name: str) -> None:
    if not name or len(name) > IFNAMSIZ or "/" in name or " " in name:
        raise ValueError(f"bad interface name {name!r} (at most {IFNAMSIZ} characters)")


def _run(
    cmd: Sequence[str], *, check: bool = True, timeout: float = 30, **kw: Any
) -> subprocess.CompletedProcess[str]:
    try:
        cp = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False, **kw)
    except subprocess.TimeoutExpired as e:
        raise NetnsError(f"timed out after {timeout}s: {' '.join(cmd)}") from e
    if check and cp.returncode != 0:
        raise NetnsError(
            f"exit {cp.returncode}: {' '.join(cmd)}\nstdout: {cp.stdout.strip()}\nstderr: {cp.stderr.strip()}"
        )
    return cp


def _kill_pids(pids: Sequence[int], grace: float = 3.0) -> None:
    """SIGTERM the given processes, SIGKILL those still alive after ``grace`` seconds."""
    alive = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
            alive.append(pid)
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _pid_alive(p)]
        if alive:
            time.sleep(0.05)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _pid_alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap our own children (not ours: ChildProcessError)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Netns:
    """One network namespace. ``Netns.create(name)`` makes it; ``delete()`` removes it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._procs: list[subprocess.Popen[Any]] = []

    def __repr__(self) -> str:
        return f"Netns({self.name!r})"

    @classmethod
    def create(cls, name: str) -> Netns:
        _run(["ip", "netns", "add", name])
        ns = cls(name)
        try:
            ns.ip("link", "set", "lo", "up")
            ns.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
            ns.run("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", check=False)
            ns.run("sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", check=False)
        except Exception:
            ns.delete()
            raise
        return ns

    # -- commands -------------------------------------------------------------------------------
    def run(
        self, *cmd: str, check: bool = True, timeout: float = 30, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` inside the namespace (``ip netns exec``); output captured as text."""
        return _run(["ip", "netns", "exec", self.name, *cmd], check=check, timeout=timeout, **kw)

    def ip(self, *args: str, check: bool = True, timeout: float = 10) -> subprocess.CompletedProcess[str]:
        """``ip -n <ns> args...``"""
        return _run(["ip", "-n", self.name, *args], check=check, timeout=timeout)

    def popen(self, *cmd: str, **kw: Any) -> subprocess.Popen[Any]:
        """Start ``cmd`` inside the namespace in its own session; killed by :meth:`kill_processes`.

        ``ip netns exec`` execs the command, so ``Popen.pid`` is the command's pid.
        """
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("start_new_session", True)
        p = subprocess.Popen(["ip", "netns", "exec", self.name, *cmd], **kw)
        self._procs.append(p)
        return p

    # -- configuration --------------------------------------------------------------------------
    def add_addr(self, ifname: str, cidr: str) -> None:
        _check_addr(cidr)
        self.ip("addr", "add", cidr, "dev", ifname)

    def link_up(self, ifname: str) -> None:
        self.ip("link", "set", ifname, "up")

    def route(
        self,
        dst: str,
        *,
        via: str | None = None,
        dev: str | None = None,
        src: str | None = None,
        table: str | int | None = None,
    ) -> None:
        """``ip route add dst [via V] [dev D] [src S] [table T]`` inside the namespace."""
        args = ["route", "add", dst]
        if via:
            _check_addr(via)
            args += ["via", via]
        if dev:
            args += ["dev", dev]
        if src:
            args += ["src", src]
        if table is not None:
            args += ["table", str(table)]
        self.ip(*args)

    # -- teardown -------------------------------------------------------------------------------
    def pids(self) -> list[int]:
        """Processes living in this namespace (``ip netns pids``)."""
        cp = _run(["ip", "netns", "pids", self.name], check=False, timeout=10)
        return [int(x) for x in cp.stdout.split() if x.isdigit()]

    def kill_processes(self, grace: float = 3.0) -> None:
        """Stop what :meth:`popen` started and anything else still inside the namespace."""
        pids = {p.pid for p in self._procs if p.poll() is None}
        pids.update(self.pids())
        pids.discard(os.getpid())
        if pids:
            _kill_pids(sorted(pids), grace)
        for p in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=1)
        self._procs.clear()

    def exists(self) -> bool:
        return Path("/run/netns", self.name).exists()

    def delete(self) -> None:
        self.kill_processes()
        _run(["ip", "netns", "del", self.name], check=False, timeout=10)


CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def inside(ns: Netns) -> Iterator[None]:
    """Run the block with this thread in ``ns``'s network namespace (sockets and devices made
    in it stay there)."""
    with open("/proc/thread-self/ns/net") as home, open(f"/run/netns/{ns.name}") as target:
        if _libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {ns.name}")
        try:
            yield
        finally:
            if _libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back home")


def veth(ns_a: Netns, if_a: str, addr_a: str | None, ns_b: Netns, if_b: str, addr_b: str | None) -> None:
    """A veth pair ``if_a``@``ns_a`` <-> ``if_b``@``ns_b``, addressed (``10.231.0.1/24``) and up."""
    _check_ifname(if_a)
    _check_ifname(if_b)
    _run(
        [
            "ip",
            "link",
            "add",
            if_a,
            "netns",
            ns_a.name,
            "type",
            "veth",
            "peer",
            "name",
            if_b,
            "netns",
            ns_b.name,
        ]
    )
    for ns, ifname, addr in ((ns_a, if_a, addr_a), (ns_b, if_b, addr_b)):
        if addr:
            ns.add_addr(ifname, addr)
        ns.link_up(ifname)


def protected(ns: Netns, cidr: str, ifname: str = "ssw-lan") -> str:
    """Put ``cidr`` (``10.231.1.1/24``) on a veth pair whose both ends stay in ``ns``; returns
    the interface name. (No ``dummy`` driver here; a veth needs its peer up for carrier.)"""
    _check_ifname(ifname)
    peer = (ifname[: IFNAMSIZ - 1] + "p") if len(ifname) >= IFNAMSIZ else ifname + "p"
    _check_addr(cidr)
    ns.ip("link", "add", ifname, "type", "veth", "peer", "name", peer)
    ns.add_addr(ifname, cidr)
    ns.link_up(peer)
    ns.link_up(ifname)
    return ifname


# ICMP echo in Python, run inside the namespace (no dependency on iputils-ping, which is not
# always installed). Prints the number of echo replies received from DST.
_PING_SCRIPT = r"""
import os, socket, struct, sys, time
src, dst = sys.argv[1], sys.argv[2]
count, interval, deadline = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xFFFF); s += s >> 16
    return ~s & 0xFFFF
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
if src: s.bind((src, 0))
ident, got, end = os.getpid() & 0xFFFF, set(), time.monotonic() + deadline
for seq in range(1, count + 1):
    body = struct.pack("!d", time.time()) + bytes(48)
    hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    try: s.sendto(struct.pack("!BBHHH", 8, 0, csum(hdr + body), ident, seq) + body, (dst, 0))
    except OSError: pass  # no route (yet)
    wait_until = min(end, time.monotonic() + (interval if seq < count else 1.0))
    while True:
        left = wait_until - time.monotonic()
        if left <= 0 or (seq == count and len(got) == count): break
        s.settimeout(left)
        try: pkt, (addr, _) = s.recvfrom(2048)
        except socket.timeout: break
        ihl = (pkt[0] & 15) * 4
        t, _c, _k, i, q = struct.unpack("!BBHHH", pkt[ihl:ihl + 8])
        if t == 0 and i == ident and addr == dst: got.add(q)
    if time.monotonic() >= end: break
print(len(got))
"""


def ping(
    ns: Netns, src: str | None, dst: str, count: int = 3, timeout: float = 10, interval: float = 0.2
) -> int:
    """ICMP echo ``count`` times from ``ns`` (source address ``src``) to ``dst``; returns the number
    of replies (waiting 1 s for the last one, never longer than ``timeout`` overall)."""
    _check_addr(dst + "/32")
    cmd = [sys.executable, "-c", _PING_SCRIPT, src or "", dst, str(count), str(interval), str(timeout)]
    try:
        cp = ns.run(*cmd, check=True, timeout=timeout + 5)
    except NetnsError:
        return 0
    return int(cp.stdout.strip() or 0)


# -- ownership of tags, stale cleanup -------------------------------------------------------------
def _proc_start(pid: int) -> str | None:
    """The start time of a live process (None if gone or a zombie): a pid plus its start time
    names one process, even when pids are reused."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def _register_owner(tag: str) -> None:
    OWNERS_DIR.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    (OWNERS_DIR / tag).write_text(f"{pid} {_proc_start(pid)}\n")


def _owner_alive(tag: str) -> bool:
    try:
        pid_s, start = (OWNERS_DIR / tag).read_text().split()
    except (FileNotFoundError, ValueError):
        return False
    return _proc_start(int(pid_s)) == start


def list_namespaces() -> list[str]:
    cp = _run(["ip", "netns", "list"], check=False, timeout=10)
    return [line.split()[0] for line in cp.stdout.splitlines() if line.strip()]


def cleanup_stale(*, include_live: bool = False) -> list[str]:
    """Delete ``ssw<tag>-*`` namespaces whose owning test process is gone (or all of them with
    ``include_live``), killing the processes inside first. Returns the names removed."""
    removed = []
    for name in list_namespaces():
        m = _NS_RE.match(name)
        if not m or (not include_live and _owner_alive(m.group(1))):
            continue
        Netns(name).delete()
        removed.append(name)
        with contextlib.suppress(FileNotFoundError):
            (OWNERS_DIR / m.group(1)).unlink()
    return removed


def new_tag() -> str:
    return secrets.token_hex(2)


class Topology:
    """Named namespaces sharing one unique tag; a context manager that removes them all.

    >>> with Topology() as topo:
    ...     west, east = topo.add("west"), topo.add("east")
    """

    def __init__(self, tag: str | None = None) -> None:
        self.tag = tag or new_tag()
        while tag is None and any(n.startswith(f"{PREFIX}{self.tag}-") for n in list_namespaces()):
            self.tag = new_tag()
        self.namespaces: dict[str, Netns] = {}
        self._cleanups: list[Any] = []
        _register_owner(self.tag)

    def name(self, role: str) -> str:
        return f"{PREFIX}{self.tag}-{role}"

    def add(self, role: str) -> Netns:
        if role in self.namespaces:
            raise ValueError(f"namespace role {role!r} exists already")
        ns = Netns.create(self.name(role))
        self.namespaces[role] = ns
        return ns

    def __getitem__(self, role: str) -> Netns:
        return self.namespaces[role]

    def on_close(self, fn: Any) -> None:
        """Call ``fn()`` first thing at close (stop daemons cleanly before namespaces go)."""
        self._cleanups.append(fn)

    def close(self) -> None:
        errors: list[BaseException] = []
        for fn in reversed(self._cleanups):
            try:
                fn()
            except Exception as e:  # teardown must go on
                errors.append(e)
        self._cleanups.clear()
        for ns in reversed(list(self.namespaces.values())):
            try:
                ns.delete()
            except Exception as e:
                errors.append(e)
        self.namespaces.clear()
        with contextlib.suppress(FileNotFoundError):
            (OWNERS_DIR / self.tag).unlink()
        if errors:
            raise errors[0]

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def site_to_site(topo: Topology) -> tuple[Netns, Netns]:
    """The standard two-site layout: ``west`` 10.231.0.1/24 (LAN 10.231.1.1/24) and ``east``
    10.231.0.2/24 (LAN 10.231.2.1/24), joined by a veth ``w0``/``e0``."""
    west, east = topo.add("west"), topo.add("east")
    veth(west, "w0", "10.231.0.1/24", east, "e0", "10.231.0.2/24")
    protected(west, "10.231.1.1/24")
    protected(east, "10.231.2.1/24")
    return west, east


_netns_usable: tuple[bool, str] | None = None


def netns_usable() -> tuple[bool, str]:
    """(usable, reason): root, the ``ip`` tool and a working ``ip netns add``."""
    global _netns_usable  # noqa: PLW0603 — computed once per process
    if _netns_usable is None:
        _netns_usable = _probe()
    return _netns_usable


def _probe() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "needs root (network namespaces)"
    if shutil.which("ip") is None:
        return False, "needs iproute2 (ip)"
    name = f"{PREFIX}{new_tag()}-probe"
    try:
        cp = _run(["ip", "netns", "add", name], check=False, timeout=10)
        if cp.returncode != 0:
            return False, f"ip netns add failed: {cp.stderr.strip()}"
        cp = _run(
            ["ip", "-n", name, "link", "add", "p0", "type", "veth", "peer", "name", "p1"],
            check=False,
            timeout=10,
        )
        if cp.returncode != 0:
            return False, f"veth unavailable: {cp.stderr.strip()}"
    except (OSError, NetnsError) as e:
        return False, f"ip netns unusable: {e}"
    finally:
        _run(["ip", "netns", "del", name], check=False, timeout=10)
    return True, ""


def require_root() -> None:
    """Skip the test (fail it when ``CI`` is set) unless we are root with a usable ``ip netns``."""
    ok, reason = netns_usable()
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
