"""Quick Mode features against strongSwan 5.9.8 (kernel-libipsec, ESP in UDP): proxy-ID narrowing
in both roles, and our route-based child (wildcard selectors, its own TUN, an ``ip route`` into it)
against strongSwan's policy-based one in both roles; each with a ping between the protected LANs
through the tunnel and both sides' view of the negotiated selectors.

Cells strongSwan cannot do (tried, so not kept as tests):
- ChaCha20-Poly1305 in IKEv1: charon has no IKEv1 ESP number for it; as responder it reads our
  transform 28 (the IKEv2 number, the only one assigned) as ``ESP:UNDEFINED`` and answers
  NO_PROPOSAL_CHOSEN; as initiator it sends a proposal announcing one transform and carrying none
  (we drop it as malformed). Between two snakeswan ends it is tested in the pair and unit tests.
- AH+ESP bundles: a charon child with both ah_proposals and esp_proposals sends an AH-only
  proposal (no bundle; we refuse it naming the missing ESP), kernel-libipsec has no AH, and it
  forces UDP encapsulation, which AH cannot cross (our bundle initiator refuses to start). Bundles
  are tested between two snakeswan daemons (tests/integration/test_bundle_netns.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.daemons import DaemonProcess, wait_for
from tests.interop.strongswan import children, psk_secret, swanctl_conf, swanctl_conn
from tests.netns import ping, protected, site_to_site

pytestmark = [pytest.mark.interop, pytest.mark.netns]

PSK = "quick-mode-interop-psk"
WEST, EAST = "10.231.0.1", "10.231.0.2"
LAN_W, LAN_E = "10.231.1.0/24", "10.231.2.0/24"
WIDE_E = "10.231.2.0/23"  # wider than east's LAN, but not the link between the sites


def ours(local_ts: str, remote_ts: str) -> str:
    return f"""
[connections.gw]
local_addrs = ["{WEST}"]
remote_addrs = ["{EAST}"]
proposals = ["aes128-sha256-modp2048"]
local = {{ auth = "psk" }}
remote = {{ auth = "psk" }}
[connections.gw.children.net]
local_ts = ["{local_ts}"]
remote_ts = ["{remote_ts}"]
esp_proposals = ["aes128gcm16-modp2048"]
[secrets.ike-gw]
id = ["{WEST}", "{EAST}"]
secret = "{PSK}"
"""


def theirs(local_ts: str, remote_ts: str) -> str:
    conn = swanctl_conn(
        "gw",
        local_addrs=EAST,
        remote_addrs=WEST,
        local_ts=local_ts,
        remote_ts=remote_ts,
    )
    return swanctl_conf(conn, secrets=[psk_secret(PSK, WEST, EAST)])


def test_strongswan_narrows_our_wide_proposal(topology: Any, charon_factory: Any, tmp_path: Path) -> None:
    """We propose 10.231.1.0/24 === 10.231.2.0/23; strongSwan's responder narrows to its /24."""
    topo = topology()
    west, east = site_to_site(topo)
    charon = charon_factory(east, "east", theirs(LAN_E, LAN_W))
    d = DaemonProcess(tmp_path, "west", ours(LAN_W, WIDE_E), netns=west.name)
    topo.on_close(d.stop)
    d.cmd("up", conn="gw")
    [sa] = wait_for(lambda: [s for s in d.sas() if s["children"]], timeout=20, what="the IPsec SA")
    child = sa["children"][0]
    assert (child["local_ts"], child["remote_ts"]) == (LAN_W, LAN_E)
    assert "proxy_ids_narrowed" in d.log()
    assert ping(west, "10.231.1.1", "10.231.2.1", count=5) == 5
    theirs_child = children(charon.list_sas_raw()[0])[0]
    assert theirs_child["local-ts"] == [LAN_E] and theirs_child["remote-ts"] == [LAN_W]


def test_we_narrow_strongswans_wide_proposal(topology: Any, charon_factory: Any, tmp_path: Path) -> None:
    """strongSwan proposes 10.231.2.0/23 === 10.231.1.0/24 (its own side wide); our responder
    answers with its 10.231.2.0/24 and strongSwan installs that."""
    topo = topology()
    west, east = site_to_site(topo)
    charon = charon_factory(east, "east", theirs(WIDE_E, LAN_W))
    d = DaemonProcess(tmp_path, "west", ours(LAN_W, LAN_E), netns=west.name)
    topo.on_close(d.stop)
    charon.initiate("net", ike="gw")
    [sa] = wait_for(lambda: [s for s in d.sas() if s["children"]], timeout=20, what="the IPsec SA")
    child = sa["children"][0]
    assert (child["local_ts"], child["remote_ts"]) == (LAN_W, LAN_E)
    assert "proxy_ids_narrowed" in d.log()
    theirs_child = children(charon.list_sas_raw()[0])[0]
    assert theirs_child["local-ts"] == [LAN_E] and theirs_child["remote-ts"] == [LAN_W]
    assert ping(west, "10.231.1.1", "10.231.2.1", count=5) == 5


