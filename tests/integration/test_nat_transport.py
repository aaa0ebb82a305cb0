"""Transport mode through a real NAT (nftables masquerade) between two snakeswan daemons: the
client's TCP checksums were computed with its private address, the gateway's with the NAT's; both
data planes fix them up with the NAT-OA addresses Quick Mode carried (RFC 3948 3.1.2), so a TCP
transfer goes through both ways. Without the fix-up the receiving kernels drop every segment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.daemons import DaemonProcess, wait_for
from tests.interop.test_strongswan_traffic import tcp_transfer
from tests.netns import veth

pytestmark = pytest.mark.netns

CLIENT, NAT_IN, NAT_OUT, GW = "10.231.10.2", "10.231.10.1", "10.231.20.1", "10.231.20.2"
PSK = "nat-transport-psk"


def conf(local: str, remote: str, *, gateway: bool) -> str:
    return f"""
[connections.t]
local_addrs = ["{local}"]
remote_addrs = ["{"%any" if gateway else remote}"]
proposals = ["aes128-sha256-modp2048"]
local = {{ auth = "psk", id = "{"gw" if gateway else "client"}.ssw-lab" }}
remote = {{ auth = "psk", id = "{"client" if gateway else "gw"}.ssw-lab" }}
[connections.t.children.host]
mode = "transport"
esp_proposals = ["aes128gcm16"]
[secrets.ike-t]
secret = "{PSK}"
"""


def test_transport_mode_tcp_through_a_nat(topology: Any, tmp_path: Path) -> None:
    topo = topology()
    client, nat, gw = topo.add("client"), topo.add("nat"), topo.add("gw")
    veth(client, "c0", f"{CLIENT}/24", nat, "n1", f"{NAT_IN}/24")
    veth(nat, "n0", f"{NAT_OUT}/24", gw, "g0", f"{GW}/24")
    client.run("ip", "route", "add", "10.231.20.0/24", "via", NAT_IN)
    nat.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
    nat.run("nft", "add", "table", "ip", "sswnat")
    nat.run("nft", "add", "chain", "ip", "sswnat", "post", "{ type nat hook postrouting priority 100; }")
    nat.run("nft", "add", "rule", "ip", "sswnat", "post", "oifname", "n0", "masquerade")
    g = DaemonProcess(tmp_path, "gw", conf(GW, CLIENT, gateway=True), netns=gw.name)
    topo.on_close(g.stop)
    c = DaemonProcess(tmp_path, "client", conf(CLIENT, GW, gateway=False), netns=client.name)
    topo.on_close(c.stop)
    c.cmd("up", conn="t")
    [sa] = wait_for(lambda: [s for s in g.sas() if s["children"]], timeout=15, what="the gateway's SA")
    child = sa["children"][0]
    assert child["mode"] == "transport" and child["encap"] and sa["nat_remote"]
    assert (child["local_ts"], child["remote_ts"]) == (f"{GW}/32", f"{NAT_OUT}/32")
    assert "natted_transport_ids" in g.log()
    # data client -> gateway, ACKs gateway -> client: each receiver must fix the checksums up
    assert tcp_transfer(client, gw, GW, CLIENT, 256 * 1024) == 256 * 1024
    [mine] = c.sas()
    assert mine["children"][0]["packets_in"] > 10 and child["spi_in"] == mine["children"][0]["spi_out"]
