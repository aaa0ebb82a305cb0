"""snakeswan against the real Libreswan 4.10 (pluto) with its default settings, both roles.

Cells (issue 10): (mm) Main Mode PSK, AES-SHA2-MODP2048 with PFS; (3des) Main Mode PSK
3DES-SHA1-MODP1536; (am) Aggressive Mode PSK with FQDN identities. pluto keeps its defaults
(``ikelifetime=8h`` and ``salifetime=8h`` against our shorter ones, ``ikepad=yes``, ``pfs=yes``, its
default proposal lists) except where a cell names algorithms Libreswan does not offer by default.
What each cell checks: both sides established, the same ISAKMP SA (cookies) and ESP SPIs
crosswise, and a Delete in each direction (pluto's ``--terminate`` clears our SAs; our ``down``
clears pluto's). See tests/interop/libreswan.py for how pluto runs without ESP in this kernel.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.conftest import _REPORTS
from tests.daemons import DaemonProcess, wait_for
from tests.interop.libreswan import Pluto, PlutoState, build_shim, conn_section, require_libreswan
from tests.netns import Netns, Topology, site_to_site
from tests.pki import Issued, TestPki

pytestmark = [pytest.mark.interop, pytest.mark.netns]

PSK = "interop-pre-shared-key"
WEST, EAST = "10.231.0.1", "10.231.0.2"
LAN_W, LAN_E = "10.231.1.0/24", "10.231.2.0/24"


@dataclass(frozen=True)
class Cell:
    name: str
    ike: tuple[str, ...]  # our proposals, in order
    esp: tuple[str, ...]  # ours, in order
    aggressive: bool = False
    pluto: dict[str, str] = field(default_factory=dict)  # pluto options beyond its defaults
    pfs: bool = True


# Libreswan 4.10's IKEv1 defaults: IKE AES/3DES x SHA2_256/SHA2_512/SHA1 x MODP2048 (initiator),
# ESP aes128-sha1 and 3des-sha1 with PFS in the ISAKMP SA's group (as initiator; as responder it
# takes more, e.g. aes256-sha256). Our lists hold one proposal pluto initiates with.
CELLS = [
    Cell("mm", ("aes256-sha256-modp2048",), ("aes256-sha256-modp2048", "aes128-sha1-modp2048")),
    Cell(
        "3des",
        ("3des-sha1-modp1536",),
        ("3des-sha1-modp1536",),
        pluto={"ike": "3des-sha1;modp1536", "esp": "3des-sha1"},
    ),
    # pluto's Aggressive Mode keeps only the MODP1536 transforms of its defaults ("in the hopes of
    # selecting DH 2 or DH 5"); we initiate with MODP2048 (Aggressive Mode offers one group)
    Cell(
        "am",
        ("aes256-sha256-modp2048", "aes256-sha256-modp1536"),
        ("aes256-sha256-modp2048", "aes128-sha1-modp2048", "aes128-sha1-modp1536"),
        aggressive=True,
    ),
]


def ids(cell: Cell) -> tuple[str, str]:
    """(west's ID, east's ID) as snakeswan writes them."""
    return ("@west.sw-lab", "@east.sw-lab") if cell.aggressive else (WEST, EAST)


def snakeswan_conf(cell: Cell, life_time: str | None = None) -> str:
    lid, rid = ids(cell)
    lifetimes = f'rekey_time = "{life_time}"\nlife_time = "{life_time}"' if life_time else ""
    return f"""
[connections.gw]
local_addrs = ["{WEST}"]
remote_addrs = ["{EAST}"]
aggressive = {str(cell.aggressive).lower()}
proposals = [{", ".join(f'"{p}"' for p in cell.ike)}]
local = {{ auth = "psk", id = "{lid}" }}
remote = {{ auth = "psk", id = "{rid}" }}
[connections.gw.children.net]
local_ts = ["{LAN_W}"]
remote_ts = ["{LAN_E}"]
esp_proposals = [{", ".join(f'"{e}"' for e in cell.esp)}]
{lifetimes}
[secrets.ike-gw]
id = ["{lid}", "{rid}"]
secret = "{PSK}"
"""


def pluto_conf(cell: Cell) -> tuple[str, str]:
    """(conn sections, secrets) for east: pluto's defaults plus what the cell needs."""
    lid, rid = ids(cell)
    options: dict[str, str | None] = {
        "ikev2": "no",
        "authby": "secret",
        "left": EAST,
        "leftsubnet": LAN_E,
        "right": WEST,
        "rightsubnet": LAN_W,
        "leftupdown": "/bin/true",
        "auto": "add",
    }
    if cell.aggressive:
        options |= {"aggressive": "yes", "leftid": rid, "rightid": lid}
    options |= cell.pluto
    secrets = f'{rid} {lid} : PSK "{PSK}"\n' if cell.aggressive else f'{EAST} {WEST} : PSK "{PSK}"\n'
    return conn_section("gw", **options), secrets


