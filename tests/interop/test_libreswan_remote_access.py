"""Remote access with Libreswan 4.10 (pluto), both roles: pluto as the client of our gateway (Main
Mode with a group PSK, XAUTH with ``leftxauthclient`` and its password from its secrets, Mode
Config pull, Quick Mode from the virtual IP, at pluto's default proposals; a wrong password), and
our client against pluto as the gateway (XAUTH server, Mode Config from an address pool; pluto pads
its Mode Config REPLY to 4 bytes). IKE only, as every Libreswan cell
here: this kernel has no ESP for pluto (tests/interop/libreswan.py).

    west 10.231.0.1 (pluto, the client)  ===  east 10.231.0.2 (our gateway, LAN 10.231.2.0/24)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.daemons import DaemonProcess, wait_for
from tests.interop import test_libreswan
from tests.interop.libreswan import conn_section
from tests.netns import site_to_site

pytestmark = [pytest.mark.interop, pytest.mark.netns]

WEST, EAST = "10.231.0.1", "10.231.0.2"
LAN_E = "10.231.2.0/24"
POOL, FIRST_VIP = "10.231.100.0/24", "10.231.100.1"
GROUP_PSK = "libreswan-group-secret"
pluto_factory = test_libreswan.pluto_factory  # the fixtures, shared
xfrm_shim = test_libreswan.xfrm_shim


def gateway(password: str = "alice-password") -> str:
    return f"""
[connections.rw]
local_addrs = ["{EAST}"]
remote_addrs = ["%any"]
proposals = ["aes256-sha256-modp2048", "aes128-sha1-modp2048"]
pools = ["rwpool"]
pull = true
local = {{ auth = "psk", id = "gw.sw-lab" }}
remote-psk = {{ auth = "psk", round = 1 }}
remote-xauth = {{ auth = "xauth", round = 2 }}
[connections.rw.children.net]
local_ts = ["{LAN_E}"]
esp_proposals = ["aes128-sha1-modp2048", "aes256-sha256-modp2048"]
[pools.rwpool]
addrs = "{POOL}"
dns = ["10.231.2.53"]
split_include = ["{LAN_E}"]
[secrets.ike-group]
secret = "{GROUP_PSK}"
[secrets.xauth-alice]
id = "alice"
secret = "{password}"
"""


def client() -> tuple[str, str]:
    conns = conn_section(
        "rw",
        ikev2="no",
        authby="secret",
        left=WEST,
        leftid="@alice.sw-lab",
        leftxauthclient="yes",
        leftusername="alice",
        leftmodecfgclient="yes",
        modecfgpull="yes",
        right=EAST,
        rightid="@gw.sw-lab",
        rightxauthserver="yes",
        rightmodecfgserver="yes",
        rightsubnet=LAN_E,
        leftupdown="/bin/true",
        auto="add",
    )
    secrets = f'@alice.sw-lab @gw.sw-lab : PSK "{GROUP_PSK}"\n@alice : XAUTH "alice-password"\n'
    return conns, secrets


def test_libreswan_client_against_snakeswan_gateway(
    topology: Any, pluto_factory: Any, tmp_path: Path
) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    gw = DaemonProcess(tmp_path, "east", gateway(), netns=east.name)
    topo.on_close(gw.stop)
    conns, secrets = client()
    pluto = pluto_factory(west, "west", conns, secrets)
    pluto.initiate("rw", timeout=60)
    [sa] = wait_for(lambda: [s for s in gw.sas() if s["children"]], timeout=30, what="the gateway's IPsec SA")
    assert (sa["xauth_user"], sa["vips"], sa["remote_id"]) == ("alice", [FIRST_VIP], "alice.sw-lab")
    [child] = sa["children"]
    assert (child["local_ts"], child["remote_ts"]) == (LAN_E, f"{FIRST_VIP}/32")
    states = pluto.wait_states(test_libreswan.established)
    [ipsec] = [s for s in states if s.ipsec and s.established]
    assert (ipsec.spi_out, ipsec.spi_in) == (int(child["spi_in"], 16), int(child["spi_out"], 16))
    log = pluto.log()
    assert f"Received IPv4 address: {FIRST_VIP}/32" in log and "XAUTH: Successfully Authenticated" in log
    assert "XAUTH check of 'alice' successful" in gw.log()
    [pool] = gw.cmd("list-pools")
    assert pool["leases"] == [{"identity": "alice", "address": FIRST_VIP, "online": True}]


def test_libreswan_client_with_a_wrong_password_gets_nothing(
    topology: Any,
    pluto_factory: Any,
    tmp_path: Path,
) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    gw = DaemonProcess(tmp_path, "east", gateway(password="not-alices-password"), netns=east.name)
    topo.on_close(gw.stop)
    conns, secrets = client()
    pluto = pluto_factory(west, "west", conns, secrets)
    pluto.whack("--name", "rw", "--initiate", "--asynchronous")
    wait_for(lambda: "XAUTH check of 'alice' failed" in gw.log(), what="the gateway's XAUTH refusal")
    wait_for(lambda: "Received Cisco XAUTH status: FAIL" in pluto.log(), what="pluto told XAUTH failed")
    assert not [s for s in gw.sas() if s["children"]]
    assert gw.cmd("list-pools")[0]["leases"] == []
    assert not [s for s in pluto.states() if s.ipsec and s.established]


def our_client() -> str:
    return f"""
