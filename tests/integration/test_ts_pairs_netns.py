"""A child with two local subnets between two snakeswan daemons in namespaces: one Quick Mode and
one IPsec SA per selector pair (start_action = trap: each pair's trap policy starts the child),
and each LAN's pings travel on their own SA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.daemons import DaemonProcess, wait_for
from tests.netns import ping, protected, site_to_site

pytestmark = pytest.mark.netns

CONF = """
[connections.gw]
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
proposals = ["aes128-sha256-modp2048"]
local = {{ auth = "psk" }}
remote = {{ auth = "psk" }}
[connections.gw.children.net]
local_ts = [{lnet}]
remote_ts = [{rnet}]
esp_proposals = ["aes128gcm16-modp2048"]
start_action = "trap"
[secrets.ike-gw]
id = ["{local}", "{remote}"]
secret = "ts-pairs-psk"
"""
WEST_LANS = '"10.231.1.0/24", "10.231.3.0/24"'


def test_two_subnets_two_sas(topology: Any, tmp_path: Path) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    protected(west, "10.231.3.1/24", "ssw-lan3")
    e = DaemonProcess(
        tmp_path,
        "east",
        CONF.format(local="10.231.0.2", remote="10.231.0.1", lnet='"10.231.2.0/24"', rnet=WEST_LANS),
        netns=east.name,
    )
    topo.on_close(e.stop)
    w = DaemonProcess(
        tmp_path,
        "west",
        CONF.format(local="10.231.0.1", remote="10.231.0.2", lnet=WEST_LANS, rnet='"10.231.2.0/24"'),
        netns=west.name,
    )
    topo.on_close(w.stop)
    ping(west, "10.231.1.1", "10.231.2.1", count=1, timeout=3)  # the trap starts both pairs
    sas = wait_for(
        lambda: [c for s in w.sas() for c in s["children"] if len(s["children"]) == 2],
        timeout=20,
        what="2 SAs",
    )
    assert sorted(c["local_ts"] for c in sas) == ["10.231.1.0/24", "10.231.3.0/24"]
    assert ping(west, "10.231.1.1", "10.231.2.1", count=3) == 3
    assert ping(west, "10.231.3.1", "10.231.2.1", count=4) == 4
    by_lan = {c["local_ts"]: c for s in w.sas() for c in s["children"]}
    assert by_lan["10.231.1.0/24"]["packets_out"] >= 3 and by_lan["10.231.3.0/24"]["packets_out"] >= 4
    assert by_lan["10.231.1.0/24"]["packets_out"] < 3 + 4  # each LAN on its own SA
    pols = {p["child"] for p in w.cmd("list-pols")["policies"] if p["conn"] == "gw"}
    assert pols == {"net#0", "net#1"}


def test_hub_with_one_wide_child_answers_two_quick_modes(topology: Any, tmp_path: Path) -> None:
    """East (the hub) has one child for 10.231.4.0/23; west proposes its two /24s in two Quick
    Modes. Each SA gets a policy of its own on the hub (narrower than the child's), so the
    replies to each LAN leave on that LAN's SA."""
    topo = topology()
    west, east = site_to_site(topo)
    protected(west, "10.231.4.1/24", "ssw-lan4")
    protected(west, "10.231.5.1/24", "ssw-lan5")
    hub = CONF.format(local="10.231.0.2", remote="10.231.0.1", lnet='"10.231.2.0/24"', rnet='"10.231.4.0/23"')
    e = DaemonProcess(tmp_path, "east", hub.replace('start_action = "trap"', ""), netns=east.name)
    topo.on_close(e.stop)
    lans = '"10.231.4.0/24", "10.231.5.0/24"'
    w = DaemonProcess(
        tmp_path,
        "west",
        CONF.format(local="10.231.0.1", remote="10.231.0.2", lnet=lans, rnet='"10.231.2.0/24"'),
        netns=west.name,
    )
    topo.on_close(w.stop)
    w.cmd("up", conn="gw")
    wait_for(
        lambda: len([c for s in e.sas() for c in s["children"]]) == 2, timeout=20, what="2 SAs on the hub"
    )
    assert ping(west, "10.231.4.1", "10.231.2.1", count=3) == 3
    assert ping(west, "10.231.5.1", "10.231.2.1", count=3) == 3
    by_lan = {c["remote_ts"]: c for s in e.sas() for c in s["children"]}
    assert by_lan["10.231.4.0/24"]["packets_out"] >= 3 and by_lan["10.231.5.0/24"]["packets_out"] >= 3
    pols = {p["child"] for p in e.cmd("list-pols")["policies"] if p["conn"] == "gw"}
    assert pols == {"net@10.231.2.0/24|10.231.4.0/24", "net@10.231.2.0/24|10.231.5.0/24"}
