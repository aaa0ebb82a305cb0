"""snakeswan against the real strongSwan 5.9 (kernel-libipsec) in network namespaces, both roles.

Cells (issue 3): (a) MM PSK aes128-sha256-modp2048 + ESP aes128-sha256 without PFS; (b) MM PSK
aes256-sha1-modp1024 + ESP 3des-md5 with PFS modp1024; (c) MM PSK aes128-sha256-ecp256 + ESP
aes128gcm16 with PFS ecp256; (d) AM PSK with FQDN identities. strongSwan's userspace data plane
fakes a NAT, so every cell also exercises NAT-T (float to 4500, UDP-encapsulated ESP modes).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.daemons import DaemonProcess, wait_for
from tests.interop.strongswan import AGGRESSIVE_PSK_OPT_IN, children, psk_secret, swanctl_conf, swanctl_conn
from tests.netns import Topology, site_to_site

pytestmark = [pytest.mark.interop, pytest.mark.netns]

PSK = "interop-pre-shared-key"
WEST, EAST = "10.231.0.1", "10.231.0.2"
LAN_W, LAN_E = "10.231.1.0/24", "10.231.2.0/24"


@dataclass(frozen=True)
class Cell:
    name: str
    ike: str
    esp: str
    aggressive: bool = False
    # what strongSwan's list-sas must show
    encr: str = "AES_CBC"
    child_encr: str = "AES_CBC"
    dh: str = "MODP_2048"
    child_dh: str | None = None


CELLS = [
    Cell("a", "aes128-sha256-modp2048", "aes128-sha256"),
    Cell(
        "b",
        "aes256-sha1-modp1024",
        "3des-md5-modp1024",
        dh="MODP_1024",
        child_encr="3DES_CBC",
        child_dh="MODP_1024",
    ),
    Cell(
        "c",
        "aes128-sha256-ecp256",
        "aes128gcm16-ecp256",
        dh="ECP_256",
        child_encr="AES_GCM_16",
        child_dh="ECP_256",
    ),
    Cell(
        "d",
        "aes128-sha256-modp2048",
        "aes128gcm16-modp2048",
        aggressive=True,
        child_encr="AES_GCM_16",
        child_dh="MODP_2048",
    ),
]


def ids(cell: Cell) -> tuple[str, str]:
    return ("@west.sw-lab", "@east.sw-lab") if cell.aggressive else (WEST, EAST)


def snakeswan_conf(cell: Cell) -> str:
    lid, rid = ids(cell)
    return f"""
