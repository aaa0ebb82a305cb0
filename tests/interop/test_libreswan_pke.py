"""Libreswan 4.10 does not implement phase 1 authentication with public key encryption (RFC 2409
5.2 / 5.3, auth methods 4 / 5): its IKEv1 state table sends PKE/RPKE messages to ``unexpected``
("not yet implemented") and its ipsec.conf has no ``authby`` for them. This cell shows what pluto
does with our MM1/AM1 offering them: Main Mode, "no connection has been authorized with
authby=none", a silent drop; Aggressive Mode, our HASH(1) is "unexpected by state STATE_AGGR_R0"
(INVALID_PAYLOAD_TYPE). We retransmit until we give up; nothing establishes.
The methods themselves are tested pair-wise in tests/unit/ike/test_pair_pubkey_enc.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.daemons import DaemonProcess, wait_for
from tests.interop import test_libreswan
from tests.interop.libreswan import conn_section
from tests.netns import site_to_site
from tests.pki import TestPki

pytestmark = [pytest.mark.interop, pytest.mark.netns]
pluto_factory = test_libreswan.pluto_factory  # the fixtures, shared
xfrm_shim = test_libreswan.xfrm_shim

WEST, EAST = "10.231.0.1", "10.231.0.2"
LAN_W, LAN_E = "10.231.1.0/24", "10.231.2.0/24"


@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
@pytest.mark.parametrize("auth", ["pubkey-enc", "pubkey-enc-revised"])
def test_libreswan_refuses_public_key_encryption(
    auth: str,
    aggressive: bool,
    topology: Any,
    pluto_factory: Any,
    tmp_path: Path,
) -> None:
    pki = TestPki(tmp_path / "pki", "rsa")
    west_c, east_c = pki.host("west.sw-lab"), pki.host("east.sw-lab", key_index=1)
    topo = topology()
    west, east = site_to_site(topo)
    options: dict[str, str | None] = {
        "ikev2": "no",
        "authby": "secret",
        "left": EAST,
        "leftsubnet": LAN_E,
        "right": WEST,
        "rightsubnet": LAN_W,
        "leftupdown": "/bin/true",
        "auto": "add",
        "ike": "aes128-sha2_256;modp2048",
    }
    if aggressive:
        options |= {"aggressive": "yes", "leftid": "@east.sw-lab", "rightid": "@west.sw-lab"}
    secrets = f'{EAST} {WEST} : PSK "unused-pre-shared-key"\n'
    pluto = pluto_factory(east, "east", conn_section("gw", **options), secrets)
    ours = f"""
[connections.gw]
local_addrs = ["{WEST}"]
remote_addrs = ["{EAST}"]
aggressive = {str(aggressive).lower()}
proposals = ["aes128-sha256-modp2048"]
local = {{ auth = "{auth}", certs = ["{west_c.cert}"] }}
remote = {{ auth = "{auth}", certs = ["{east_c.cert}"] }}
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
    # Main Mode: pluto knows no authby for methods 4 and 5 and drops MM1 silently; Aggressive
    # Mode: it refuses AM1's HASH(1) as an unexpected payload (INVALID_PAYLOAD_TYPE)
    refusal = (
        "unexpected by state STATE_AGGR_R0"
        if aggressive
        else "no connection has been authorized with authby=none"
    )
    wait_for(lambda: refusal in pluto.log(), what="pluto's refusal", timeout=30)
    wait_for(lambda: "retransmit" in daemon.log(), what="our retransmission", timeout=30)
    assert "ike_sa_established" not in daemon.log()
    assert not [s for s in pluto.states() if s.established]
