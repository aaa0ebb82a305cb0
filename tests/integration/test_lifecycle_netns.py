"""What follows a lost tunnel, with the data plane, between two snakeswan daemons in namespaces:
``dpd_action = "trap"`` keeps the policy so that the next packet negotiates the tunnel again (and
nothing is negotiated before that packet), ``clear`` removes policy and route; ``close_action =
"trap"`` does the same for a Delete from the peer."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemons import DaemonProcess, wait_for
from tests.netns import Netns, ping, site_to_site

pytestmark = pytest.mark.netns

CONF = """
[connections.gw]
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
proposals = ["aes128-sha256-modp2048"]
{dpd}
local = {{ auth = "psk" }}
remote = {{ auth = "psk" }}
[connections.gw.children.net]
local_ts = ["{lnet}"]
remote_ts = ["{rnet}"]
esp_proposals = ["aes128gcm16"]
start_action = "{start}"
dpd_action = "{dpd_action}"
close_action = "{close_action}"
[secrets.ike-gw]
id = ["{local}", "{remote}"]
secret = "lifecycle-netns-psk"
"""


def daemons(
    topology: Any, tmp_path: Path, *, dpd_action: str = "clear", close_action: str = "none"
) -> tuple[Netns, Netns, DaemonProcess, DaemonProcess]:
    topo = topology()
    west, east = site_to_site(topo)
    e = DaemonProcess(
        tmp_path,
        "east",
        CONF.format(
            local="10.231.0.2",
            remote="10.231.0.1",
            lnet="10.231.2.0/24",
            rnet="10.231.1.0/24",
            dpd="",
            start="none",
            dpd_action="clear",
            close_action="none",
        ),
        netns=east.name,
    )
    topo.on_close(e.stop)
    w = DaemonProcess(
        tmp_path,
        "west",
        CONF.format(
            local="10.231.0.1",
            remote="10.231.0.2",
            lnet="10.231.1.0/24",
            rnet="10.231.2.0/24",
            dpd='dpd_delay = "1s"\ndpd_timeout = "3s"',
            start="start",  # not "trap": any trap after a loss comes from dpd/close_action
            dpd_action=dpd_action,
            close_action=close_action,
        ),
        netns=west.name,
    )
    topo.on_close(w.stop)
    wait_for(lambda: w.sas() and w.sas()[0]["children"], what="the tunnel (start_action = start)")
    assert ping(west, "10.231.1.1", "10.231.2.1", count=2) == 2
    return west, east, w, e


def block(ns: Netns) -> None:
    ns.run("nft", "add", "table", "inet", "blk")
    ns.run("nft", "add", "chain", "inet", "blk", "in", "{ type filter hook input priority 0; }")
    ns.run("nft", "add", "rule", "inet", "blk", "in", "iifname", "e0", "drop")


def unblock(ns: Netns) -> None:
    ns.run("nft", "delete", "table", "inet", "blk")


def routes(ns: Netns) -> str:
    return ns.run("ip", "route", "show", "table", "all").stdout


@pytest.mark.parametrize("action", ["trap", "clear"])
def test_dpd_action_trap_renegotiates_on_traffic_clear_does_not(
    topology: Any, tmp_path: Path, action: str
) -> None:
    west, east, w, _e = daemons(topology, tmp_path, dpd_action=action)
    block(east)
    wait_for(lambda: "dpd_timeout" in w.log(), timeout=10, what="DPD to declare east dead")
    assert w.sas() == []
    unblock(east)
    time.sleep(2)
    assert w.sas() == [], "nothing is negotiated before a packet asks for it"
    if action == "trap":
        assert "10.231.2.0/24" in routes(west)  # the trap policy's route stays
        replies = ping(west, "10.231.1.1", "10.231.2.1", count=5, interval=0.5)
        assert replies >= 3, f"{replies}/5 replies through the re-trapped tunnel"
        assert len(w.sas()) == 1 and len(w.sas()[0]["children"]) == 1
        assert "acquire" in w.log()
    else:
        assert "10.231.2.0/24" not in routes(west)  # clear: policy and route are gone
        assert ping(west, "10.231.1.1", "10.231.2.1", count=2, timeout=4) == 0
        assert w.sas() == []


def test_close_action_trap_after_peer_deletes(topology: Any, tmp_path: Path) -> None:
    west, _east, w, e = daemons(topology, tmp_path, close_action="trap")
    assert e.cmd("down", conn="gw", child="net") == 1
    wait_for(lambda: not w.sas()[0]["children"], what="west to drop the IPsec SA east deleted")
    time.sleep(1)
    assert not w.sas()[0]["children"], "trap: nothing negotiated before a packet asks"
    assert ping(west, "10.231.1.1", "10.231.2.1", count=5, interval=0.5) >= 3
    assert len(w.sas()[0]["children"]) == 1
