"""The daemon's host networking over netlink (issues 11 and 17), in namespaces:

- without any ``ip`` binary on its PATH the daemon still routes, marks, brings a tunnel up that
  carries traffic, and removes everything at stop;
- an address added at run time gets the own-traffic bypass policies (and loses them when it goes),
  followed through the netlink monitor, not polling;
- ``kill -9`` and a start again: exactly one TUN-table rule, no rule of a pass shunt the new
  configuration no longer has, no stale route, and the tunnel works;
- a cluster share's address (io/vip.py) is added with its lifetime and removed over netlink.
"""

from __future__ import annotations

import ipaddress
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from snakeswan.io import vip
from tests.daemons import DaemonProcess, wait_for
from tests.netns import Netns, inside, ping, site_to_site

pytestmark = pytest.mark.netns

CONF = """
[connections.gw]
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
proposals = ["aes128-sha256-modp2048"]
local = {{ auth = "psk" }}
remote = {{ auth = "psk" }}
[connections.gw.children.net]
local_ts = ["{lnet}"]
remote_ts = ["{rnet}"]
esp_proposals = ["aes128gcm16"]
start_action = "trap"
{extra}
[secrets.ike-gw]
id = ["{local}", "{remote}"]
secret = "netlink-netns-psk"
"""

PASS_SHUNT = """
[connections.gw.children.web]
mode = "pass"
local_ts = ["{lnet}[tcp/5201]"]
remote_ts = ["{rnet}[tcp]"]
"""

WEST = {"local": "10.231.0.1", "remote": "10.231.0.2", "lnet": "10.231.1.0/24", "rnet": "10.231.2.0/24"}
EAST = {"local": "10.231.0.2", "remote": "10.231.0.1", "lnet": "10.231.2.0/24", "rnet": "10.231.1.0/24"}


def conf(side: dict[str, str], *, shunt: bool = False) -> str:
    return CONF.format(**side, extra=PASS_SHUNT.format(**side) if shunt else "")


def rules(ns: Netns) -> list[str]:
    return [
        line
        for line in ns.ip("-4", "rule", "show").stdout.splitlines()
        if line.split(":")[0] in ("219", "220")
    ]


def table(ns: Netns) -> str:
    return ns.ip("-4", "route", "show", "table", "220").stdout


def bypassed(d: DaemonProcess) -> set[str]:
    """The addresses our own traffic is bypassed from (the ``%ike`` policies' local selectors)."""
    pols = d.cmd("list-pols")["policies"]
    return {p["local_ts"].split("[")[0].split("/")[0] for p in pols if p["conn"] == "%ike"}


def test_daemon_works_without_the_ip_binary(topology: Any, tmp_path: Path) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    empty = tmp_path / "bin"
    empty.mkdir()
    hidden = {"PATH": str(empty)}  # no ip, no anything: the daemon must not spawn iproute2
    e = DaemonProcess(tmp_path, "east", conf(EAST), netns=east.name, env=hidden, log_level="info")
    topo.on_close(e.stop)
    w = DaemonProcess(tmp_path, "west", conf(WEST, shunt=True), netns=west.name, env=hidden, log_level="info")
    topo.on_close(w.stop)
    assert ping(west, "10.231.1.1", "10.231.2.1", count=4) >= 3  # the trap, then the tunnel
    assert len(rules(west)) == 2 and "not from all fwmark 0x42 lookup 220" in rules(west)[1]
    assert "ipproto tcp sport 5201 lookup main" in rules(west)[0]
    assert "10.231.2.0/24 dev snakeswan0" in table(west) and "src 10.231.1.1" in table(west)
    assert "mtu 1400" in west.ip("link", "show", "dev", "snakeswan0").stdout
    assert w.stop() == 0 and e.stop() == 0
    assert rules(west) == [] and "snakeswan0" not in west.ip("link").stdout
    for d in (w, e):
        assert "iproute2" not in d.log() and "Traceback" not in d.log(), d.log()


def test_bypass_follows_addresses_added_and_removed(topology: Any, tmp_path: Path) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    w = DaemonProcess(tmp_path, "west", conf(WEST), netns=west.name, log_level="info")
    topo.on_close(w.stop)
    before = bypassed(w)
    assert {"10.231.0.1", "10.231.1.1"} <= before and "10.231.0.77" not in before
    west.ip("addr", "add", "10.231.0.77/24", "dev", "w0")
    wait_for(lambda: "10.231.0.77" in bypassed(w), timeout=5, what="a bypass for the new address")
    assert bypassed(w) == before | {"10.231.0.77"}
    west.ip("addr", "del", "10.231.0.77/24", "dev", "w0")
    wait_for(lambda: bypassed(w) == before, timeout=5, what="the bypass of the address gone")
    assert "addresses changed (+10.231.0.77" in w.log() and "addresses changed (+none -10.231.0.77" in w.log()
    _ = east


def test_kill_9_then_start_again_cleans_up_and_works(topology: Any, tmp_path: Path) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    e = DaemonProcess(tmp_path, "east", conf(EAST), netns=east.name, log_level="info")
    topo.on_close(e.stop)
    w = DaemonProcess(tmp_path, "west", conf(WEST, shunt=True), netns=west.name, log_level="info")
    assert ping(west, "10.231.1.1", "10.231.2.1", count=3) >= 2
    assert len(rules(west)) == 2 and "10.231.2.0/24" in table(west)
    w.proc.send_signal(signal.SIGKILL)
    w.proc.wait(10)
    w.stop()
    assert len(rules(west)) == 2 and Path(w.control).exists()  # what a kill -9 leaves behind
    # a stray route in our table (through a device that stays) is no daemon's: it goes too
    west.ip("route", "add", "10.231.77.0/24", "dev", "w0", "table", "220")
    time.sleep(0.2)
    w2 = DaemonProcess(tmp_path, "west", conf(WEST), netns=west.name, log_level="info")  # same socket
    topo.on_close(w2.stop)
    w2_rules = rules(west)
    assert len(w2_rules) == 1 and "not from all fwmark 0x42 lookup 220" in w2_rules[0], w2_rules
    assert "10.231.77.0" not in table(west), table(west)
    log = w2.log()
    assert "removed what an earlier daemon left behind: -4 rule priority 219 lookup 254" in log, log
    assert "-4 route 10.231.77.0/24 dev w0 table 220" in log
    assert ping(west, "10.231.1.1", "10.231.2.1", count=4) >= 2
    assert "10.231.2.0/24 dev snakeswan0" in table(west)
    assert w2.stop() == 0 and rules(west) == []


def test_a_share_address_with_a_lifetime_over_netlink(topology: Any) -> None:
    """io/vip.py (cluster shares) adds its address with a lifetime, a dead man's switch the kernel
    enforces, and removes it; over netlink like the rest."""
    ns = topology().add("box")
    ns.ip("link", "add", "sswv0", "type", "veth", "peer", "name", "sswv1")
    ns.link_up("sswv0")
    share = ipaddress.ip_interface("10.231.9.100/24")
    with inside(ns):
        vip.add_address(share, "sswv0", 30)
        vip.add_address(share, "sswv0", 30)  # the refresh: replace, no duplicate
    shown = ns.ip("-4", "addr", "show", "dev", "sswv0").stdout
    assert shown.count("10.231.9.100/24") == 1 and re.search(
        r"valid_lft (30|29)sec preferred_lft (30|29)sec", shown
    )
    with inside(ns):
        assert vip.remove_address(share, "sswv0")
        assert not vip.remove_address(share, "sswv0")  # gone already
    assert "10.231.9.100" not in ns.ip("-4", "addr", "show", "dev", "sswv0").stdout
