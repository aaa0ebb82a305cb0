"""Remote access against strongSwan 5.9 in namespaces, both roles: PSK + XAUTH in Main and
Aggressive Mode, Mode Config pull and push, a wrong password; traffic from the virtual IP reaches
the gateway's protected network (east's LAN 10.231.2.0/24).

    west 10.231.0.1 (the client)  ===  east 10.231.0.2 (the gateway, LAN 10.231.2.1/24)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.daemons import DaemonProcess, wait_for
from tests.interop.strongswan import AGGRESSIVE_PSK_OPT_IN, Credential, Pki, children
from tests.netns import ping, protected, site_to_site, veth
from tests.radius import FreeRadius, require_freeradius

pytestmark = [pytest.mark.interop, pytest.mark.netns]

WEST, EAST = "10.231.0.1", "10.231.0.2"
LAN_E = "10.231.2.0/24"
POOL = "10.231.100.0/24"
FIRST_VIP = "10.231.100.1"
GROUP = "ra-group-pre-shared-key"


def snakeswan_gateway(*, pull: bool, aggressive: bool) -> str:
    return f"""
[connections.rw]
local_addrs = ["{EAST}"]
remote_addrs = ["%any"]
aggressive = {str(aggressive).lower()}
proposals = ["aes128-sha256-modp2048"]
pools = ["rwpool"]
pull = {str(pull).lower()}
local = {{ auth = "psk", id = "gw.ssw-lab" }}
remote-psk = {{ auth = "psk", round = 1 }}
remote-xauth = {{ auth = "xauth", round = 2 }}
[connections.rw.children.net]
local_ts = ["{LAN_E}"]
esp_proposals = ["aes128gcm16-modp2048"]
[pools.rwpool]
addrs = "{POOL}"
dns = ["10.231.2.53"]
[secrets.ike-group]
secret = "{GROUP}"
[secrets.xauth-alice]
id = "alice"
secret = "alice-password"
"""


def strongswan_client(*, pull: bool, aggressive: bool, password: str = "alice-password") -> str:
    return f"""connections {{
  home {{
    version = 1
    aggressive = {"yes" if aggressive else "no"}
    remote_addrs = {EAST}
    vips = 0.0.0.0
    pull = {"yes" if pull else "no"}
    proposals = aes128-sha256-modp2048
    local-psk {{
      round = 1
      auth = psk
      id = rw.ssw-lab
    }}
    local-xauth {{
      round = 2
      auth = xauth
      xauth_id = alice
    }}
    remote {{
      auth = psk
      id = gw.ssw-lab
    }}
    children {{
      home {{
        remote_ts = {LAN_E}
        esp_proposals = aes128gcm16-modp2048
      }}
    }}
  }}
}}
secrets {{
  ike-group {{
    secret = "{GROUP}"
  }}
  xauth-alice {{
    id = alice
    secret = "{password}"
  }}
}}
"""


def strongswan_gateway(*, pull: bool, aggressive: bool) -> str:
    return f"""connections {{
  rw {{
    version = 1
    aggressive = {"yes" if aggressive else "no"}
    local_addrs = {EAST}
    remote_addrs = %any
    pools = rwpool
    pull = {"yes" if pull else "no"}
    proposals = aes128-sha256-modp2048
    local {{
      auth = psk
      id = gw.ssw-lab
    }}
    remote-psk {{
      round = 1
      auth = psk
    }}
    remote-xauth {{
      round = 2
      auth = xauth
    }}
    children {{
      net {{
        local_ts = {LAN_E}
        esp_proposals = aes128gcm16-modp2048
      }}
    }}
  }}
}}
pools {{
  rwpool {{
    addrs = {POOL}
    dns = 10.231.2.53
  }}
}}
secrets {{
  ike-group {{
    secret = "{GROUP}"
  }}
  xauth-alice {{
    id = alice
    secret = "alice-password"
  }}
}}
"""


def snakeswan_client(*, pull: bool, aggressive: bool) -> str:
    return f"""
