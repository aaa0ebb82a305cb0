"""IKE fragmentation against strongSwan 5.9.8 and Libreswan 4.10, both roles, over a path with a
small MTU that drops IP fragments (issue 10).

The veth between west and east has an MTU of 700 and each namespace drops (and counts, nftables)
every IP fragment before reassembly, as a path that loses fragments would: a Main Mode with RSA
certificates (MM5/MM6 of about 1,300 bytes) only completes if IKE cuts its messages itself. We
run with ``[daemon] fragment_size = 576`` and strongSwan with ``charon.fragment_size = 576``;
Libreswan keeps its defaults but one IKE proposal (``fragmentation=yes``: it sends a message whole first and in 576-byte
fragments when it retransmits it). Each cell checks both sides established, that the messages were
cut (our ``fragmented`` records, the peer's log), that we joined the peer's fragments
(``reassembled``) and that no IP fragment was dropped (nothing too large was sent). A control with
fragmentation off on both ends shows the path really loses the certificate messages. One cell is
captured and decoded by tshark with our key log.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.daemons import DaemonProcess, wait_for
from tests.interop import test_libreswan as lsw
from tests.interop import test_strongswan_certs as ssc
from tests.interop.libreswan import Pluto, conn_section
from tests.interop.strongswan import Pki, children, swanctl_conf, swanctl_conn
from tests.netns import Netns, Topology, site_to_site

pytestmark = [pytest.mark.interop, pytest.mark.netns]

MTU = 700
FRAGMENT_SIZE = 576
WEST, EAST = ssc.WEST, ssc.EAST
LAN_W, LAN_E = ssc.LAN_W, ssc.LAN_E


def small_path(ns: Netns, ifname: str) -> None:
    """MTU 700 on the veth end, and every incoming IP fragment dropped (and counted)."""
    ns.ip("link", "set", ifname, "mtu", str(MTU))
    for rule in (
        "add table ip sswfrag",
        "add chain ip sswfrag pre { type filter hook prerouting priority -500 ; }",
        "add rule ip sswfrag pre ip frag-off & 0x3fff != 0 counter drop",
    ):
        ns.run("nft", *rule.split())


def dropped_fragments(ns: Netns) -> int:
    out = ns.run("nft", "list", "table", "ip", "sswfrag").stdout
    m = re.search(r"counter packets (\d+)", out)
    assert m, out
    return int(m.group(1))


def topology_with_small_mtu(topology: Callable[..., Topology]) -> tuple[Topology, Netns, Netns]:
    topo = topology()
    west, east = site_to_site(topo)
    small_path(west, "w0")
    small_path(east, "e0")
    return topo, west, east


def our_conf(body: str, frag: str = "yes") -> str:
    body = body.replace("[connections.gw]\n", f'[connections.gw]\nfragmentation = "{frag}"\n', 1)
    return f"[daemon]\nfragment_size = {FRAGMENT_SIZE}\n" + body


# ---- strongSwan 5.9.8 -----------------------------------------------------------------------------


def bring_up_strongswan(
    topology: Callable[..., Topology],
    charon_factory: Callable[..., Any],
    tmp_path: Path,
    frag: str = "yes",
    *,
    aggressive: bool = False,
) -> tuple[Any, DaemonProcess, Netns, Netns, dict[str, Any]]:
    cell = ssc.Cell("rsa-am", "rsa", aggressive=True) if aggressive else ssc.Cell("rsa-mm", "rsa")
    pki = Pki(tmp_path / "pki", key_type="rsa")
    ca = pki.ca()
    creds = {h: pki.host(f"{h}.sw-lab") for h in ("west", "east")}
    topo, west, east = topology_with_small_mtu(topology)
    conn = swanctl_conn(
        "gw",
        local_addrs=EAST,
        remote_addrs=WEST,
        aggressive=aggressive,
        proposals=cell.ike,
        auth="pubkey",
        local_id=creds["east"].dn,
        remote_id=creds["west"].dn,
        local_ts=LAN_E,
        remote_ts=LAN_W,
        esp_proposals="aes128gcm16",
        local_extra={"certs": "east.sw-lab.crt"},
        remote_extra={"cacerts": "ca.crt"},
        conn_extra={"fragmentation": frag},
    )
    charon = charon_factory(
        east, "east", swanctl_conf(conn), start=False, settings={"fragment_size": FRAGMENT_SIZE}
    )
    charon.add_cert(ca.cert, "x509ca")
    charon.add_cert(creds["east"].cert, "x509")
    charon.add_cert(creds["east"].key, "rsa")
    charon.start()
    charon.load_all()
    conf = our_conf(ssc.snakeswan_conf(cell, ca, creds["west"], creds["east"]), frag)
    daemon = DaemonProcess(tmp_path, "west", conf, netns=west.name, keylog=True)
    topo.on_close(daemon.stop)
    return charon, daemon, west, east, creds


def check_strongswan_cell(charon: Any, daemon: DaemonProcess, west: Netns, east: Netns) -> None:
    log = daemon.log()
    assert re.search(r"\bfragmented\b.*count=\d", log), "we did not cut our certificate message"
    assert re.search(r"\breassembled\b", log), "we did not join strongSwan's fragments"
    clog = charon.log()
    assert re.search(r"received fragment #\d", clog), "strongSwan saw no fragment"
    assert re.search(r"splitting IKE message \(\d+ bytes\) into \d+ fragments", clog)
    assert re.search(r"sending packet: .*\(\d+ bytes\)", clog)
    assert dropped_fragments(west) == 0 and dropped_fragments(east) == 0  # nothing too large was sent
    sas = charon.wait_sas(lambda s: [x for x in s if x.get("state") == "ESTABLISHED" and children(x)])
    ours = next(s for s in daemon.sas() if s["children"])
    assert (sas[0]["initiator-spi"], sas[0]["responder-spi"]) == (ours["icookie"], ours["rcookie"])


@pytest.mark.parametrize("we_initiate", [True, False], ids=["snakeswan-initiates", "strongswan-initiates"])
def test_certificates_over_a_small_mtu_with_strongswan(
    we_initiate: bool, topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    charon, daemon, west, east, _ = bring_up_strongswan(topology, charon_factory, tmp_path)
    if we_initiate:
        daemon.cmd("up", conn="gw")
    else:
        charon.initiate("net", ike="gw")
    wait_for(lambda: [s for s in daemon.sas() if s["children"]], timeout=30, what="our IPsec SA")
    check_strongswan_cell(charon, daemon, west, east)


@pytest.mark.parametrize("we_initiate", [True, False], ids=["snakeswan-initiates", "strongswan-initiates"])
def test_aggressive_mode_certificates_over_a_small_mtu_with_strongswan(
    we_initiate: bool, topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    """AM1 (KE, CERTREQ, vendor IDs) is larger than the path carries before either side has seen
    the other's vendor ID: both ends say ``fragmentation = force`` (AM1 cut too)."""
    charon, daemon, west, east, _ = bring_up_strongswan(
        topology, charon_factory, tmp_path, frag="force", aggressive=True
    )
    if we_initiate:
        daemon.cmd("up", conn="gw")
    else:
        charon.initiate("net", ike="gw")
    ours = wait_for(lambda: [s for s in daemon.sas() if s["children"]], timeout=30, what="our IPsec SA")
    assert ours[0]["mode"] == "aggressive"
    check_strongswan_cell(charon, daemon, west, east)


