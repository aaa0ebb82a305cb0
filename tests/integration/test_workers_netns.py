"""Two snakeswan daemons with two data-plane workers each (``[daemon] workers = 2``), in
namespaces: traffic both ways, flows the kernel gave to the wrong worker handed to the pair's
owner and delivered, the owner's counters in the daemon's listing, a rekey, and a killed worker
started again with the traffic going on."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemons import DaemonProcess, wait_for
from tests.netns import Netns, ping, site_to_site

pytestmark = pytest.mark.netns

CONF = """
[daemon]
workers = 2
[connections.gw]
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
proposals = ["aes128-sha256-modp2048"]
encap = {encap}
local = {{ auth = "psk" }}
remote = {{ auth = "psk" }}
[connections.gw.children.net]
local_ts = ["{lnet}"]
remote_ts = ["{rnet}"]
esp_proposals = ["aes128gcm16"]
start_action = "trap"
[secrets.ike-gw]
id = ["{local}", "{remote}"]
secret = "workers-test-psk"
"""

RECEIVE = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.231.2.1", 5555))
s.settimeout(0.5)
print("ready", flush=True)
got, deadline = set(), time.monotonic() + 15
while len(got) < int(sys.argv[1]) and time.monotonic() < deadline:
    try:
        data, peer = s.recvfrom(100)
    except TimeoutError:
        continue
    got.add(peer[1])
print(len(got), flush=True)
"""

SEND = """
import socket, sys
for i in range(int(sys.argv[1])):  # a flow each: a socket each, so a source port each
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("10.231.1.1", 0))
    s.sendto(b"flow %d" % i, ("10.231.2.1", 5555))
    s.close()
"""


def pair(
    topology: Any, tmp_path: Path, encap: bool = False
) -> tuple[Netns, Netns, DaemonProcess, DaemonProcess]:
    topo = topology()
    west, east = site_to_site(topo)
    daemons = []
    for ns, name, local, remote, lnet, rnet in (
        (east, "east", "10.231.0.2", "10.231.0.1", "10.231.2.0/24", "10.231.1.0/24"),
        (west, "west", "10.231.0.1", "10.231.0.2", "10.231.1.0/24", "10.231.2.0/24"),
    ):
        conf = CONF.format(local=local, remote=remote, lnet=lnet, rnet=rnet, encap=str(encap).lower())
        d = DaemonProcess(tmp_path, name, conf, netns=ns.name, log_level="info")
        topo.on_close(d.stop)
        daemons.append(d)
    e, w = daemons
    return west, east, w, e


def workers(d: DaemonProcess) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = d.cmd("list-pols")["workers"]
    return result


def child(d: DaemonProcess) -> dict[str, Any]:
    sas = d.sas()
    assert sas and sas[0]["children"], sas
    result: dict[str, Any] = sas[0]["children"][0]
    return result


def iperf(west: Netns, east: Netns, seconds: int, streams: int = 1) -> int:
    """Bytes iperf3 moved from west's LAN to east's through the tunnel."""
    srv = east.popen("iperf3", "-s", "-1", "-B", "10.231.2.1", stdout=-3, stderr=-3)
    try:
        time.sleep(0.5)
        cp = west.run(
            "iperf3",
            "-c",
            "10.231.2.1",
            "-B",
            "10.231.1.1",
            "-t",
            str(seconds),
            "-P",
            str(streams),
            "-J",
            timeout=60,
        )
    finally:
        srv.kill()
        srv.wait()
    moved: int = json.loads(cp.stdout)["end"]["sum_received"]["bytes"]
    return moved


def flows(west: Netns, east: Netns, n: int) -> int:
    """``n`` UDP flows from west's LAN to east's, a datagram each: how many east received."""
    rx = east.popen(sys.executable, "-c", RECEIVE, str(n), stdout=-1, text=True)
    try:
        assert rx.stdout is not None and rx.stdout.readline().strip() == "ready"
        west.run(sys.executable, "-c", SEND, str(n), check=True)
        out, _ = rx.communicate(timeout=30)
    finally:
        if rx.poll() is None:
            rx.kill()
            rx.wait()
    return int(out.strip())