[connections.home]
local_addrs = ["{WEST}"]
remote_addrs = ["{EAST}"]
aggressive = {str(aggressive).lower()}
vips = ["0.0.0.0"]
pull = {str(pull).lower()}
proposals = ["aes128-sha256-modp2048"]
local-psk = {{ auth = "psk", round = 1, id = "rw.ssw-lab" }}
local-xauth = {{ auth = "xauth", round = 2, xauth_id = "alice" }}
remote = {{ auth = "psk", id = "gw.ssw-lab" }}
[connections.home.children.home]
remote_ts = ["{LAN_E}"]
esp_proposals = ["aes128gcm16-modp2048"]
[secrets.ike-group]
secret = "{GROUP}"
[secrets.xauth-alice]
id = "alice"
secret = "alice-password"
"""


CELLS = [(False, True), (False, False), (True, True)]  # (aggressive, pull)
IDS = ["main-pull", "main-push", "aggressive-pull"]


def _settings(aggressive: bool) -> dict[str, Any]:
    return {AGGRESSIVE_PSK_OPT_IN: True} if aggressive else {}


@pytest.mark.parametrize(("aggressive", "pull"), CELLS, ids=IDS)
def test_strongswan_client_against_snakeswan_gateway(
    aggressive: bool, pull: bool, topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    gw = DaemonProcess(tmp_path, "east", snakeswan_gateway(pull=pull, aggressive=aggressive), netns=east.name)
    topo.on_close(gw.stop)
    charon = charon_factory(
        west, "west", strongswan_client(pull=pull, aggressive=aggressive), settings=_settings(aggressive)
    )
    charon.initiate("home", ike="home", timeout=30)
    sas = wait_for(lambda: [s for s in gw.sas() if s["children"]], what="the gateway's IPsec SA")
    [sa] = sas
    assert sa["xauth_user"] == "alice" and sa["vips"] == [FIRST_VIP]
    assert sa["children"][0]["remote_ts"] == f"{FIRST_VIP}/32"
    theirs = charon.list_sas_raw()[0]
    assert FIRST_VIP in str(theirs.get("local-vips", ""))
    assert children(theirs)[0]["spi-in"] == sa["children"][0]["spi_out"]
    charon.wait_log(r"XAuth authentication of 'alice' \(myself\) successful")
    # traffic from the virtual IP (on strongSwan's ipsec0) to the gateway's LAN
    assert ping(west, FIRST_VIP, "10.231.2.1", count=5) >= 4
    [pool] = gw.cmd("list-pools")
    assert pool["leases"] == [{"identity": "alice", "address": FIRST_VIP, "online": True}]
    assert "XAUTH check of 'alice' successful" in gw.log()


def test_strongswan_client_with_a_wrong_password_gets_nothing(
    topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    gw = DaemonProcess(tmp_path, "east", snakeswan_gateway(pull=True, aggressive=False), netns=east.name)
    topo.on_close(gw.stop)
    charon = charon_factory(west, "west", strongswan_client(pull=True, aggressive=False, password="wrong"))
    charon.initiate("home", ike="home", timeout=30, check=False)
    charon.wait_log(r"XAuth authentication of 'alice' \(myself\) failed", timeout=20)
    wait_for(
        lambda: "XAUTH check of 'alice' failed (wrong password)" in gw.log(), what="the gateway's log line"
    )
    wait_for(lambda: not gw.sas(), what="the gateway to delete the IKE SA")
    assert not charon.list_sas_raw() or not children(charon.list_sas_raw()[0])
    assert gw.cmd("list-pools")[0]["leases"] == []


@pytest.mark.parametrize(("aggressive", "pull"), CELLS, ids=IDS)
def test_snakeswan_client_against_strongswan_gateway(
    aggressive: bool, pull: bool, topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    charon_factory(
        east, "east", strongswan_gateway(pull=pull, aggressive=aggressive), settings=_settings(aggressive)
    )
    client = DaemonProcess(
        tmp_path, "west", snakeswan_client(pull=pull, aggressive=aggressive), netns=west.name
    )
    topo.on_close(client.stop)
    client.cmd("up", conn="home")
    sas = wait_for(lambda: [s for s in client.sas() if s["children"]], what="the client's IPsec SA")
    [sa] = sas
    assert sa["vips"] == [FIRST_VIP] and sa["xauth_user"] == "alice"
    assert sa["children"][0]["local_ts"] == f"{FIRST_VIP}/32"
    assert ping(west, FIRST_VIP, "10.231.2.1", count=5) >= 4


def _masquerade(nat: Any, out: str) -> None:
    nat.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
    nat.run("nft", "add", "table", "ip", "sswnat")
    nat.run("nft", "add", "chain", "ip", "sswnat", "post", "{ type nat hook postrouting priority 100; }")
    nat.run("nft", "add", "rule", "ip", "sswnat", "post", "oifname", out, "meta", "l4proto", "udp",
            "masquerade", "to", ":20000-29999")  # fmt: skip
    nat.run("nft", "add", "rule", "ip", "sswnat", "post", "oifname", out, "masquerade")


def _nat_lab(topo: Any) -> tuple[Any, Any, Any, Any]:
    """Three clients behind two NATs (nftables masquerade, UDP source ports rewritten), two of them
    with the same private address, and the gateway (LAN 10.231.3.1/24):

    c1 10.231.10.2 -- nat1 10.231.10.1 | nat1 10.231.11.1 -- c2 10.231.11.2
                      nat1 10.231.20.1 == gw 10.231.20.2
    c3 10.231.10.2 -- nat2 10.231.10.1
                      nat2 10.231.21.1 == gw 10.231.21.2
    """
    c1, c2, c3 = topo.add("c1"), topo.add("c2"), topo.add("c3")
    nat1, nat2, gw = topo.add("nat1"), topo.add("nat2"), topo.add("gw")
    veth(c1, "c0", "10.231.10.2/24", nat1, "n1", "10.231.10.1/24")
    veth(c2, "c0", "10.231.11.2/24", nat1, "n2", "10.231.11.1/24")
    veth(c3, "c0", "10.231.10.2/24", nat2, "n1", "10.231.10.1/24")
    veth(nat1, "n0", "10.231.20.1/24", gw, "g0", "10.231.20.2/24")
    veth(nat2, "n0", "10.231.21.1/24", gw, "g1", "10.231.21.2/24")
    protected(gw, "10.231.3.1/24")
    c1.run("ip", "route", "add", "10.231.20.0/24", "via", "10.231.10.1")
    c2.run("ip", "route", "add", "10.231.20.0/24", "via", "10.231.11.1")
    c3.run("ip", "route", "add", "10.231.21.0/24", "via", "10.231.10.1")
    _masquerade(nat1, "n0")
    _masquerade(nat2, "n0")
    return c1, c2, c3, gw


def test_clients_behind_nats_with_the_same_private_address_each_on_its_own_sa(
    topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    """alice and bob (strongSwan) behind one NAT, carol (a snakeswan client) behind another with
    alice's private address, all three with one group identity (each sends INITIAL-CONTACT): three
    SAs, three virtual IPs, each client's traffic on its own SA."""
    topo = topology()
    c1, c2, c3, gw_ns = _nat_lab(topo)
    users = "".join(f'[secrets.xauth-{u}]\nid = "{u}"\nsecret = "{u}-password"\n' for u in ("bob", "carol"))
    conf = (
        snakeswan_gateway(pull=True, aggressive=False)
        .replace(f'local_addrs = ["{EAST}"]', 'local_addrs = ["%any"]')
        .replace(LAN_E, "10.231.3.0/24")
        .replace("[secrets.xauth-alice]", users + "[secrets.xauth-alice]")
    )
    gw = DaemonProcess(tmp_path, "gw", conf, netns=gw_ns.name)
    topo.on_close(gw.stop)
    for ns, user in ((c1, "alice"), (c2, "bob")):
        client = (
            strongswan_client(pull=True, aggressive=False, password=f"{user}-password")
            .replace(EAST, "10.231.20.2")
            .replace(LAN_E, "10.231.3.0/24")
            .replace("alice", user)
        )  # one group identity for all, rw.ssw-lab: each one's INITIAL-CONTACT ends no other's SA
        charon = charon_factory(ns, user, client)
        charon.initiate("home", ike="home", timeout=30)
    carol_conf = (
        snakeswan_client(pull=True, aggressive=False)
        .replace(f'local_addrs = ["{WEST}"]', 'local_addrs = ["10.231.10.2"]')
        .replace(EAST, "10.231.21.2")
        .replace(LAN_E, "10.231.3.0/24")
        .replace("alice", "carol")
    )
    carol = DaemonProcess(tmp_path, "carol", carol_conf, netns=c3.name)
    topo.on_close(carol.stop)
    carol.cmd("up", conn="home")

    def all_up() -> list[dict[str, Any]] | None:
        up = [s for s in gw.sas() if s["children"]]
        return up if len(up) == 3 else None

    sas = wait_for(all_up, timeout=20, what="3 SAs")
    assert sorted(s["xauth_user"] for s in sas) == ["alice", "bob", "carol"]
    publics = {s["xauth_user"]: s["remote"].split(":")[0] for s in sas}
    assert publics == {"alice": "10.231.20.1", "bob": "10.231.20.1", "carol": "10.231.21.1"}
    assert all(s["nat_remote"] and s["children"][0]["encap"] for s in sas)
    vips = {s["xauth_user"]: s["vips"][0] for s in sas}
    assert len(set(vips.values())) == 3
    # each client's traffic goes out on its own SA: each pings, each sees its replies
    assert ping(c1, vips["alice"], "10.231.3.1", count=5) >= 4
    assert ping(c2, vips["bob"], "10.231.3.1", count=5) >= 4
    assert ping(c3, vips["carol"], "10.231.3.1", count=5) >= 4
    pols = [p for p in gw.cmd("list-pols")["policies"] if p["conn"] == "rw"]
    assert sorted(p["remote_ts"] for p in pols) == sorted(f"{v}/32" for v in vips.values())
    counts = {s["xauth_user"]: s["children"][0]["packets_in"] for s in gw.sas()}
    assert all(n >= 4 for n in counts.values()), counts
    # and the replies left on each client's own SA (its outbound counter), none on another's
    out = {s["xauth_user"]: s["children"][0]["packets_out"] for s in gw.sas()}
    assert all(4 <= n <= 5 for n in out.values()), out