[connections.gw]
local_addrs = ["{WEST}"]
remote_addrs = ["{EAST}"]
aggressive = {str(cell.aggressive).lower()}
proposals = ["{cell.ike}"]
local = {{ auth = "psk", id = "{lid}" }}
remote = {{ auth = "psk", id = "{rid}" }}
[connections.gw.children.net]
local_ts = ["{LAN_W}"]
remote_ts = ["{LAN_E}"]
esp_proposals = ["{cell.esp}"]
[secrets.ike-gw]
id = ["{lid}", "{rid}"]
secret = "{PSK}"
"""


def strongswan_conf(cell: Cell) -> str:
    lid, rid = ids(cell)
    strip = (lambda s: s.lstrip("@")) if cell.aggressive else (lambda s: s)
    conn = swanctl_conn(
        "gw",
        local_addrs=EAST,
        remote_addrs=WEST,
        aggressive=cell.aggressive,
        proposals=cell.ike,
        local_id=strip(rid) if cell.aggressive else None,
        remote_id=strip(lid) if cell.aggressive else None,
        local_ts=LAN_E,
        remote_ts=LAN_W,
        esp_proposals=cell.esp,
    )
    return swanctl_conf(conn, secrets=[psk_secret(PSK, strip(lid), strip(rid))])


def bring_up(
    cell: Cell,
    topology: Callable[..., Topology],
    charon_factory: Callable[..., Any],
    tmp_path: Path,
    *,
    keylog: bool = False,
) -> tuple[Any, DaemonProcess]:
    topo = topology()
    west, east = site_to_site(topo)
    settings = {AGGRESSIVE_PSK_OPT_IN: True} if cell.aggressive else None
    charon = charon_factory(east, "east", strongswan_conf(cell), settings=settings)
    daemon = DaemonProcess(tmp_path, "west", snakeswan_conf(cell), netns=west.name, keylog=keylog)
    topo.on_close(daemon.stop)
    return charon, daemon


def check_both_sides(cell: Cell, charon: Any, ours: dict[str, Any], *, we_initiated: bool) -> None:
    theirs = charon.wait_sas(lambda sas: [s for s in sas if s.get("state") == "ESTABLISHED" and children(s)])
    sa = theirs[0]
    assert (sa["initiator-spi"], sa["responder-spi"]) == (ours["icookie"], ours["rcookie"])
    assert sa["encr-alg"] == cell.encr and sa["dh-group"] == cell.dh
    assert (sa.get("initiator") == "yes") is (not we_initiated)
    assert ours["role"] == ("initiator" if we_initiated else "responder")
    assert ours["mode"] == ("aggressive" if cell.aggressive else "main")
    assert ours["nat_remote"] and ours["encap"]  # kernel-libipsec fakes a NAT
    child = children(sa)[0]
    ch = ours["children"][0]
    assert child["state"] == "INSTALLED" and child["encap"] == "yes" and child["mode"] == "TUNNEL"
    assert (child["spi-in"], child["spi-out"]) == (ch["spi_out"], ch["spi_in"])
    assert child["encr-alg"] == cell.child_encr and child.get("dh-group") == cell.child_dh
    assert ch["encap"] and ch["mode"] == "tunnel"
    assert (ch["local_ts"], ch["remote_ts"]) == (LAN_W, LAN_E)


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: c.name)
def test_snakeswan_initiates(cell: Cell, topology: Any, charon_factory: Any, tmp_path: Path) -> None:
    charon, daemon = bring_up(cell, topology, charon_factory, tmp_path)
    daemon.cmd("up", conn="gw")
    ours = wait_for(lambda: [s for s in daemon.sas() if s["children"]], what="our IPsec SA")[0]
    check_both_sides(cell, charon, ours, we_initiated=True)
    # strongSwan deletes: our SAs go
    charon.terminate(ike="gw")
    wait_for(lambda: daemon.sas() == [], what="snakeswan to drop the SAs strongSwan deleted")
    assert "deleted by peer" in daemon.log()


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: c.name)
def test_snakeswan_responds(cell: Cell, topology: Any, charon_factory: Any, tmp_path: Path) -> None:
    charon, daemon = bring_up(cell, topology, charon_factory, tmp_path)
    charon.initiate("net", ike="gw")
    ours = wait_for(lambda: [s for s in daemon.sas() if s["children"]], what="our IPsec SA")[0]
    check_both_sides(cell, charon, ours, we_initiated=False)
    # we delete the IPsec SA, then the IKE SA: strongSwan follows each time
    daemon.cmd("down", conn="gw", child="net")
    charon.wait_sas(lambda sas: sas and not children(sas[0]))
    daemon.cmd("down", conn="gw")
    charon.wait_sas(lambda sas: not sas)


def test_tshark_decrypts_capture_with_daemon_keylog(
    topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    """Cell (a) captured on the wire; tshark decrypts it with the lines ``--keylog`` wrote."""
    assert shutil.which("tshark"), "tshark is installed by scripts/setup.sh"
    cell = CELLS[0]
    charon, daemon = bring_up(cell, topology, charon_factory, tmp_path, keylog=True)
    pcap = tmp_path / "a.pcapng"
    ns_name = daemon_netns(daemon)
    cap = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            ns_name,
            "tshark",
            "-q",
            "-i",
            "w0",
            "-f",
            "udp port 500 or udp port 4500",
            "-w",
            str(pcap),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: pcap.exists() and pcap.stat().st_size > 0, timeout=15, what="tshark to start capturing"
        )
        time.sleep(0.5)
        daemon.cmd("up", conn="gw")
        wait_for(lambda: [s for s in daemon.sas() if s["children"]], what="our IPsec SA")
        daemon.cmd("down", conn="gw")
        charon.wait_sas(lambda sas: not sas)
        time.sleep(0.5)
    finally:
        cap.terminate()
        cap.wait(10)
    assert daemon.keylog_path is not None
    lines = daemon.keylog_path.read_text().splitlines()
    ike = [x for x in lines if not x.startswith('"')]
    assert len(ike) == 1 and len(lines) == 3
    out = subprocess.run(
        [
            "tshark",
            "-r",
            str(pcap),
            "-o",
            f"uat:ikev1_decryption_table:{ike[0]}",
            "-V",
            "-Y",
            "isakmp.exchangetype == 32",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    frames = out.count("Frame Number:")
    assert frames >= 3, out[:2000]
    assert out.count("Payload: Hash (8)") >= 3
    assert out.count("Payload: Security Association (1)") >= 2
    assert out.count("Payload: Nonce (10)") >= 2
    assert out.count("Payload: Identification (5)") >= 4
    assert "Malformed" not in out and "Expert Info (Error" not in out
    # without the key nothing inside Quick Mode is visible
    blind = subprocess.run(
        ["tshark", "-r", str(pcap), "-V", "-Y", "isakmp.exchangetype == 32"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "Payload: Identification (5)" not in blind


def daemon_netns(daemon: DaemonProcess) -> str:
    assert daemon.netns is not None, "the daemon does not run in a namespace"
    return daemon.netns