ROUTE_BASED = f"""
[connections.gw]
local_addrs = ["{WEST}"]
remote_addrs = ["{EAST}"]
proposals = ["aes128-sha256-modp2048"]
local = {{ auth = "psk" }}
remote = {{ auth = "psk" }}
[connections.gw.children.net]
local_ts = ["0.0.0.0/0"]
remote_ts = ["0.0.0.0/0"]
esp_proposals = ["aes128gcm16-modp2048"]
if_id_in = 42
if_id_out = 42
interface = "ssw-vti42"
[secrets.ike-gw]
id = ["{WEST}", "{EAST}"]
secret = "{PSK}"
"""


@pytest.mark.parametrize("initiator", ["snakeswan", "strongswan"])
def test_route_based_against_policy_based_strongswan(
    initiator: str, topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    """Our route-based child (0.0.0.0/0 both ways, its own TUN) against strongSwan's policy-based
    10.231.2.0/24 === 10.231.1.0/24: as initiator we are narrowed to those subnets, as responder we
    take them; then an ``ip route`` into our interface makes the LANs reach each other."""
    topo = topology()
    west, east = site_to_site(topo)
    charon = charon_factory(east, "east", theirs(LAN_E, LAN_W))
    d = DaemonProcess(tmp_path, "west", ROUTE_BASED, netns=west.name)
    topo.on_close(d.stop)
    west.run("ip", "route", "add", LAN_E, "dev", "ssw-vti42", "src", "10.231.1.1")
    if initiator == "snakeswan":
        ping(west, "10.231.1.1", "10.231.2.1", count=1, timeout=3)  # routed in: the acquire starts it
    else:
        charon.initiate("net", ike="gw")
    [sa] = wait_for(lambda: [s for s in d.sas() if s["children"]], timeout=20, what="the IPsec SA")
    child = sa["children"][0]
    assert (child["local_ts"], child["remote_ts"]) == (LAN_W, LAN_E)
    assert ping(west, "10.231.1.1", "10.231.2.1", count=5) == 5
    theirs_child = children(charon.list_sas_raw()[0])[0]
    assert theirs_child["local-ts"] == [LAN_E] and theirs_child["remote-ts"] == [LAN_W]
    assert int(theirs_child["packets-in"]) >= 5 and int(theirs_child["packets-out"]) >= 5


TWO_LANS = f"""
[connections.gw]
local_addrs = ["{WEST}"]
remote_addrs = ["{EAST}"]
proposals = ["aes128-sha256-modp2048"]
local = {{ auth = "psk" }}
remote = {{ auth = "psk" }}
[connections.gw.children.net]
local_ts = ["{LAN_W}", "10.231.3.0/24"]
remote_ts = ["{LAN_E}"]
esp_proposals = ["aes128gcm16-modp2048"]
[secrets.ike-gw]
id = ["{WEST}", "{EAST}"]
secret = "{PSK}"
"""


@pytest.mark.parametrize("initiator", ["snakeswan", "strongswan"])
def test_two_selector_pairs_two_quick_modes(
    initiator: str, topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    """A child with two local subnets: one Quick Mode and one SA per pair, each LAN's pings on their
    own SA. strongSwan as responder takes each pair; as initiator it negotiates only its first
    pair (charon's IKEv1 Quick Mode uses the first selector of each side), and our `up` adds the
    other one on the same ISAKMP SA."""
    topo = topology()
    west, east = site_to_site(topo)
    protected(west, "10.231.3.1/24", "ssw-lan3")
    charon = charon_factory(east, "east", theirs(LAN_E, f"{LAN_W},10.231.3.0/24"))
    d = DaemonProcess(tmp_path, "west", TWO_LANS, netns=west.name)
    topo.on_close(d.stop)
    if initiator == "strongswan":
        # charon's IKEv1 initiator proposes only its first selector pair: one Quick Mode ...
        charon.initiate("net", ike="gw")
        [one] = wait_for(lambda: [c for s in d.sas() for c in s["children"]], timeout=20, what="the SA")
        assert one["local_ts"] == LAN_W
    d.cmd("up", conn="gw")  # ... so `up` on our side adds what is missing: the second pair
    kids = wait_for(
        lambda: [c for s in d.sas() for c in s["children"] if len(s["children"]) == 2],
        timeout=20,
        what="2 SAs",
    )
    assert sorted(c["local_ts"] for c in kids) == [LAN_W, "10.231.3.0/24"]
    assert ping(west, "10.231.1.1", "10.231.2.1", count=3) == 3
    assert ping(west, "10.231.3.1", "10.231.2.1", count=3) == 3
    theirs_children = children(charon.list_sas_raw()[0])
    assert sorted(c["remote-ts"][0] for c in theirs_children) == [LAN_W, "10.231.3.0/24"]
    assert all(int(c["packets-in"]) >= 3 for c in theirs_children)