# ---- certificates: RSA + XAUTH and hybrid, both roles --------------------------------------------


def _pki(tmp_path: Path) -> tuple[Credential, Credential, Credential]:
    pki = Pki(tmp_path / "pki")
    return pki.ca(), pki.host("gw.sw-lab"), pki.host("alice.sw-lab")


def _sw_gateway_certs(hybrid: bool) -> str:
    remote = (
        "remote {\n      auth = xauth\n    }"
        if hybrid
        else "remote-rsa {\n      round = 1\n      auth = pubkey\n      cacerts = ca.crt\n    }\n"
        "    remote-xauth {\n      round = 2\n      auth = xauth\n    }"
    )
    return f"""connections {{
  rw {{
    version = 1
    local_addrs = {EAST}
    remote_addrs = %any
    pools = rwpool
    proposals = aes128-sha256-modp2048
    local {{
      auth = pubkey
      certs = gw.sw-lab.crt
    }}
    {remote}
    children {{
      net {{
        local_ts = {LAN_E}
        esp_proposals = aes128gcm16-modp2048
      }}
    }}
  }}
}}
pools {{
  rwpool {{
    addrs = {POOL}
  }}
}}
secrets {{
  xauth-alice {{
    id = alice
    secret = "alice-password"
  }}
}}
"""


