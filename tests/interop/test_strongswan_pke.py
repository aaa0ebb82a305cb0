"""strongSwan 5.9 does not implement phase 1 authentication with public key encryption (RFC 2409
5.2 / 5.3, auth methods 4 / 5): its IKEv1 proposal parser maps both to AUTH_NONE
(``proposal_substructure.c``, ``get_auth_method``) and swanctl has no way to ask for them. This
cell shows what a real peer does with our offer, strongSwan configured for RSA signatures with
the very keys we would encrypt to: in Main Mode it answers MM1 with a transform of another auth
method (refused: not what we offered), in Aggressive Mode it reads our encrypted ID as an unknown
ID type and answers AUTHENTICATION_FAILED. Nothing establishes; snakeswan logs why. (Libreswan 4.10 has no PKE/RPKE either: its IKEv1 state table routes them to
``unexpected`` "not yet implemented".) The methods themselves are tested pair-wise in
tests/unit/ike/test_pair_pubkey_enc.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.daemons import DaemonProcess, wait_for
from tests.interop.strongswan import Pki, swanctl_conf, swanctl_conn
from tests.netns import site_to_site

pytestmark = [pytest.mark.interop, pytest.mark.netns]

WEST, EAST = "10.231.0.1", "10.231.0.2"
LAN_W, LAN_E = "10.231.1.0/24", "10.231.2.0/24"


@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
@pytest.mark.parametrize("auth", ["pubkey-enc", "pubkey-enc-revised"])
def test_strongswan_refuses_public_key_encryption(
    auth: str, aggressive: bool, topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    pki = Pki(tmp_path / "pki", key_type="rsa")
    ca = pki.ca()
    west_c, east_c = pki.host("west.sw-lab"), pki.host("east.sw-lab")
    topo = topology()
    west, east = site_to_site(topo)
    conn = swanctl_conn(
        "gw",
        local_addrs=EAST,
        remote_addrs=WEST,
        aggressive=aggressive,
        proposals="aes128-sha256-modp2048",
        auth="pubkey",
        local_id=east_c.dn,
        remote_id=west_c.dn,
        local_ts=LAN_E,
        remote_ts=LAN_W,
        esp_proposals="aes128gcm16",
        local_extra={"certs": "east.sw-lab.crt"},
        remote_extra={"cacerts": "ca.crt"},
    )
    charon = charon_factory(east, "east", swanctl_conf(conn), start=False)
    charon.add_cert(ca.cert, "x509ca")
    charon.add_cert(east_c.cert, "x509")
    charon.add_cert(east_c.key, "rsa")
    charon.start()
    charon.load_all()
    ours = f"""
[connections.gw]
local_addrs = ["{WEST}"]
remote_addrs = ["{EAST}"]
aggressive = {str(aggressive).lower()}
proposals = ["aes128-sha256-modp2048"]
local = {{ auth = "{auth}", certs = ["{west_c.cert}"], id = "{west_c.dn}" }}
remote = {{ auth = "{auth}", certs = ["{east_c.cert}"], id = "{east_c.dn}" }}
[connections.gw.children.net]
local_ts = ["{LAN_W}"]
remote_ts = ["{LAN_E}"]
esp_proposals = ["aes128gcm16"]
[secrets.private-west]
file = "{west_c.key}"
"""
    daemon = DaemonProcess(tmp_path, "west", ours, netns=west.name)
    topo.on_close(daemon.stop)
    daemon.cmd("up", conn="gw")
    if aggressive:
        # strongSwan parses AM1 as if in the clear: 5.2's encrypted ID as an unknown ID type (no
        # peer config for auth method "none": AUTHENTICATION_FAILED), 5.3's Ke-encrypted KE as a
        # DH value of the wrong size; it answers with an unauthenticated error notify, which we
        # log and do not believe (our retransmissions end the exchange, as for any forgery)
        wait_for(lambda: "notify_received" in daemon.log(), what="strongSwan's refusal", timeout=30)
        why = "unable to apply received KE value" if auth.endswith("revised") else "no peer config found"
        assert why in charon.log()
    else:
        # strongSwan takes the MM1 proposal but answers with another auth method in its transform:
        # refused as a transform we did not offer
        reason = "responder chose a transform we did not offer"
        wait_for(lambda: reason in daemon.log(), what="strongSwan's MM2", timeout=30)
        line = next(x for x in daemon.log().splitlines() if reason in x)
        method = "RSA_REVISED_ENCRYPTION" if auth.endswith("revised") else "RSA_ENCRYPTION"
        assert "auth=PRE_SHARED_KEY" in line and f"auth={method}" in line, line
    assert "ike_sa_established" not in daemon.log()
    assert not [s for s in charon.list_sas_raw() if s.get("state") == "ESTABLISHED"]