@pytest.mark.parametrize("encap", [False, True], ids=["raw-esp", "esp-in-udp"])
def test_two_workers_a_side_carry_traffic_to_its_owner(topology: Any, tmp_path: Path, encap: bool) -> None:
    """The pair's owner is its inbound SPI mod 2, raw ESP and ESP-in-UDP alike; what the kernel
    queues for the other worker (a flow's TUN queue) is handed to it."""
    west, east, w, e = pair(topology, tmp_path, encap)
    for d in (w, e):
        ws = workers(d)
        assert [x["worker"] for x in ws] == [0, 1]
        assert all(x["pid"] for x in ws)
    assert ping(west, "10.231.1.1", "10.231.2.1", count=4) >= 3  # the first starts Quick Mode
    assert flows(west, east, 16) == 16
    sent = iperf(west, east, 2, streams=4)
    assert sent > 1_000_000
    # each new flow went to the queue its hash chose; half of them not the owner's: handed over
    handed = sum(x.get("handed_out", 0) for x in workers(w))
    assert handed >= 1
    assert sum(x.get("handoff_lost", 0) for x in workers(w) + workers(e)) == 0
    time.sleep(1.5)  # the owners' reports (once a second)
    assert child(e)["bytes_in"] >= sent
    assert child(w)["bytes_out"] >= sent
    assert e.sas()[0]["encap"] == encap
    # each side's inbound SPI names the owner, and the kernel gave the owner its ESP (west's is
    # iperf3's acknowledgements): raw ESP by the SPI filter of worker 1's raw socket, ESP-in-UDP
    # by the program of the NAT-T port's SO_REUSEPORT group, whose IKE stays with the daemon
    for d, least in ((e, 1000), (w, 100)):
        read = workers(d)[1].get("udp_read" if encap else "esp_read", 0)
        if int(child(d)["spi_in"], 16) % 2:
            assert read > least
        else:
            assert read == 0  # worker 1's socket kept none of it
        assert workers(d)[1].get("udp_not_esp", 0) == 0


@pytest.mark.parametrize("encap", [False, True], ids=["raw-esp", "esp-in-udp"])
def test_rekey_and_a_killed_worker_keep_the_traffic(topology: Any, tmp_path: Path, encap: bool) -> None:
    """A worker killed is started again with the whole state and its sockets: ESP-in-UDP's place
    in the NAT-T group is the daemon's to keep (it holds every member)."""
    west, east, w, e = pair(topology, tmp_path, encap)
    assert ping(west, "10.231.1.1", "10.231.2.1", count=4) >= 3
    first = child(w)["spi_in"]
    w.cmd("rekey", conn="gw")
    wait_for(
        lambda: child(w)["spi_in"] != first and len(w.sas()[0]["children"]) == 1, timeout=20, what="rekey"
    )
    assert ping(west, "10.231.1.1", "10.231.2.1", count=3) == 3
    for d in (w, e):
        old = workers(d)[1]["pid"]
        os.kill(old, signal.SIGKILL)
        wait_for(
            lambda d=d, old=old: workers(d)[1]["pid"] not in (None, old), timeout=15, what="a new worker 1"
        )
        assert ping(west, "10.231.1.1", "10.231.2.1", count=3, interval=0.5) >= 2
        assert flows(west, east, 8) == 8
    assert "data-plane worker 1 exited" in w.log_path.read_text()
    assert iperf(west, east, 1) > 100_000
    second = child(w)["spi_in"]  # IKE (on port 4500 with ESP-in-UDP) still reaches the daemon
    w.cmd("rekey", conn="gw")
    wait_for(
        lambda: child(w)["spi_in"] != second and len(w.sas()[0]["children"]) == 1, timeout=20, what="rekey"
    )
    assert ping(west, "10.231.1.1", "10.231.2.1", count=3) == 3
    # the queues and the workers are made at start: a reload may not change their number
    w.config_path.write_text(w.config_path.read_text().replace("workers = 2", "workers = 3"))
    with pytest.raises(Exception, match=r"daemon\.workers: changing it needs a restart"):
        w.cmd("reload")
    assert len(workers(w)) == 2
