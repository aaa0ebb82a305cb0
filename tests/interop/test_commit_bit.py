"""The commit bit (RFC 2408 4.6) with ``commit_bit = true`` against strongSwan 5.9.8 and Libreswan
4.10, both roles (issue 10). Neither peer implements it (both answer QM1 without the bit, pluto
without a word at its default log level); what must hold is that setting it costs nothing:

- we initiate: our QM1 carries the bit, the peer's QM2 does not, so we finish at once
  (``commit_bit_ignored``) instead of waiting for a CONNECTED that will never come;
- the peer initiates without the bit: our QM2 goes without it and no CONNECTED follows
  (``commit_bit_not_set``). Sending one anyway was tried: strongSwan took the informational under
  its Quick Mode's message ID for an unexpected response ("received INFORMATIONAL_V1 response, but
  expected EXCHANGE_TYPE_UNDEFINED") and silently dropped its ISAKMP SA.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemons import DaemonProcess, wait_for
from tests.interop import test_libreswan as lsw
from tests.interop import test_strongswan_ike as ssi
from tests.netns import site_to_site

pytestmark = [pytest.mark.interop, pytest.mark.netns]

pluto_factory = lsw.pluto_factory
xfrm_shim = lsw.xfrm_shim


def with_commit(conf: str) -> str:
    return conf.replace("[connections.gw]\n", "[connections.gw]\ncommit_bit = true\n", 1)


def our_child(daemon: DaemonProcess) -> dict[str, Any]:
    sas = wait_for(lambda: [s for s in daemon.sas() if s["children"]], timeout=30, what="our IPsec SA")
    child: dict[str, Any] = sas[0]["children"][0]
    return child


def check_our_side(daemon: DaemonProcess, *, we_initiated: bool) -> None:
    log = daemon.log()
    if we_initiated:
        assert re.search(r"sent .*msg=QM1", log)
        assert "commit_bit_ignored" in log and "waiting_connected" not in log
    else:
        assert "commit_bit_not_set" in log and "connected_sent" not in log
    time.sleep(1)  # the CONNECTED (or its absence) changes nothing afterwards
    assert len([s for s in daemon.sas() if s["children"]]) == 1


@pytest.mark.parametrize("we_initiate", [True, False], ids=["snakeswan-initiates", "strongswan-initiates"])
def test_commit_bit_with_strongswan(
    we_initiate: bool, topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    cell = ssi.CELLS[0]
    topo = topology()
    west, east = site_to_site(topo)
    charon = charon_factory(east, "east", ssi.strongswan_conf(cell))
    daemon = DaemonProcess(tmp_path, "west", with_commit(ssi.snakeswan_conf(cell)), netns=west.name)
    topo.on_close(daemon.stop)
    if we_initiate:
        daemon.cmd("up", conn="gw")
    else:
        charon.initiate("net", ike="gw")
    ours = wait_for(lambda: [s for s in daemon.sas() if s["children"]], timeout=30, what="our IPsec SA")[0]
    ssi.check_both_sides(cell, charon, ours, we_initiated=we_initiate)
    check_our_side(daemon, we_initiated=we_initiate)
    theirs = charon.wait_sas(lambda s: [x for x in s if x.get("state") == "ESTABLISHED" and ssi.children(x)])
    assert ssi.children(theirs[0])[0]["spi-in"] == ours["children"][0]["spi_out"]


@pytest.mark.parametrize("we_initiate", [True, False], ids=["snakeswan-initiates", "libreswan-initiates"])
def test_commit_bit_with_libreswan(
    we_initiate: bool, topology: Any, pluto_factory: Any, tmp_path: Path
) -> None:
    cell = lsw.CELLS[0]
    topo = topology()
    west, east = site_to_site(topo)
    conns, secrets = lsw.pluto_conf(cell)
    pluto = pluto_factory(east, "east", conns, secrets)
    daemon = DaemonProcess(tmp_path, "west", with_commit(lsw.snakeswan_conf(cell)), netns=west.name)
    topo.on_close(daemon.stop)
    if we_initiate:
        daemon.cmd("up", conn="gw")
    else:
        pluto.initiate("gw")
    ours = lsw.our_sa(daemon)
    lsw.check_both_sides(cell, pluto, ours, we_initiated=we_initiate)
    check_our_side(daemon, we_initiated=we_initiate)
