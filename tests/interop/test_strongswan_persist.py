"""SAs that survive ``kill -9`` against strongSwan 5.9 (issue 14): a tunnel carrying a 10 Hz ping,
our daemon killed and started again with its state file: strongSwan's log shows no new IKE SA
(one "established" line, no new Main Mode), the SPIs are unchanged on both sides, and the ping
loses at most 2 s. Both roles: we initiated the tunnel, or strongSwan did."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemons import DaemonProcess, wait_for
from tests.interop.strongswan import children, psk_secret, swanctl_conf, swanctl_conn
from tests.netns import site_to_site
from tests.persist_helpers import BackgroundPing

pytestmark = [pytest.mark.interop, pytest.mark.netns]

PSK = "persist-interop-psk"
WEST, EAST = "10.231.0.1", "10.231.0.2"
LAN_W, LAN_E = "10.231.1.0/24", "10.231.2.0/24"

OURS = f"""
[connections.gw]
local_addrs = ["{WEST}"]
remote_addrs = ["{EAST}"]
proposals = ["aes128-sha256-modp2048"]
local = {{ auth = "psk" }}
remote = {{ auth = "psk" }}
[connections.gw.children.net]
local_ts = ["{LAN_W}"]
remote_ts = ["{LAN_E}"]
esp_proposals = ["aes128gcm16-modp2048"]
[secrets.ike-gw]
id = ["{WEST}", "{EAST}"]
secret = "{PSK}"
"""


def theirs() -> str:
    conn = swanctl_conn(
        "gw", local_addrs=EAST, remote_addrs=WEST, local_ts=LAN_E, remote_ts=LAN_W,
        esp_proposals="aes128gcm16-modp2048",
    )  # fmt: skip
    return swanctl_conf(conn, secrets=[psk_secret(PSK, WEST, EAST)])


def _spis(charon: Any) -> list[tuple[str, str, str, str]]:
    out = []
    for sa in charon.list_sas_raw():
        if sa.get("state") == "ESTABLISHED":
            out += [
                (sa["initiator-spi"], sa["responder-spi"], c["spi-in"], c["spi-out"]) for c in children(sa)
            ]
    return out


@pytest.mark.parametrize("initiator", ["snakeswan", "strongswan"])
def test_kill9_restart_against_strongswan(
    initiator: str, topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    charon = charon_factory(east, "east", theirs())
    d = DaemonProcess(tmp_path, "west", OURS, netns=west.name)
    topo.on_close(d.stop)
    if initiator == "snakeswan":
        d.cmd("up", conn="gw")
    else:
        charon.initiate("net", ike="gw")
    wait_for(lambda: d.sas() and d.sas()[0]["children"] and _spis(charon), timeout=20, what="the tunnel")
    before, ours_before = _spis(charon), d.sas()[0]
    ping = BackgroundPing(west, "10.231.1.1", "10.231.2.1", 12)
    topo.on_close(ping.stop)
    time.sleep(3)
    d.proc.kill()  # kill -9
    d.proc.wait(5)
    d.stop()
    time.sleep(0.5)
    d2 = DaemonProcess(tmp_path, "west", OURS, netns=west.name)  # same control socket, same state file
    topo.on_close(d2.stop)
    result = ping.result()
    print(f"{initiator} initiated, ours killed: {result}")
    assert "1 IKE SA(s) and 1 IPsec SA(s) restored" in d2.log(), d2.log()[-3000:]
    after = _spis(charon)
    assert after == before, (before, after)
    ours_after = d2.sas()[0]
    assert (ours_after["icookie"], ours_after["rcookie"]) == (ours_before["icookie"], ours_before["rcookie"])
    assert [c["spi_in"] for c in ours_after["children"]] == [c["spi_in"] for c in ours_before["children"]]
    log = charon.log()
    assert len(re.findall(r"IKE_SA gw\[\d+\] established", log)) == 1, log[-3000:]
    assert len(re.findall(r"CHILD_SA net\{\d+\} established", log)) == 1, log[-3000:]
    assert result.lost_seconds <= 2.0 and result.longest_gap <= 2.0, result
    # the restored SAs go on working: a Quick Mode under the restored ISAKMP SA
    d2.cmd("rekey", conn="gw")
    wait_for(lambda: len(re.findall(r"CHILD_SA net\{\d+\} established", charon.log())) == 2, what="a rekey")
    assert len(re.findall(r"IKE_SA gw\[\d+\] established", charon.log())) == 1
