"""Route-based children between two snakeswan daemons in namespaces: each daemon creates the
child's own TUN device (``interface``), the selectors are wildcards (0.0.0.0/0), and only what
``ip route`` sends into that device enters the tunnel: before the route a ping does not cross,
after it the first packet starts the Quick Mode (an Acquire) and pings go through."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from tests.daemons import DaemonProcess, wait_for
from tests.netns import ping, site_to_site

pytestmark = pytest.mark.netns

CONF = """
[connections.gw]
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
proposals = ["aes128-sha256-modp2048"]
local = {{ auth = "psk" }}
remote = {{ auth = "psk" }}
[connections.gw.children.vti]
local_ts = ["0.0.0.0/0"]
remote_ts = ["0.0.0.0/0"]
esp_proposals = ["aes128gcm16-modp2048"]
if_id_in = 42
if_id_out = 42
interface = "ssw-vti42"
[secrets.ike-gw]
id = ["{local}", "{remote}"]
secret = "route-based-psk"
"""


def test_ip_route_decides_what_enters_the_tunnel(topology: Any, tmp_path: Path) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    e = DaemonProcess(tmp_path, "east", CONF.format(local="10.231.0.2", remote="10.231.0.1"), netns=east.name)
    topo.on_close(e.stop)
    w = DaemonProcess(tmp_path, "west", CONF.format(local="10.231.0.1", remote="10.231.0.2"), netns=west.name)
    topo.on_close(w.stop)
    for ns in (west, east):
        assert "ssw-vti42" in ns.run("ip", "-o", "link", "show", "dev", "ssw-vti42").stdout
    # no route into the interface yet: the LANs do not reach each other, no SA is negotiated
    assert ping(west, "10.231.1.1", "10.231.2.1", count=1, timeout=2) == 0
    assert not [s for s in w.sas() if s["children"]]
    east.run("ip", "route", "add", "10.231.1.0/24", "dev", "ssw-vti42", "src", "10.231.2.1")
    west.run("ip", "route", "add", "10.231.2.0/24", "dev", "ssw-vti42", "src", "10.231.1.1")
    ping(west, "10.231.1.1", "10.231.2.1", count=1, timeout=3)  # the acquire starts the child
    [sa] = wait_for(lambda: [s for s in w.sas() if s["children"]], timeout=20, what="the IPsec SA")
    child = sa["children"][0]
    assert (child["local_ts"], child["remote_ts"]) == ("0.0.0.0/0", "0.0.0.0/0")
    assert ping(west, "10.231.1.1", "10.231.2.1", count=5) == 5
    west_child = next(c for s in w.sas() for c in s["children"])
    east_child = next(c for s in e.sas() for c in s["children"])
    assert west_child["packets_out"] >= 5 and east_child["packets_in"] >= 5 and east_child["packets_out"] >= 5
    # the shared data plane installed no policy and no route of its own for it
    assert not [p for p in w.cmd("list-pols")["policies"] if p["conn"] == "gw"]
    assert "ssw-vti42" not in west.run("ip", "route", "show", "table", "220", check=False).stdout
    # the devices are made at start: a reload that changes the route-based children is refused
    w.config_path.write_text(w.config_path.read_text().replace('"ssw-vti42"', '"ssw-vti43"'))
    w.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "route-based children (interface) change: restart" in w.log(), what="the refusal")
    assert ping(west, "10.231.1.1", "10.231.2.1", count=2) == 2  # the running configuration kept
