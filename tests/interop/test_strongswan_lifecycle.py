"""SA life cycle against strongSwan 5.9: IPsec SA rekeying and ISAKMP SA renewal with short
lifetimes, DPD; afterwards exactly one IKE SA and one pair of IPsec SAs on each side."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemons import DaemonProcess, wait_for
from tests.interop.strongswan import children, psk_secret, swanctl_conf, swanctl_conn
from tests.netns import ping, site_to_site

pytestmark = [pytest.mark.interop, pytest.mark.netns]

PSK = "lifecycle-pre-shared-key"
WEST, EAST = "10.231.0.1", "10.231.0.2"
LAN_W, LAN_E = "10.231.1.0/24", "10.231.2.0/24"


def ours(ike_rekey: str, child_life: str, child_rekey: str, extra: str = "") -> str:
    return f"""
[connections.gw]
local_addrs = ["{WEST}"]
remote_addrs = ["{EAST}"]
proposals = ["aes128-sha256-modp2048"]
rekey_time = "{ike_rekey}"
over_time = "5s"
rand_time = "0s"
{extra}
local = {{ auth = "psk" }}
remote = {{ auth = "psk" }}
[connections.gw.children.net]
local_ts = ["{LAN_W}"]
remote_ts = ["{LAN_E}"]
esp_proposals = ["aes128gcm16-modp2048"]
life_time = "{child_life}"
rekey_time = "{child_rekey}"
rand_time = "0s"
[secrets.ike-gw]
id = ["{WEST}", "{EAST}"]
secret = "{PSK}"
"""


def theirs(**kw: Any) -> str:
    conn = swanctl_conn(
        "gw",
        local_addrs=EAST,
        remote_addrs=WEST,
        local_ts=LAN_E,
        remote_ts=LAN_W,
        esp_proposals="aes128gcm16-modp2048",
        **kw,
    )
    return swanctl_conf(conn, secrets=[psk_secret(PSK, WEST, EAST)])


def one_pair_each(daemon: DaemonProcess, charon: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    sas = daemon.sas()
    assert len(sas) == 1 and len(sas[0]["children"]) == 1, sas
    theirs_ = [s for s in charon.list_sas_raw() if s.get("state") == "ESTABLISHED"]
    assert len(theirs_) == 1 and len(children(theirs_[0])) == 1, theirs_
    ch, tch = sas[0]["children"][0], children(theirs_[0])[0]
    assert (ch["spi_in"], ch["spi_out"]) == (tch["spi-out"], tch["spi-in"])
    assert (sas[0]["icookie"], sas[0]["rcookie"]) == (
        theirs_[0]["initiator-spi"],
        theirs_[0]["responder-spi"],
    )
    return sas[0], theirs_[0]


def test_rekeys_and_renewal_against_strongswan(topology: Any, charon_factory: Any, tmp_path: Path) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    charon = charon_factory(east, "east", theirs(rekey_time="1h", life_time="2h", ike_rekey_time="4h"))
    d = DaemonProcess(tmp_path, "west", ours("24s", "15s", "10s"), netns=west.name)
    topo.on_close(d.stop)
    d.cmd("up", conn="gw")
    wait_for(lambda: d.sas() and d.sas()[0]["children"], what="the tunnel")
    first_child = d.sas()[0]["children"][0]["spi_in"]
    first_ike = d.sas()[0]["icookie"]
    time.sleep(31)  # child rekeyed at ~10 s, ~20 s, ~30 s; ISAKMP SA renewed at ~24 s
    log = d.log()
    assert log.count("child_rekey") >= 2, log[-3000:]
    assert "ike_renewed" in log, log[-3000:]
    sa, _ = wait_for(lambda: _settled(d, charon), timeout=10, what="one pair on each side")
    assert sa["children"][0]["spi_in"] != first_child and sa["icookie"] != first_ike


def _settled(d: DaemonProcess, charon: Any) -> Any:
    try:
        return one_pair_each(d, charon)
    except AssertionError:
        return None


def test_strongswan_rekeys_and_renews_us(topology: Any, charon_factory: Any, tmp_path: Path) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    charon = charon_factory(
        east,
        "east",
        theirs(
            rekey_time="10s",
            life_time="15s",
            ike_rekey_time="24s",
            ike_over_time="5s",
            conn_extra={"rand_time": "0s"},
            child_extra={"rand_time": "0s"},
        ),
    )
    d = DaemonProcess(tmp_path, "west", ours("1h", "2h", "1h"), netns=west.name)
    topo.on_close(d.stop)
    charon.initiate("net", ike="gw")
    wait_for(lambda: d.sas() and d.sas()[0]["children"], what="the tunnel")
    first_child = d.sas()[0]["children"][0]["spi_in"]
    first_ike = d.sas()[0]["icookie"]
    time.sleep(31)
    sa, _ = wait_for(lambda: _settled(d, charon), timeout=10, what="one pair on each side")
    assert sa["children"][0]["spi_in"] != first_child, "strongSwan rekeyed the IPsec SA"
    assert sa["icookie"] != first_ike, "strongSwan renewed the ISAKMP SA"


def test_dpd_detects_blocked_strongswan_and_restarts(
    topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    charon = charon_factory(east, "east", theirs(dpd_delay="30s"))
    d = DaemonProcess(
        tmp_path,
        "west",
        ours("1h", "2h", "1h", extra='dpd_delay = "2s"\ndpd_timeout = "6s"').replace(
            'rand_time = "0s"\n[secrets', 'rand_time = "0s"\ndpd_action = "restart"\n[secrets'
        ),
        netns=west.name,
    )
    topo.on_close(d.stop)
    d.cmd("up", conn="gw")
    wait_for(lambda: d.sas() and d.sas()[0]["children"], what="the tunnel")
    assert d.sas()[0]["dpd"], "strongSwan announces DPD"
    time.sleep(3)
    assert "dpd_ack" in d.log()  # an idle tunnel is probed and strongSwan answers
    east.run("nft", "add", "table", "ip", "swdpd")
    east.run("nft", "add", "chain", "ip", "swdpd", "input", "{ type filter hook input priority 0; }")
    east.run("nft", "add", "rule", "ip", "swdpd", "input", "udp", "dport", "{ 500, 4500 }", "drop")
    blocked = time.monotonic()
    wait_for(lambda: "dpd_timeout" in d.log(), timeout=15, what="DPD to declare strongSwan dead")
    detected = time.monotonic() - blocked
    assert detected <= 2 + 6 + 2, f"detected after {detected:.1f} s"
    east.run("nft", "delete", "table", "ip", "swdpd")
    unblocked = time.monotonic()
    wait_for(lambda: _settled(d, charon), timeout=20, what="the tunnel to come back (dpd_action restart)")
    print(
        f"dead peer detected after {detected:.1f} s; tunnel back {time.monotonic() - unblocked:.1f} s after unblock"
    )


def test_sigkill_and_restart_initial_contact(topology: Any, charon_factory: Any, tmp_path: Path) -> None:
    """Our daemon dies without a word (SIGKILL) and starts again: its INITIAL-CONTACT makes
    strongSwan drop the stale SAs; no duplicates remain."""
    topo = topology()
    west, east = site_to_site(topo)
    charon = charon_factory(east, "east", theirs())
    conf = ours("1h", "2h", "1h")
    d = DaemonProcess(tmp_path, "west", conf, netns=west.name)
    d.cmd("up", conn="gw")
    wait_for(lambda: _settled(d, charon), what="the tunnel")
    old = charon.list_sas_raw()[0]["initiator-spi"]
    d.proc.kill()
    d.proc.wait(5)
    d.stop()
    d2 = DaemonProcess(tmp_path, "west2", conf, netns=west.name)
    topo.on_close(d2.stop)
    d2.cmd("up", conn="gw")
    _sa, theirs_ = wait_for(lambda: _settled(d2, charon), timeout=15, what="a fresh tunnel and no stale SA")
    assert theirs_["initiator-spi"] != old
    assert "MM5" in d2.log() and "INITIAL_CONTACT" in d2.log()


def test_close_action_start_when_strongswan_deletes(
    topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    """strongSwan terminates the CHILD_SA, then the whole IKE SA: with close_action = "start" we
    negotiate again at once, each time ending with one IKE SA and one IPsec pair on each side."""
    topo = topology()
    west, east = site_to_site(topo)
    charon = charon_factory(east, "east", theirs())
    conf = ours("1h", "2h", "1h").replace(
        'rand_time = "0s"\n[secrets', 'rand_time = "0s"\nclose_action = "start"\n[secrets'
    )
    d = DaemonProcess(tmp_path, "west", conf, netns=west.name)
    topo.on_close(d.stop)
    d.cmd("up", conn="gw")
    first, _ = wait_for(lambda: _settled(d, charon), what="the tunnel")
    charon.terminate(child="net")
    sa, _ = wait_for(
        lambda: (
            (s := _settled(d, charon))
            and s[0]["children"][0]["spi_in"] != first["children"][0]["spi_in"]
            and s
        ),
        timeout=15,
        what="the IPsec SA renegotiated after strongSwan deleted it",
    )
    assert sa["icookie"] == first["icookie"]  # under the same ISAKMP SA
    assert "deleted by peer" in d.log() and "child_restart" in d.log()
    charon.terminate(ike="gw")
    again, _ = wait_for(
        lambda: (s := _settled(d, charon)) and s[0]["icookie"] != first["icookie"] and s,
        timeout=15,
        what="a new ISAKMP SA and IPsec SA after strongSwan deleted the IKE SA",
    )
    assert again["children"][0]["spi_in"] != sa["children"][0]["spi_in"]


def _block_ike(ns: Any, table: str) -> None:
    """Drop IKE (UDP 500, and UDP 4500 with the non-ESP marker) both ways; ESP-in-UDP still flows."""
    ns.run("nft", "add", "table", "inet", table)
    for chain, hook in (("out", "output"), ("in", "input")):
        ns.run("nft", "add", "chain", "inet", table, chain, f"{{ type filter hook {hook} priority 0; }}")
        ns.run("nft", "add", "rule", "inet", table, chain, "udp", "dport", "500", "drop")
        ns.run("nft", "add", "rule", "inet", table, chain, "udp", "dport", "4500", "@th,64,32", "0", "drop")


def _tunnel(topology: Any, charon_factory: Any, tmp_path: Path) -> tuple[Any, Any, DaemonProcess]:
    """West (snakeswan, long lifetimes) brings the tunnel to charon (east, defaults) up."""
    topo = topology()
    west, east = site_to_site(topo)
    charon = charon_factory(east, "east", theirs())
    d = DaemonProcess(tmp_path, "west", ours("1h", "2h", "1h"), netns=west.name)
    topo.on_close(d.stop)
    d.cmd("up", conn="gw")
    return west, charon, d


def _rekey_both(west: Any, d: DaemonProcess, charon: Any) -> None:
    """Both ends rekey child net at once, IKE blocked meanwhile: both Quick Mode 1s are lost and
    the retransmissions (after 4 s) cross."""
    _block_ike(west, "ikeblock")
    try:
        assert d.cmd("rekey", conn="gw", child="net") == 1
        charon.swanctl("--rekey", "--child", "net")
        time.sleep(1.0)
    finally:
        west.run("nft", "delete", "table", "inet", "ikeblock")


def test_rekey_collision_with_strongswan(topology: Any, charon_factory: Any, tmp_path: Path) -> None:
    """Both ends rekey the same IPsec SA at once: IKE is blocked while both start their Quick Mode,
    so that the retransmissions cross. We spot the collision, delete the redundant pair and end with
    one IKE SA and one IPsec pair on each side; traffic keeps flowing."""
    west, charon, d = _tunnel(topology, charon_factory, tmp_path)
    first, _ = wait_for(lambda: _settled(d, charon), what="the tunnel")
    _rekey_both(west, d, charon)
    wait_for(lambda: "child_rekey_collision" in d.log(), timeout=15, what="the collision to be seen")
    sa, _ = wait_for(lambda: _settled(d, charon), timeout=30, what="one IPsec pair left on each side")
    assert sa["children"][0]["spi_in"] != first["children"][0]["spi_in"]
    assert ping(west, "10.231.1.1", "10.231.2.1", count=3) == 3


def test_rekey_collision_with_strongswan_loses_no_traffic(
    topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    """The same collision with pings flowing all along. strongSwan's IKEv1 deletes neither new pair
    and sends on the one it installed last, which may be the one our lowest-SPI rule calls
    redundant: we then see it send there, delete the other one instead, and no ping is lost."""
    west, charon, d = _tunnel(topology, charon_factory, tmp_path)
    wait_for(lambda: _settled(d, charon), what="the tunnel")
    replies: list[int] = []
    pinger = threading.Thread(
        target=lambda: replies.append(ping(west, "10.231.1.1", "10.231.2.1", 250, timeout=60, interval=0.1))
    )
    pinger.start()
    try:
        time.sleep(1.0)
        _rekey_both(west, d, charon)
        wait_for(lambda: "child_rekey_collision_end" in d.log(), timeout=20, what="the collision's end")
        wait_for(lambda: _settled(d, charon), timeout=15, what="one IPsec pair left on each side")
    finally:
        pinger.join()
    end = [line for line in d.log().splitlines() if "child_rekey_collision_end" in line]
    assert replies == [250], f"{250 - replies[0]} of 250 pings lost; {end}"
