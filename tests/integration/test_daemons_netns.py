"""Two snakeswan daemons in their own network namespaces (west, east), MM+QM and AM+QM, inspected
with the real CLI (`snakeswan list-sas --json`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.daemons import ROOT, DaemonProcess, wait_for
from tests.netns import site_to_site

pytestmark = pytest.mark.netns

CONF = """
[connections.site]
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
aggressive = {aggressive}
proposals = ["aes256-sha384-ecp384", "aes128-sha256-modp2048"]
local = {{ auth = "psk", id = "{lid}" }}
remote = {{ auth = "psk", id = "{rid}" }}
[connections.site.children.lan]
local_ts = ["{lnet}"]
remote_ts = ["{rnet}"]
esp_proposals = ["aes256gcm16-ecp384", "aes128-sha256"]
[secrets.ike-site]
id = ["{lid}", "{rid}"]
secret = "netns-test-psk"
"""


def cli_sas(control: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [sys.executable, "-m", "snakeswan.cli.main", "--control", control, "list-sas", "--json"],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
        env={"PYTHONPATH": str(ROOT / "src")},
    ).stdout
    result: list[dict[str, Any]] = json.loads(out)
    return result


@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
def test_two_daemons_in_namespaces(topology: Any, tmp_path: Path, aggressive: bool) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    ids = ("@west.test", "@east.test") if aggressive else ("10.231.0.1", "10.231.0.2")
    flag = str(aggressive).lower()
    cw = CONF.format(
        local="10.231.0.1",
        remote="10.231.0.2",
        aggressive=flag,
        lid=ids[0],
        rid=ids[1],
        lnet="10.231.1.0/24",
        rnet="10.231.2.0/24",
    )
    ce = CONF.format(
        local="10.231.0.2",
        remote="10.231.0.1",
        aggressive=flag,
        lid=ids[1],
        rid=ids[0],
        lnet="10.231.2.0/24",
        rnet="10.231.1.0/24",
    )
    w = DaemonProcess(tmp_path, "west", cw, netns=west.name)
    topo.on_close(w.stop)
    e = DaemonProcess(tmp_path, "east", ce, netns=east.name)
    topo.on_close(e.stop)
    w.cmd("up", conn="site")
    wait_for(lambda: all(d.sas() and d.sas()[0]["children"] for d in (w, e)), what="SAs on both sides")
    sw, se = cli_sas(w.control)[0], cli_sas(e.control)[0]
    assert (sw["icookie"], sw["rcookie"]) == (se["icookie"], se["rcookie"])
    assert sw["proposal"] == se["proposal"] == "AES_CBC_256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384"
    assert (sw["role"], se["role"]) == ("initiator", "responder")
    assert sw["local"] == "10.231.0.1:500" and se["remote"] == "10.231.0.1:500"  # no NAT, no float
    assert not sw["encap"] and not se["encap"]
    cw_, ce_ = sw["children"][0], se["children"][0]
    assert (cw_["spi_in"], cw_["spi_out"]) == (ce_["spi_out"], ce_["spi_in"])
    assert cw_["proposal"] == ce_["proposal"] == "AES_GCM_16_256/ECP_384/NO_EXT_SEQ"
    assert cw_["mode"] == "tunnel" and (cw_["local_ts"], cw_["remote_ts"]) == (
        "10.231.1.0/24",
        "10.231.2.0/24",
    )
    # the responder's `down` reaches the initiator
    e.cmd("down", conn="site")
    wait_for(lambda: w.sas() == [], what="west to drop the SAs east deleted")


def test_sigkill_restart_initial_contact_between_daemons(topology: Any, tmp_path: Path) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    cw = CONF.format(
        local="10.231.0.1",
        remote="10.231.0.2",
        aggressive="false",
        lid="10.231.0.1",
        rid="10.231.0.2",
        lnet="10.231.1.0/24",
        rnet="10.231.2.0/24",
    )
    ce = CONF.format(
        local="10.231.0.2",
        remote="10.231.0.1",
        aggressive="false",
        lid="10.231.0.2",
        rid="10.231.0.1",
        lnet="10.231.2.0/24",
        rnet="10.231.1.0/24",
    )
    e = DaemonProcess(tmp_path, "east", ce, netns=east.name)
    topo.on_close(e.stop)
    w = DaemonProcess(tmp_path, "west", cw, netns=west.name)
    w.cmd("up", conn="site")
    wait_for(lambda: e.sas() and e.sas()[0]["children"], what="the tunnel")
    stale = e.sas()[0]["icookie"]
    w.proc.kill()  # no Delete is sent
    w.proc.wait(5)
    w.stop()
    assert e.sas()[0]["icookie"] == stale
    w2 = DaemonProcess(tmp_path, "west2", cw, netns=west.name)
    topo.on_close(w2.stop)
    w2.cmd("up", conn="site")
    wait_for(
        lambda: len(e.sas()) == 1 and e.sas()[0]["icookie"] != stale and len(e.sas()[0]["children"]) == 1,
        what="east to replace the stale SAs (INITIAL-CONTACT)",
    )
    assert "replaced after INITIAL-CONTACT" in e.log()