def _sw_client_certs(hybrid: bool, gw_dn: str) -> str:
    local = (
        "local {\n      auth = xauth\n      xauth_id = alice\n    }"
        if hybrid
        else "local-rsa {\n      round = 1\n      auth = pubkey\n      certs = alice.sw-lab.crt\n    }\n"
        "    local-xauth {\n      round = 2\n      auth = xauth\n      xauth_id = alice\n    }"
    )
    return f"""connections {{
  home {{
    version = 1
    remote_addrs = {EAST}
    vips = 0.0.0.0
    proposals = aes128-sha256-modp2048
    {local}
    remote {{
      auth = pubkey
      id = "{gw_dn}"
      cacerts = ca.crt
    }}
    children {{
      home {{
        remote_ts = {LAN_E}
        esp_proposals = aes128gcm16-modp2048
      }}
    }}
  }}
}}
secrets {{
  xauth-alice {{
    id = alice
    secret = "alice-password"
  }}
}}
"""


def _ours_gateway_certs(hybrid: bool, ca: Credential, gw: Credential) -> str:
    remote = (
        'remote = { auth = "xauth" }'
        if hybrid
        else f'remote-rsa = {{ auth = "pubkey", round = 1, cacerts = ["{ca.cert}"] }}\n'
        'remote-xauth = { auth = "xauth", round = 2 }'
    )
    return f"""
[connections.rw]
local_addrs = ["{EAST}"]
remote_addrs = ["%any"]
proposals = ["aes128-sha256-modp2048"]
pools = ["rwpool"]
local = {{ auth = "pubkey", certs = ["{gw.cert}"] }}
{remote}
[connections.rw.children.net]
local_ts = ["{LAN_E}"]
esp_proposals = ["aes128gcm16-modp2048"]
[pools.rwpool]
addrs = "{POOL}"
[secrets.private-gw]
file = "{gw.key}"
[secrets.xauth-alice]
id = "alice"
secret = "alice-password"
"""


