"""Remote access survives ``kill -9`` (issue 14): a snakeswan XAUTH + Mode Config gateway and a
snakeswan client in namespaces, a 10 Hz ping from the client's virtual IP; the gateway (or the
client) is killed and started again: no new XAUTH round, the lease still held by the same user,
the virtual IP and split routes back on the client, at most 2 s of pings lost."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemons import DaemonProcess, wait_for
from tests.interop.test_strongswan_remote_access import LAN_E, snakeswan_client, snakeswan_gateway
from tests.netns import site_to_site
from tests.persist_helpers import BackgroundPing

pytestmark = pytest.mark.netns


@pytest.mark.parametrize("killed", ["gateway", "client"])
def test_remote_access_kill9_restart(topology: Any, tmp_path: Path, killed: str) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    gw_conf = (
        snakeswan_gateway(pull=True, aggressive=False)
        .replace(f'local_ts = ["{LAN_E}"]', 'local_ts = ["0.0.0.0/0"]')
        .replace('dns = ["10.231.2.53"]', f'dns = ["10.231.2.53"]\nsplit_include = ["{LAN_E}"]')
    )
    client_conf = snakeswan_client(pull=True, aggressive=False).replace(
        f'remote_ts = ["{LAN_E}"]', 'remote_ts = ["0.0.0.0/0"]'
    )
    gw = DaemonProcess(tmp_path, "east", gw_conf, netns=east.name)
    topo.on_close(gw.stop)
    client = DaemonProcess(tmp_path, "west", client_conf, netns=west.name)
    topo.on_close(client.stop)
    client.cmd("up", conn="home")
    [sa] = wait_for(lambda: [s for s in client.sas() if s["children"]], what="the client's IPsec SA")
    vip = sa["vips"][0]
    ping = BackgroundPing(west, vip, "10.231.2.1", 12)
    topo.on_close(ping.stop)
    time.sleep(3)
    victim, name, ns, conf = (
        (gw, "east", east, gw_conf) if killed == "gateway" else (client, "west", west, client_conf)
    )
    victim.proc.kill()
    victim.proc.wait(5)
    victim.stop()
    time.sleep(0.5)
    again = DaemonProcess(tmp_path, name, conf, netns=ns.name)
    topo.on_close(again.stop)
    gw, client = (again, client) if killed == "gateway" else (gw, again)
    result = ping.result()
    print(f"{killed} killed: {result}")
    assert "1 IKE SA(s) and 1 IPsec SA(s) restored" in again.log(), again.log()[-3000:]
    [after] = client.sas()
    assert (after["icookie"], after["rcookie"]) == (sa["icookie"], sa["rcookie"]) and after["vips"] == [vip]
    assert [c["spi_in"] for c in after["children"]] == [c["spi_in"] for c in sa["children"]]
    [pool] = gw.cmd("list-pools")
    assert pool["leases"] == [{"identity": "alice", "address": vip, "online": True}]
    assert "XAUTH" not in again.log()  # no new round: neither "XAUTH check" nor "XAUTH authentication"
    assert "XAUTH check of 'alice' successful" in gw.log() or killed == "gateway"
    routes = west.run("ip", "route", "show", "table", "220").stdout
    assert LAN_E in routes and "default" not in routes, routes  # split routes, as before
    assert result.lost_seconds <= 2.0 and result.longest_gap <= 2.0, result