@pytest.fixture(scope="session")
def xfrm_shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_libreswan()
    return build_shim(tmp_path_factory.mktemp("shim"))


@pytest.fixture
def pluto_factory(
    request: pytest.FixtureRequest, tmp_path: Path, xfrm_shim: Path, topology: Callable[..., Topology]
) -> Iterator[Callable[..., Pluto]]:
    plutos: list[Pluto] = []

    def make(
        ns: Netns,
        name: str,
        conns: str,
        secrets: str,
        prepare: Callable[[Pluto], None] | None = None,
        **kw: Any,
    ) -> Pluto:
        pluto = Pluto(ns, tmp_path / name, xfrm_shim, conns=conns, secrets=secrets, **kw)
        plutos.append(pluto)
        if prepare is not None:
            prepare(pluto)
        return pluto.start()

    yield make
    failed = any(r.failed for r in request.node.stash.get(_REPORTS, {}).values())
    for p in plutos:
        if failed:
            print(f"\n===== {p.ns.name}: {p.log_path} (last 80 lines) =====")
            print("\n".join(p.log().splitlines()[-80:]))
        p.stop()


def bring_up(
    cell: Cell,
    topology: Callable[..., Topology],
    pluto_factory: Callable[..., Pluto],
    tmp_path: Path,
    life_time: str | None = None,
) -> tuple[Pluto, DaemonProcess]:
    topo = topology()
    west, east = site_to_site(topo)
    conns, secrets = pluto_conf(cell)
    pluto = pluto_factory(east, "east", conns, secrets)
    daemon = DaemonProcess(tmp_path, "west", snakeswan_conf(cell, life_time), netns=west.name)
    topo.on_close(daemon.stop)
    return pluto, daemon


def established(states: list[PlutoState]) -> bool:
    return any(s.ipsec and s.established and s.spi_in for s in states) and any(
        not s.ipsec and s.established for s in states
    )


def check_both_sides(
    cell: Cell, pluto: Pluto, ours: dict[str, Any], *, we_initiated: bool, daemon_log: str = ""
) -> None:
    states = pluto.wait_states(established)
    ipsec = [s for s in states if s.ipsec and s.established]
    assert len(ipsec) == 1, states
    ch = ours["children"][0]
    # pluto's outbound SPI is our inbound one, and the other way round
    assert (ipsec[0].spi_out, ipsec[0].spi_in) == (int(ch["spi_in"], 16), int(ch["spi_out"], 16))
    assert ours["role"] == ("initiator" if we_initiated else "responder")
    assert ours["mode"] == ("aggressive" if cell.aggressive else "main")
    ike = [s for s in states if not s.ipsec and s.established]
    assert len(ike) == 1
    if cell.aggressive:  # pluto pads its plaintext messages to 4 bytes (ikepad=yes): accepted
        assert re.search(r"received .*msg=AM[12] .*padding=\d", daemon_log), "no padded AM message seen"
    want = ("STATE_AGGR" if cell.aggressive else "STATE_MAIN") + ("_R" if we_initiated else "_I")
    assert ike[0].state.startswith(want), ike[0]
    assert (ch["local_ts"], ch["remote_ts"]) == (LAN_W, LAN_E)


