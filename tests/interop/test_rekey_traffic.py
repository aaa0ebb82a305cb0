"""A continuous ping between the protected subnets survives three IPsec rekeys and an ISAKMP
renewal with zero lost packets: snakeswan <-> snakeswan and snakeswan <-> strongSwan, both roles.
Afterwards exactly one IKE SA and one pair of IPsec SAs are left on each side."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.daemons import DaemonProcess, wait_for
from tests.interop.strongswan import children, psk_secret, swanctl_conf, swanctl_conn
from tests.netns import Netns, site_to_site

pytestmark = [pytest.mark.interop, pytest.mark.netns]

PSK = "rekey-traffic-psk"
WEST, EAST = "10.231.0.1", "10.231.0.2"
LAN_W, LAN_E = "10.231.1.0/24", "10.231.2.0/24"


def conf(local: str, remote: str, lnet: str, rnet: str, *, short: bool) -> str:
    times = 'rekey_time = "24s"\nover_time = "6s"\nrand_time = "0s"' if short else 'rekey_time = "1h"'
    child = (
        'life_time = "13s"\nrekey_time = "9s"\nrand_time = "0s"'
        if short
        else 'life_time = "2h"\nrekey_time = "1h"'
    )
    return f"""
[connections.gw]
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
proposals = ["aes128-sha256-modp2048"]
{times}
local = {{ auth = "psk" }}
remote = {{ auth = "psk" }}
[connections.gw.children.net]
local_ts = ["{lnet}"]
remote_ts = ["{rnet}"]
esp_proposals = ["aes128gcm16-modp2048"]
{child}
[secrets.ike-gw]
id = ["{local}", "{remote}"]
secret = "{PSK}"
"""


def ping_for(ns: Netns, seconds: float) -> tuple[int, int]:
    count = int(seconds / 0.1)
    cp = ns.run(
        "ping",
        "-I",
        "10.231.1.1",
        "-i",
        "0.1",
        "-c",
        str(count),
        "-W",
        "1",
        "10.231.2.1",
        timeout=seconds + 30,
        check=False,
    )
    m = re.search(r"(\d+) packets transmitted, (\d+) received", cp.stdout)
    assert m, cp.stdout + cp.stderr
    return int(m.group(1)), int(m.group(2))


def test_snakeswan_pair_zero_loss(topology: Any, tmp_path: Path) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    e = DaemonProcess(tmp_path, "east", conf(EAST, WEST, LAN_E, LAN_W, short=True), netns=east.name)
    topo.on_close(e.stop)
    w = DaemonProcess(tmp_path, "west", conf(WEST, EAST, LAN_W, LAN_E, short=True), netns=west.name)
    topo.on_close(w.stop)
    w.cmd("up", conn="gw")
    wait_for(lambda: w.sas() and w.sas()[0]["children"], what="the tunnel")
    sent, received = ping_for(west, 32)
    log = w.log()
    assert log.count("child_rekey") >= 3 and "ike_renewed" in log, log[-2000:]
    assert received == sent, f"{sent - received} of {sent} pings lost"
    wait_for(
        lambda: all(len(d.sas()) == 1 and len(d.sas()[0]["children"]) == 1 for d in (w, e)),
        timeout=10,
        what="one IKE SA and one IPsec SA pair on each side",
    )


@pytest.mark.parametrize("rekeyer", ["snakeswan", "strongswan"])
def test_strongswan_zero_loss(rekeyer: str, topology: Any, charon_factory: Any, tmp_path: Path) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    short = rekeyer == "strongswan"
    conn = swanctl_conn(
        "gw",
        local_addrs=EAST,
        remote_addrs=WEST,
        local_ts=LAN_E,
        remote_ts=LAN_W,
        esp_proposals="aes128gcm16-modp2048",
        rekey_time="9s" if short else "1h",
        life_time="13s" if short else "2h",
        ike_rekey_time="24s" if short else "4h",
        ike_over_time="6s" if short else None,
        conn_extra={"rand_time": "0s"} if short else None,
        child_extra={"rand_time": "0s"} if short else None,
    )
    charon = charon_factory(east, "east", swanctl_conf(conn, secrets=[psk_secret(PSK, WEST, EAST)]))
    w = DaemonProcess(tmp_path, "west", conf(WEST, EAST, LAN_W, LAN_E, short=not short), netns=west.name)
    topo.on_close(w.stop)
    if rekeyer == "snakeswan":
        w.cmd("up", conn="gw")
    else:
        charon.initiate("net", ike="gw")
    wait_for(lambda: w.sas() and w.sas()[0]["children"], what="the tunnel")
    first = w.sas()[0]["children"][0]["spi_in"]
    sent, received = ping_for(west, 32)
    assert w.sas()[0]["children"][-1]["spi_in"] != first, "the IPsec SA was rekeyed"
    assert received == sent, f"{sent - received} of {sent} pings lost"

    def settled() -> bool:
        ours_ = w.sas()
        theirs_ = [s for s in charon.list_sas_raw() if s.get("state") == "ESTABLISHED"]
        return (
            len(ours_) == 1
            and len(ours_[0]["children"]) == 1
            and len(theirs_) == 1
            and len([c for c in children(theirs_[0]) if c.get("state") == "INSTALLED"]) == 1
        )

    wait_for(settled, timeout=15, what="one IKE SA and one IPsec SA pair on each side")
