"""An AH+ESP bundle between two snakeswan daemons in namespaces: the first ping triggers the
Quick Mode (start_action = trap), pings cross as IP | AH | ESP (seen by a raw AH socket on the
receiving side), and both daemons count packets on the ESP SAs."""

from __future__ import annotations

import sys
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
[connections.gw.children.net]
local_ts = ["{lnet}"]
remote_ts = ["{rnet}"]
esp_proposals = ["aes128-sha256-modp2048"]
ah_proposals = ["sha256-modp2048"]
start_action = "trap"
[secrets.ike-gw]
id = ["{local}", "{remote}"]
secret = "bundle-test-psk"
"""

SNIFF_AH = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 51)
s.settimeout(20)
while True:
    data = s.recv(65535)
    hlen = (data[0] & 15) * 4
    if data[9] == 51:
        print(data[9], data[hlen], flush=True)
        break
"""


def test_ping_through_an_ah_esp_bundle(topology: Any, tmp_path: Path) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    e = DaemonProcess(
        tmp_path,
        "east",
        CONF.format(local="10.231.0.2", remote="10.231.0.1", lnet="10.231.2.0/24", rnet="10.231.1.0/24"),
        netns=east.name,
    )
    topo.on_close(e.stop)
    w = DaemonProcess(
        tmp_path,
        "west",
        CONF.format(local="10.231.0.1", remote="10.231.0.2", lnet="10.231.1.0/24", rnet="10.231.2.0/24"),
        netns=west.name,
    )
    topo.on_close(w.stop)
    ping(west, "10.231.1.1", "10.231.2.1", count=1, timeout=3)  # the acquire starts the bundle
    [sa] = wait_for(lambda: [s for s in w.sas() if s["children"]], timeout=20, what="the bundle")
    sniff = east.popen(sys.executable, "-c", SNIFF_AH, stdout=-1, text=True)
    try:
        assert ping(west, "10.231.1.1", "10.231.2.1", count=5) == 5
        out, _ = sniff.communicate(timeout=25)
    finally:
        if sniff.poll() is None:
            sniff.kill()
            sniff.wait(5)
    assert out.split() == ["51", "50"]  # IP protocol AH, whose next header is ESP
    child = sa["children"][0]
    assert child["protocol"] == "AH+ESP" and child["ah_proposal"].startswith("HMAC_SHA2_256")
    east_view = next(c for s in e.sas() for c in s["children"])
    assert (east_view["ah_spi_in"], east_view["spi_in"]) == (child["ah_spi_out"], child["spi_out"])
    west_child = wait_for(lambda: [c for s in w.sas() for c in s["children"] if c["packets_in"] >= 5],
                          timeout=5, what="west's counters")[0]  # fmt: skip
    assert west_child["packets_out"] >= 5
    east_child = next(c for s in e.sas() for c in s["children"])
    assert east_child["packets_in"] >= 5 and east_child["packets_out"] >= 5