def test_without_fragmentation_the_path_loses_the_certificate_messages(
    topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    """The control: fragmentation off on both ends, the same path, no SA; IP fragments dropped."""
    _charon, daemon, _west, east, _ = bring_up_strongswan(topology, charon_factory, tmp_path, frag="no")
    daemon.cmd("up", conn="gw")
    wait_for(lambda: dropped_fragments(east) > 0, timeout=15, what="MM5's IP fragments to be dropped")
    time.sleep(2)
    assert not [s for s in daemon.sas() if s["state"] == "ESTABLISHED"]
    assert "fragmented" not in daemon.log()


@pytest.mark.tshark
def test_tshark_decodes_the_fragmented_exchange_with_our_keylog(
    topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    assert shutil.which("tshark"), "tshark is installed by scripts/setup.sh"
    _charon, daemon, west, _east, _ = bring_up_strongswan(topology, charon_factory, tmp_path)
    pcap = tmp_path / "frag.pcapng"
    cap = west.popen(
        "tshark", "-q", "-i", "w0", "-f", "udp port 500 or udp port 4500", "-w", str(pcap),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: pcap.exists() and pcap.stat().st_size > 0, timeout=15, what="tshark to capture")
        time.sleep(0.5)
        daemon.cmd("up", conn="gw")
        wait_for(lambda: [s for s in daemon.sas() if s["children"]], timeout=30, what="our IPsec SA")
        time.sleep(0.5)
    finally:
        cap.terminate()
        cap.wait(10)
    assert daemon.keylog_path is not None
    ike = [x for x in daemon.keylog_path.read_text().splitlines() if not x.startswith('"')]
    out = subprocess.run(
        ["tshark", "-r", str(pcap), "-o", f"uat:ikev1_decryption_table:{ike[0]}", "-V"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "Malformed" not in out and "Expert Info (Error" not in out
    assert out.count("Payload: Cisco-Fragmentation (132)") >= 6  # MM5 and MM6 in 3 fragments each
    assert out.count("[Reassembled ISAKMP length:") == 2  # tshark joined both
    # ... and decrypted them with our key log: both certificates and signatures
    assert out.count("Payload: Certificate (6)") == 2 and out.count("Payload: Signature (9)") == 2
    assert out.count("Exchange type: Quick Mode (32)") >= 3


# ---- Libreswan 4.10 -------------------------------------------------------------------------------

pluto_factory = lsw.pluto_factory
xfrm_shim = lsw.xfrm_shim


@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
@pytest.mark.parametrize("we_initiate", [True, False], ids=["snakeswan-initiates", "libreswan-initiates"])
def test_certificates_over_a_small_mtu_with_libreswan(
    we_initiate: bool, aggressive: bool, topology: Any, pluto_factory: Any, tmp_path: Path
) -> None:
    """Main Mode with pluto's defaults (it cuts a message when it sends it again); Aggressive Mode
    with pluto's ``fragmentation=force`` (AM2 cut at once). Our side says ``yes``: pluto cannot join
    a fragmented first message (it keeps fragments in a state, and AM1 has none yet; tried: it
    never answers), and AM1 fits this path whole."""
    pki, west_id, east_id, p12 = lsw.cert_setup(tmp_path)
    topo, west, east = topology_with_small_mtu(topology)
    conns = conn_section(
        "gw",
        ikev2="no",
        authby="rsasig",
        left=EAST,
        leftsubnet=LAN_E,
        leftcert="east",
        leftid=f'"{east_id.dn}"',
        right=WEST,
        rightsubnet=LAN_W,
        rightid=f'"{west_id.dn}"',
        leftupdown="/bin/true",
        auto="add",
        # pluto never cuts its first message, and its default proposal list makes MM1 larger than
        # this path carries: one proposal keeps MM1 small (everything after it is fragmented)
        ike="aes256-sha2_256;modp2048",
        **({"aggressive": "yes", "fragmentation": "force"} if aggressive else {}),
    )

    def prepare(p: Pluto) -> None:
        p.add_ca(pki.ca_path)
        p.add_identity(p12, lsw.P12_PASSWORD)

    pluto = pluto_factory(east, "east", conns, "", prepare=prepare)
    conf = our_conf(
        f"""
[connections.gw]
local_addrs = ["{WEST}"]
remote_addrs = ["{EAST}"]
aggressive = {str(aggressive).lower()}
proposals = ["aes256-sha256-modp2048"]
send_cert = "always"
local = {{ auth = "pubkey", certs = ["{west_id.cert}"], id = "{west_id.dn}" }}
remote = {{ auth = "pubkey", cacerts = ["{pki.ca_path}"], id = "{east_id.dn}" }}
[connections.gw.children.net]
local_ts = ["{LAN_W}"]
remote_ts = ["{LAN_E}"]
esp_proposals = ["aes256-sha256-modp2048", "aes128-sha1-modp2048"]
[secrets.private-west]
file = "{west_id.key}"
""",
        "yes",
    )
    daemon = DaemonProcess(tmp_path, "west", conf, netns=west.name)
    topo.on_close(daemon.stop)
    if we_initiate:
        daemon.cmd("up", conn="gw")
    else:
        pluto.initiate("gw", timeout=60)
    ours = wait_for(lambda: [s for s in daemon.sas() if s["children"]], timeout=60, what="our IPsec SA")[0]
    log = daemon.log()
    cell = lsw.Cell("rsa", ("aes256-sha256-modp2048",), (), aggressive=aggressive)
    lsw.check_both_sides(cell, pluto, ours, we_initiated=we_initiate, daemon_log=log)
    assert re.search(r"\bfragmented\b.*count=\d", log) and re.search(r"\breassembled\b", log)
    assert dropped_fragments(east) == 0  # our messages all fit
    if not aggressive:
        lost = dropped_fragments(west)
        if we_initiate:
            # pluto marks a state "answer in fragments" only after the fragmented message has been
            # processed: when MM5's processing ends at once its MM6 goes whole first (lost at west, so
            # we send MM5 again and it answers cut); when it waits on a helper thread MM6 goes cut
            assert (lost > 0) == bool(re.search(r"\bretransmit sa=\d+ exchange=main_mode", log)), lost
        else:  # pluto's MM5 went whole first (nothing told it to cut yet) and was lost at west
            assert lost > 0
    assert "IKE SA established {auth=RSA_SIG" in pluto.log()