def _ours_client_certs(hybrid: bool, ca: Credential, gw: Credential, me: Credential) -> str:
    local = (
        'local = { auth = "xauth", xauth_id = "alice" }'
        if hybrid
        else f'local-rsa = {{ auth = "pubkey", round = 1, certs = ["{me.cert}"] }}\n'
        'local-xauth = { auth = "xauth", round = 2, xauth_id = "alice" }'
    )
    return f"""
[connections.home]
local_addrs = ["{WEST}"]
remote_addrs = ["{EAST}"]
vips = ["0.0.0.0"]
proposals = ["aes128-sha256-modp2048"]
{local}
remote = {{ auth = "pubkey", id = "{gw.dn}", cacerts = ["{ca.cert}"] }}
[connections.home.children.home]
remote_ts = ["{LAN_E}"]
esp_proposals = ["aes128gcm16-modp2048"]
[secrets.private-me]
file = "{me.key}"
[secrets.xauth-alice]
id = "alice"
secret = "alice-password"
"""


@pytest.mark.parametrize("hybrid", [False, True], ids=["rsa-xauth", "hybrid"])
def test_certificates_strongswan_client_against_snakeswan_gateway(
    hybrid: bool, topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    ca, gw_cred, alice = _pki(tmp_path)
    topo = topology()
    west, east = site_to_site(topo)
    gw = DaemonProcess(tmp_path, "east", _ours_gateway_certs(hybrid, ca, gw_cred), netns=east.name)
    topo.on_close(gw.stop)
    charon = charon_factory(west, "west", _sw_client_certs(hybrid, gw_cred.dn), start=False)
    charon.add_cert(ca.cert, "x509ca")
    if not hybrid:
        charon.add_cert(alice.cert, "x509")
        charon.add_cert(alice.key, "rsa")
    charon.start()
    charon.load_all()
    charon.initiate("home", ike="home", timeout=30)
    [sa] = wait_for(lambda: [s for s in gw.sas() if s["children"]], what="the gateway's IPsec SA")
    assert sa["xauth_user"] == "alice" and sa["vips"] == [FIRST_VIP]
    assert ping(west, FIRST_VIP, "10.231.2.1", count=5) >= 4


@pytest.mark.parametrize("hybrid", [False, True], ids=["rsa-xauth", "hybrid"])
def test_certificates_snakeswan_client_against_strongswan_gateway(
    hybrid: bool, topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    ca, gw_cred, alice = _pki(tmp_path)
    topo = topology()
    west, east = site_to_site(topo)
    charon = charon_factory(east, "east", _sw_gateway_certs(hybrid), start=False)
    charon.add_cert(ca.cert, "x509ca")
    charon.add_cert(gw_cred.cert, "x509")
    charon.add_cert(gw_cred.key, "rsa")
    charon.start()
    charon.load_all()
    client = DaemonProcess(tmp_path, "west", _ours_client_certs(hybrid, ca, gw_cred, alice), netns=west.name)
    topo.on_close(client.stop)
    client.cmd("up", conn="home")
    [sa] = wait_for(lambda: [s for s in client.sas() if s["children"]], what="the client's IPsec SA")
    assert sa["vips"] == [FIRST_VIP]
    assert ping(west, FIRST_VIP, "10.231.2.1", count=5) >= 4
    charon.wait_log(r"XAuth authentication of 'alice' successful")


# ---- XAUTH checked by a real FreeRADIUS server ----------------------------------------------------


@pytest.mark.parametrize("password", ["alice-password", "wrong-password"], ids=["accept", "reject"])
def test_radius_decides_xauth_for_a_strongswan_client(
    password: str, topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    require_freeradius()
    topo = topology()
    west, east = site_to_site(topo)
    radius = FreeRadius(east, tmp_path, {"alice": "alice-password"}, "radius-test-secret").start()
    topo.on_close(radius.stop)
    conf = snakeswan_gateway(pull=True, aggressive=False).replace(
        'remote-xauth = { auth = "xauth", round = 2 }', 'remote-xauth = { auth = "xauth-radius", round = 2 }'
    )
    conf = conf.replace('[secrets.xauth-alice]\nid = "alice"\nsecret = "alice-password"\n', "")
    conf += '[radius]\naddress = "127.0.0.1"\nsecret = "radius-test-secret"\ntimeout = "2s"\n'
    assert "xauth-alice" not in conf  # the gateway knows no password: only RADIUS can say yes
    gw = DaemonProcess(tmp_path, "east", conf, netns=east.name)
    topo.on_close(gw.stop)
    charon = charon_factory(west, "west", strongswan_client(pull=True, aggressive=False, password=password))
    ok = password == "alice-password"
    charon.initiate("home", ike="home", timeout=30, check=ok)
    if ok:
        [sa] = wait_for(lambda: [s for s in gw.sas() if s["children"]], what="the gateway's IPsec SA")
        assert sa["xauth_user"] == "alice" and sa["vips"] == [FIRST_VIP]
        assert ping(west, FIRST_VIP, "10.231.2.1", count=3) >= 2
        wait_for(lambda: "Login OK: [alice]" in radius.log(), what="FreeRADIUS's Login OK")
        assert "XAUTH check of 'alice' successful (RADIUS Access-Accept)" in gw.log()
    else:
        wait_for(lambda: "Login incorrect" in radius.log(), what="FreeRADIUS's Login incorrect")
        wait_for(lambda: "XAUTH check of 'alice' failed (RADIUS Access-Reject)" in gw.log(), what="our log")
        wait_for(lambda: not gw.sas(), what="the gateway to delete the IKE SA")


def test_snakeswan_client_behind_a_nat_against_strongswan_gateway(
    topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    topo = topology()
    c1, _c2, _c3, gw_ns = _nat_lab(topo)
    charon_factory(
        gw_ns,
        "gw",
        strongswan_gateway(pull=True, aggressive=False)
        .replace(EAST, "10.231.20.2")
        .replace(LAN_E, "10.231.3.0/24"),
    )
    conf = (
        snakeswan_client(pull=True, aggressive=False)
        .replace(f'local_addrs = ["{WEST}"]', 'local_addrs = ["10.231.10.2"]')
        .replace(EAST, "10.231.20.2")
        .replace(LAN_E, "10.231.3.0/24")
    )
    client = DaemonProcess(tmp_path, "client", conf, netns=c1.name)
    topo.on_close(client.stop)
    client.cmd("up", conn="home")
    [sa] = wait_for(lambda: [s for s in client.sas() if s["children"]], what="the client's IPsec SA")
    assert sa["nat_local"] and sa["children"][0]["encap"] and sa["vips"] == [FIRST_VIP]
    assert ping(c1, FIRST_VIP, "10.231.3.1", count=5) >= 4
