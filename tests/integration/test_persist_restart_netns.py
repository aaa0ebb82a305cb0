"""SAs that survive ``kill -9`` (issue 14), snakeswan <-> snakeswan in namespaces: a tunnel carries
a 10 Hz ping, one daemon is killed and started again with the same state file; it restores its
SAs: the peer sees no new IKE SA (same cookies, no new Main Mode), the SPIs are unchanged and the
ping loses at most 2 s. Both roles (the initiator killed, the responder killed)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemons import DaemonProcess, wait_for
from tests.netns import site_to_site
from tests.persist_helpers import BackgroundPing

pytestmark = pytest.mark.netns

WEST, EAST = "10.231.0.1", "10.231.0.2"
LAN_W, LAN_E = "10.231.1.0/24", "10.231.2.0/24"


def conf(local: str, remote: str, lnet: str, rnet: str) -> str:
    return f"""
[connections.gw]
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
proposals = ["aes128-sha256-modp2048"]
dpd_delay = "5s"
local = {{ auth = "psk" }}
remote = {{ auth = "psk" }}
[connections.gw.children.net]
local_ts = ["{lnet}"]
remote_ts = ["{rnet}"]
esp_proposals = ["aes128gcm16-modp2048"]
[secrets.ike-gw]
id = ["{local}", "{remote}"]
secret = "persist-test-psk"
"""


@pytest.mark.parametrize("killed", ["initiator", "responder"])
def test_kill9_restart_restores_sas(topology: Any, tmp_path: Path, killed: str) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    cw, ce = conf(WEST, EAST, LAN_W, LAN_E), conf(EAST, WEST, LAN_E, LAN_W)
    e = DaemonProcess(tmp_path, "east", ce, netns=east.name)
    topo.on_close(e.stop)
    w = DaemonProcess(tmp_path, "west", cw, netns=west.name)
    topo.on_close(w.stop)
    w.cmd("up", conn="gw")
    wait_for(lambda: e.sas() and e.sas()[0]["children"] and w.sas()[0]["children"], what="the tunnel")
    before_w, before_e = w.sas()[0], e.sas()[0]
    ping = BackgroundPing(west, "10.231.1.1", "10.231.2.1", 12)
    topo.on_close(ping.stop)
    time.sleep(3)
    victim, other = (w, e) if killed == "initiator" else (e, w)
    victim.proc.kill()  # kill -9: no Delete, no goodbye
    victim.proc.wait(5)
    victim.stop()
    time.sleep(0.5)
    name, ns, c = ("west", west, cw) if victim is w else ("east", east, ce)
    again = DaemonProcess(tmp_path, name, c, netns=ns.name)  # same name: same control socket, same state file
    topo.on_close(again.stop)
    w, e = (again, e) if victim is w else (w, again)
    result = ping.result()
    print(f"killed the {killed}: {result}")
    log = again.log()
    assert "1 IKE SA(s) and 1 IPsec SA(s) restored" in log, log[-3000:]
    after_w, after_e = w.sas(), e.sas()
    assert len(after_w) == 1 and len(after_e) == 1, (after_w, after_e)
    for before, after in ((before_w, after_w[0]), (before_e, after_e[0])):
        assert (after["icookie"], after["rcookie"]) == (before["icookie"], before["rcookie"])
        assert [(c["spi_in"], c["spi_out"]) for c in after["children"]] == [
            (c["spi_in"], c["spi_out"]) for c in before["children"]
        ]
    assert "MM1" not in log and "Main Mode" not in again.log().split("restored")[-1]
    assert other.log().count("established: SPIs") == 1  # the peer negotiated nothing new
    assert "IKE SA #2" not in other.log()  # the peer's first IKE SA is still its only one
    assert result.lost_seconds <= 2.0 and result.longest_gap <= 2.0, result