def our_sa(daemon: DaemonProcess) -> dict[str, Any]:
    sas = wait_for(lambda: [s for s in daemon.sas() if s["children"]], timeout=20, what="our IPsec SA")
    sa: dict[str, Any] = sas[0]
    return sa


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: c.name)
def test_snakeswan_initiates_to_libreswan(
    cell: Cell, topology: Any, pluto_factory: Any, tmp_path: Path
) -> None:
    pluto, daemon = bring_up(cell, topology, pluto_factory, tmp_path)
    daemon.cmd("up", conn="gw")
    ours = our_sa(daemon)
    check_both_sides(cell, pluto, ours, we_initiated=True, daemon_log=daemon.log())
    # pluto deletes (IPsec SA and ISAKMP SA): ours go
    pluto.terminate("gw")
    wait_for(lambda: daemon.sas() == [], timeout=15, what="snakeswan to drop the SAs pluto deleted")
    assert "deleted by peer" in daemon.log()


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: c.name)
def test_libreswan_initiates_to_snakeswan(
    cell: Cell, topology: Any, pluto_factory: Any, tmp_path: Path
) -> None:
    pluto, daemon = bring_up(cell, topology, pluto_factory, tmp_path)
    pluto.initiate("gw")
    ours = our_sa(daemon)
    check_both_sides(cell, pluto, ours, we_initiated=False, daemon_log=daemon.log())
    # pluto offered its default 8 h ISAKMP lifetime: we ran with ours and told it
    assert "responder_lifetime_sent" in daemon.log()
    # we delete: pluto deletes those SAs (and, as it initiated the connection with --initiate, its
    # default "revival" negotiates a new pair at once: only the old serials must be gone)
    old = {s.serial for s in pluto.states()}
    daemon.cmd("down", conn="gw")
    pluto.wait_states(lambda states: not old & {s.serial for s in states})
    assert "received Delete SA payload: self-deleting ISAKMP State" in pluto.log()


def test_we_rekey_what_libreswan_keeps_for_8h(topology: Any, pluto_factory: Any, tmp_path: Path) -> None:
    """pluto offers its default 8 h IPsec lifetime and ignores our RESPONDER-LIFETIME (30 s here):
    we rekey the SA ourselves at 95 % of ours, pluto takes the new SA and the old one is deleted."""
    cell = CELLS[0]
    pluto, daemon = bring_up(cell, topology, pluto_factory, tmp_path, life_time="30s")
    pluto.initiate("gw")
    first = our_sa(daemon)["children"][0]
    check_both_sides(cell, pluto, our_sa(daemon), we_initiated=False)
    assert "ignoring informational payload IPSEC_RESPONDER_LIFETIME" in pluto.log()

    def rekeyed() -> list[dict[str, Any]]:
        children = [c for s in daemon.sas() for c in s["children"]]
        return [c for c in children if c["spi_in"] != first["spi_in"]] if len(children) == 1 else []

    (new,) = wait_for(rekeyed, timeout=45, what="our rekey to replace the first IPsec SA")
    states = pluto.wait_states(
        lambda st: (
            [s for s in st if s.ipsec and s.spi_out == int(new["spi_in"], 16)]
            and not [s for s in st if s.ipsec and s.spi_out == int(first["spi_in"], 16)]
        )
    )
    (ipsec,) = [s for s in states if s.ipsec]
    assert ipsec.spi_in == int(new["spi_out"], 16)
    assert f"received Delete SA(0x{first['spi_in']}) payload: deleting IPsec State" in pluto.log()
    assert "child_rekey" in daemon.log() and "expired" not in daemon.log()


# ---- RSA certificates (Main Mode, both roles) --------------------------------------------------
# pluto sends no CERTREQ by default (and sends its own certificate always, its sendcert default):
# with our default send_cert = "ifasked" it would find no key for us ("no certificate matched RSA
# with SHA1"), as strongSwan's default would; the snakeswan side says send_cert = "always".


def cert_setup(tmp_path: Path) -> tuple[TestPki, Issued, Issued, Path]:
    """A CA, west's and east's certificates (DN subjects, FQDN subjectAltName), and east's as
    PKCS#12 (nickname "east") for pluto's NSS database."""
    pki = TestPki(tmp_path / "pki", "rsa")
    west, east = pki.host("west.sw-lab", key_index=0), pki.host("east.sw-lab", key_index=1)
    p12 = tmp_path / "pki" / "east.p12"
    p12.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"east",
            east.private_key,  # type: ignore[arg-type]
            east.certificate,
            None,
            serialization.BestAvailableEncryption(P12_PASSWORD.encode()),
        )
    )
    return pki, west, east, p12


P12_PASSWORD = "interop-p12"


