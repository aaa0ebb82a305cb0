"""A snakeswan gateway and a snakeswan client in namespaces: the client's full-tunnel child
(remote_ts 0.0.0.0/0) routes only the split-include networks the gateway's pool names (Cisco
Unity split tunneling), and traffic from the virtual IP reaches the gateway's LAN."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.daemons import DaemonProcess, wait_for
from tests.interop.test_strongswan_remote_access import EAST, LAN_E, snakeswan_client, snakeswan_gateway
from tests.netns import ping, site_to_site

pytestmark = pytest.mark.netns


def test_split_include_routes_only_the_gateway_networks(topology: Any, tmp_path: Path) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    gw_conf = (
        snakeswan_gateway(pull=True, aggressive=False)
        .replace(f'local_ts = ["{LAN_E}"]', 'local_ts = ["0.0.0.0/0"]')
        .replace(
            'dns = ["10.231.2.53"]', f'dns = ["10.231.2.53"]\nsplit_include = ["{LAN_E}"]\nbanner = "hello"'
        )
    )
    gw = DaemonProcess(tmp_path, "east", gw_conf, netns=east.name)
    topo.on_close(gw.stop)
    client_conf = snakeswan_client(pull=True, aggressive=False).replace(
        f'remote_ts = ["{LAN_E}"]', 'remote_ts = ["0.0.0.0/0"]'
    )
    client = DaemonProcess(tmp_path, "west", client_conf, netns=west.name)
    topo.on_close(client.stop)
    client.cmd("up", conn="home")
    [sa] = wait_for(lambda: [s for s in client.sas() if s["children"]], what="the client's IPsec SA")
    vip = sa["vips"][0]
    assert sa["children"][0]["remote_ts"] == "0.0.0.0/0"
    routes = west.run("ip", "route", "show", "table", "220").stdout
    assert LAN_E in routes and "default" not in routes and "0.0.0.0/1" not in routes, routes
    assert "banner 'hello'" in client.log() and "split 10.231.2.0/24" in client.log()
    assert ping(west, vip, "10.231.2.1", count=3) >= 2
    assert EAST in sa["remote"]
