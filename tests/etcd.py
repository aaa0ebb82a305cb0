"""Real etcd members for tests (Debian ``etcd-server`` 3.4, installed by scripts/setup.sh).

* :func:`local_etcd` — one member on loopback (free ports, a temporary data dir), for unit tests
  of the store and of leadership;
* :func:`netns_cluster` — three members, each in its own namespace of a :class:`tests.netns.Topology`
  on a bridge ``10.231.9.0/24`` (members ``.1 .2 .3``); any other namespace joins that bridge
  with :func:`join_bridge`.

Timings are shortened (heartbeat 50 ms, election 500 ms) so that a lost leader is replaced in
well under a second and a lease TTL of 2 s is allowed (etcd's minimum is 1.5 election timeouts).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from snakeswan.io.etcd_client import EtcdClient, EtcdError
from tests.netns import Netns, Topology, veth

ETCD = "/usr/bin/etcd"
TIMING = ("--heartbeat-interval", "50", "--election-timeout", "500")
BRIDGE_NET = "10.231.9"


def require_etcd() -> None:
    if not (os.access(ETCD, os.X_OK) and shutil.which("etcdctl")):
        if os.environ.get("CI"):
            pytest.fail("etcd not installed (bash scripts/setup.sh)", pytrace=False)
        pytest.skip("etcd not installed (bash scripts/setup.sh)")


def _free_tcp_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def wait_healthy(endpoints: list[str], timeout: float = 15.0) -> None:
    client = EtcdClient(endpoints, timeout=0.5)
    end = time.monotonic() + timeout
    last = ""
    try:
        while time.monotonic() < end:
            try:
                client.call("kv/put", {"key": "aGVhbHRo", "value": "b2s="})  # health = ok
                return
            except EtcdError as e:
                last = str(e)
                time.sleep(0.1)
    finally:
        client.close()
    raise AssertionError(f"etcd at {endpoints} not healthy after {timeout}s: {last}")


@dataclass
class Member:
    name: str
    client_url: str
    proc: subprocess.Popen[bytes]
    log: Path
    ns: Netns | None = None
    member_id: int = 0

    def kill(self) -> None:
        """``kill -9``: the member is gone at once, as in a crash."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@dataclass
class Cluster:
    members: list[Member] = field(default_factory=list)

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def leader(self) -> Member:
        """The member that is the raft leader now (asked through a live member, from inside its
        namespace when the cluster lives in namespaces)."""
        for m in self.members:
            if m.proc.poll() is not None:
                continue
            cmd = ["etcdctl", "--endpoints", m.client_url, "endpoint", "status", "-w", "json"]
            if m.ns is not None:
                cp = m.ns.run(*cmd, check=False)
            else:
                cp = subprocess.run(cmd, check=False, capture_output=True, text=True)
            with contextlib.suppress(ValueError, KeyError, IndexError):
                st = json.loads(cp.stdout)[0]["Status"]
                leader = st["leader"]
                for other in self.members:
                    if other.member_id == leader:
                        return other
                if st["header"]["member_id"] == leader:
                    return m
        raise AssertionError("no etcd leader")

    def stop(self) -> None:
        for m in self.members:
            m.stop()


def _member_cmd(name: str, data: Path, client: str, peer: str, initial: str, token: str) -> list[str]:
    return [
        ETCD,
        "--name",
        name,
        "--data-dir",
        str(data),
        "--listen-client-urls",
        client,
        "--advertise-client-urls",
        client,
        "--listen-peer-urls",
        peer,
        "--initial-advertise-peer-urls",
        peer,
        "--initial-cluster",
        initial,
        "--initial-cluster-state",
        "new",
        "--initial-cluster-token",
        token,
        *TIMING,
    ]


@contextlib.contextmanager
def local_etcd(workdir: Path) -> Iterator[Cluster]:
    """One etcd member on 127.0.0.1 (free ports), stopped and its data removed afterwards."""
    require_etcd()
    cport, pport = _free_tcp_ports(2)
    client, peer = f"http://127.0.0.1:{cport}", f"http://127.0.0.1:{pport}"
    log = workdir / "etcd.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            _member_cmd("solo", workdir / "etcd-data", client, peer, f"solo={peer}", "ssw-solo"),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    cluster = Cluster([Member("solo", client, proc, log)])
    try:
        wait_healthy(cluster.endpoints)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(workdir / "etcd-data", ignore_errors=True)


def bridge(topo: Topology, role: str = "lan") -> Netns:
    """A namespace holding a bridge ``br0`` (one LAN segment); ports join with :func:`join_bridge`."""
    ns = topo.add(role)
    ns.ip("link", "add", "br0", "type", "bridge")
    ns.link_up("br0")
    return ns


def join_bridge(lan: Netns, ns: Netns, ifname: str, cidr: str, port: str) -> None:
    """A veth ``ifname``@``ns`` (addressed ``cidr``) whose other end ``port`` is a port of ``br0``."""
    veth(ns, ifname, cidr, lan, port, None)
    lan.ip("link", "set", port, "master", "br0")


def netns_cluster(topo: Topology, lan: Netns, workdir: Path) -> Cluster:
    """Three etcd members ``etcd1..3`` in namespaces on the bridge ``lan`` (10.231.9.1-3)."""
    require_etcd()
    names = ["etcd1", "etcd2", "etcd3"]
    addrs = {n: f"{BRIDGE_NET}.{i + 1}" for i, n in enumerate(names)}
    initial = ",".join(f"{n}=http://{a}:2380" for n, a in addrs.items())
    cluster = Cluster()
    for i, n in enumerate(names):
        ns = topo.add(n)
        join_bridge(lan, ns, "eth0", f"{addrs[n]}/24", f"p{n}")
        log = workdir / f"{n}.log"
        with open(log, "wb") as out:
            cmd = _member_cmd(
                n,
                workdir / f"{n}-data",
                f"http://{addrs[n]}:2379",
                f"http://{addrs[n]}:2380",
                initial,
                topo.tag,
            )
            proc = ns.popen(*cmd, stdout=out, stderr=subprocess.STDOUT)
        cluster.members.append(Member(n, f"http://{addrs[n]}:2379", proc, log, ns))
        del i
    topo.on_close(cluster.stop)
    _wait_from(cluster.members[0].ns, cluster.endpoints)
    for m in cluster.members:  # each member's ID, to name the leader
        cmd = ["etcdctl", "--endpoints", m.client_url, "endpoint", "status", "-w", "json"]
        assert m.ns is not None
        m.member_id = int(json.loads(m.ns.run(*cmd).stdout)[0]["Status"]["header"]["member_id"])
    return cluster


def _wait_from(ns: Netns | None, endpoints: list[str], timeout: float = 20.0) -> None:
    """Wait until the cluster accepts a write, asked from inside ``ns`` (the test process itself
    is in no namespace of the topology, so it cannot reach 10.231.9.x)."""
    assert ns is not None
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        cp = ns.run(
            "etcdctl",
            "--endpoints",
            ",".join(endpoints),
            "--dial-timeout",
            "1s",
            "put",
            "health",
            "ok",
            check=False,
        )
        if cp.returncode == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"etcd cluster {endpoints} did not come up")
