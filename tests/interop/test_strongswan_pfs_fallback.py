"""PFS fallback against strongSwan 5.9: our child offers PFS first and no PFS second; a strongSwan
responder configured without PFS refuses the first offer (NO_PROPOSAL_CHOSEN) and takes the next."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.daemons import DaemonProcess, wait_for
from tests.interop.strongswan import children, psk_secret, swanctl_conf, swanctl_conn
from tests.netns import site_to_site

pytestmark = [pytest.mark.interop, pytest.mark.netns]

WEST, EAST = "10.231.0.1", "10.231.0.2"
PSK = "pfs-fallback-psk"

OURS = f"""
[connections.gw]
local_addrs = ["{WEST}"]
remote_addrs = ["{EAST}"]
proposals = ["aes128-sha256-modp2048"]
local = {{ auth = "psk" }}
remote = {{ auth = "psk" }}
[connections.gw.children.net]
local_ts = ["10.231.1.0/24"]
remote_ts = ["10.231.2.0/24"]
esp_proposals = ["aes128gcm16-modp2048", "aes128gcm16"]
[secrets.ike-gw]
id = ["{WEST}", "{EAST}"]
secret = "{PSK}"
"""


def test_strongswan_without_pfs_gets_the_second_offer(
    topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    conn = swanctl_conn(
        "gw",
        local_addrs=EAST,
        remote_addrs=WEST,
        local_ts="10.231.2.0/24",
        remote_ts="10.231.1.0/24",
        esp_proposals="aes128gcm16",
    )
    charon = charon_factory(east, "east", swanctl_conf(conn, secrets=[psk_secret(PSK, WEST, EAST)]))
    d = DaemonProcess(tmp_path, "west", OURS, netns=west.name)
    topo.on_close(d.stop)
    d.cmd("up", conn="gw")
    [sa] = wait_for(lambda: [s for s in d.sas() if s["children"]], timeout=20, what="the IPsec SA")
    assert sa["children"][0]["proposal"] == "AES_GCM_16_128/NO_EXT_SEQ"  # no PFS group: the second offer
    assert "quick_mode_fallback" in d.log()
    theirs = children(charon.list_sas_raw()[0])[0]
    assert theirs["spi-in"] == sa["children"][0]["spi_out"] and "dh-group" not in theirs