@pytest.mark.parametrize("we_initiate", [True, False], ids=["snakeswan-initiates", "libreswan-initiates"])
def test_rsa_certificates_with_libreswan(
    we_initiate: bool, topology: Any, pluto_factory: Any, tmp_path: Path
) -> None:
    pki, west_id, east_id, p12 = cert_setup(tmp_path)
    topo = topology()
    west, east = site_to_site(topo)
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
    )

    def prepare(p: Pluto) -> None:
        p.add_ca(pki.ca_path)
        p.add_identity(p12, P12_PASSWORD)

    pluto = pluto_factory(east, "east", conns, "", prepare=prepare)
    conf = f"""
[connections.gw]
local_addrs = ["{WEST}"]
remote_addrs = ["{EAST}"]
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
"""
    daemon = DaemonProcess(tmp_path, "west", conf, netns=west.name)
    topo.on_close(daemon.stop)
    if we_initiate:
        daemon.cmd("up", conn="gw")
    else:
        pluto.initiate("gw")
    ours = our_sa(daemon)
    cell = Cell("rsa", ("aes256-sha256-modp2048",), ())
    check_both_sides(cell, pluto, ours, we_initiated=we_initiate)
    assert ours["remote_id"] == east_id.dn and ours["local_id"] == west_id.dn
    assert "IKE SA established {auth=RSA_SIG cipher=AES_CBC_256" in pluto.log()
    assert f"Peer ID is ID_DER_ASN1_DN: '{west_id.dn}'" in pluto.log()
    if we_initiate:
        pluto.terminate("gw")
        wait_for(lambda: daemon.sas() == [], timeout=15, what="snakeswan to drop the SAs pluto deleted")
    else:
        old = {s.serial for s in pluto.states()}
        daemon.cmd("down", conn="gw")
        pluto.wait_states(lambda states: not old & {s.serial for s in states})


@pytest.mark.tshark
@pytest.mark.parametrize("cell", [CELLS[0], CELLS[2]], ids=lambda c: c.name)
def test_tshark_decodes_libreswan_exchanges_with_our_keylog(
    cell: Cell, topology: Any, pluto_factory: Any, tmp_path: Path
) -> None:
    """The wire of a cell (we initiate) decrypted by tshark with the lines ``--keylog`` wrote:
    MM5/MM6 or the encrypted AM3, Quick Mode and the Deletes, with no malformed packet."""
    assert shutil.which("tshark"), "tshark is installed by scripts/setup.sh"
    topo = topology()
    west, east = site_to_site(topo)
    conns, secrets = pluto_conf(cell)
    pluto = pluto_factory(east, "east", conns, secrets)
    daemon = DaemonProcess(tmp_path, "west", snakeswan_conf(cell), netns=west.name, keylog=True)
    topo.on_close(daemon.stop)
    pcap = tmp_path / "libreswan.pcapng"
    cap = west.popen(
        "tshark",
        "-q",
        "-i",
        "w0",
        "-f",
        "udp port 500 or udp port 4500",
        "-w",
        str(pcap),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: pcap.exists() and pcap.stat().st_size > 0, timeout=15, what="tshark to capture")
        time.sleep(0.5)
        daemon.cmd("up", conn="gw")
        our_sa(daemon)
        pluto.wait_states(established)
        daemon.cmd("down", conn="gw")
        pluto.wait_states(lambda states: not states)
        time.sleep(0.5)
    finally:
        cap.terminate()
        cap.wait(10)
    assert daemon.keylog_path is not None
    ike = [x for x in daemon.keylog_path.read_text().splitlines() if not x.startswith('"')]
    assert len(ike) == 1
    out = subprocess.run(
        ["tshark", "-r", str(pcap), "-o", f"uat:ikev1_decryption_table:{ike[0]}", "-V"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "Malformed" not in out and "Expert Info (Error" not in out
    assert out.count("Exchange type: Quick Mode (32)") >= 3
    assert out.count("Exchange type: Informational (5)") >= 2  # our Deletes
    assert out.count("Payload: Delete (12)") >= 2
    assert out.count("Payload: Hash (8)") >= 3 + 2 + (1 if cell.aggressive else 2)
    if cell.aggressive:  # AM3 went encrypted and decodes
        assert out.count("Exchange type: Aggressive (4)") == 3