[connections.home]
local_addrs = ["{WEST}"]
remote_addrs = ["{EAST}"]
vips = ["0.0.0.0"]
pull = true
proposals = ["aes256-sha256-modp2048"]
local-psk = {{ auth = "psk", round = 1, id = "alice.sw-lab" }}
local-xauth = {{ auth = "xauth", round = 2, xauth_id = "alice" }}
remote = {{ auth = "psk", id = "gw.sw-lab" }}
[connections.home.children.home]
remote_ts = ["{LAN_E}"]
esp_proposals = ["aes128-sha1-modp2048"]
[secrets.ike-group]
secret = "{GROUP_PSK}"
[secrets.xauth-alice]
id = "alice"
secret = "alice-password"
"""


def test_snakeswan_client_against_libreswan_gateway(
    topology: Any, pluto_factory: Any, tmp_path: Path
) -> None:
    """pluto as the gateway: XAUTH server (``xauthby=alwaysok``: pluto's password file is a fixed
    path of the machine; the password check is the gateway's, tested above the other way round),
    Mode Config server with an address pool, pull."""
    topo = topology()
    west, east = site_to_site(topo)
    conns = conn_section(
        "rw",
        ikev2="no",
        authby="secret",
        left=EAST,
        leftid="@gw.sw-lab",
        leftsubnet=LAN_E,
        leftxauthserver="yes",
        leftmodecfgserver="yes",
        xauthby="alwaysok",
        modecfgpull="yes",
        modecfgdns="10.231.2.53",
        right="%any",
        rightid="@alice.sw-lab",
        rightxauthclient="yes",
        rightmodecfgclient="yes",
        rightaddresspool="10.231.100.10-10.231.100.20",
        leftupdown="/bin/true",
        auto="add",
    )
    pluto = pluto_factory(east, "east", conns, f'@gw.sw-lab @alice.sw-lab : PSK "{GROUP_PSK}"\n')
    daemon = DaemonProcess(tmp_path, "west", our_client(), netns=west.name)
    topo.on_close(daemon.stop)
    daemon.cmd("up", conn="home")
    [sa] = wait_for(lambda: [s for s in daemon.sas() if s["children"]], timeout=30, what="our IPsec SA")
    assert sa["vips"] == ["10.231.100.10"]
    [child] = sa["children"]
    assert (child["local_ts"], child["remote_ts"]) == ("10.231.100.10/32", LAN_E)
    # pluto's ISAKMP state stays STATE_MODE_CFG_R1 after its REPLY (no ACK follows a pull)
    states = pluto.wait_states(lambda st: any(s.ipsec and s.established and s.spi_in for s in st))
    [ipsec] = [s for s in states if s.ipsec and s.established]
    assert (ipsec.spi_out, ipsec.spi_in) == (int(child["spi_in"], 16), int(child["spi_out"], 16))
    assert "XAUTH: User alice: Authentication Successful" in pluto.log()
    assert "XAUTH authentication of 'alice' successful" in daemon.log()
