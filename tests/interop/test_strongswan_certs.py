"""Phase 1 with X.509 certificates against the real strongSwan 5.9 in network namespaces.

Certificates come from strongSwan's own ``pki`` (:class:`Pki`: a CA, then ``west.sw-lab`` and
``east.sw-lab`` with DN subjects and an FQDN subjectAltName); snakeswan loads the very files
strongSwan uses (PKCS#1 / SEC1 PEM keys). Cells: RSA-2048 and ECDSA (``pki``'s default curve
P-384: auth method 10, HASH_I/R with HMAC-SHA-384 under a SHA-256 proposal) in Main and Aggressive
Mode; each in both roles. IDs are the DNs (ID_DER_ASN1_DN). Both ends announce FRAGMENTATION
(the default, as swanctl) and cut only messages above 1,280-byte datagrams, so these messages go
whole; tests/interop/test_fragmentation.py runs them over a small MTU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.daemons import DaemonProcess, wait_for
from tests.interop.strongswan import Credential, Pki, children, swanctl_conf, swanctl_conn
from tests.netns import Topology, site_to_site

pytestmark = [pytest.mark.interop, pytest.mark.netns]

WEST, EAST = "10.231.0.1", "10.231.0.2"
LAN_W, LAN_E = "10.231.1.0/24", "10.231.2.0/24"


@dataclass(frozen=True)
class Cell:
    name: str
    key_type: str
    aggressive: bool = False
    ike: str = "aes128-sha256-modp2048"


CELLS = [
    Cell("rsa-mm", "rsa"),
    Cell("rsa-am", "rsa", aggressive=True),
    Cell("ecdsa-mm", "ecdsa", ike="aes128-sha256-ecp256"),
    Cell("ecdsa-am", "ecdsa", aggressive=True, ike="aes128-sha256-ecp256"),
]


def snakeswan_conf(cell: Cell, ca: Credential, me: Credential, peer: Credential) -> str:
    return f"""
[connections.gw]
local_addrs = ["{WEST}"]
remote_addrs = ["{EAST}"]
aggressive = {str(cell.aggressive).lower()}
proposals = ["{cell.ike}"]
local = {{ auth = "pubkey", certs = ["{me.cert}"], id = "{me.dn}" }}
remote = {{ auth = "pubkey", cacerts = ["{ca.cert}"], id = "{peer.dn}" }}
[connections.gw.children.net]
local_ts = ["{LAN_W}"]
remote_ts = ["{LAN_E}"]
esp_proposals = ["aes128gcm16"]
[secrets.private-west]
file = "{me.key}"
"""


def bring_up(
    cell: Cell,
    topology: Callable[..., Topology],
    charon_factory: Callable[..., Any],
    tmp_path: Path,
    *,
    rogue_east: bool = False,
) -> tuple[Any, DaemonProcess, dict[str, Credential]]:
    """``rogue_east``: strongSwan's certificate comes from another CA than the one we trust."""
    pki = Pki(tmp_path / "pki", key_type=cell.key_type)
    ca = pki.ca()
    creds = {h: pki.host(f"{h}.sw-lab") for h in ("west", "east")}
    if rogue_east:
        rogue = Pki(tmp_path / "rogue", key_type=cell.key_type, org="rogue")
        rogue.ca()
        creds["east"] = rogue.host("east.sw-lab")
    topo = topology()
    west, east = site_to_site(topo)
    conn = swanctl_conn(
        "gw",
        local_addrs=EAST,
        remote_addrs=WEST,
        aggressive=cell.aggressive,
        proposals=cell.ike,
        auth="pubkey",
        local_id=creds["east"].dn,
        remote_id=creds["west"].dn,
        local_ts=LAN_E,
        remote_ts=LAN_W,
        esp_proposals="aes128gcm16",
        local_extra={"certs": "east.sw-lab.crt"},
        remote_extra={"cacerts": "ca.crt"},
    )
    charon = charon_factory(east, "east", swanctl_conf(conn), start=False)
    charon.add_cert(ca.cert, "x509ca")
    charon.add_cert(creds["east"].cert, "x509")
    charon.add_cert(creds["east"].key, cell.key_type)
    charon.start()
    charon.load_all()
    daemon = DaemonProcess(
        tmp_path, "west", snakeswan_conf(cell, ca, creds["west"], creds["east"]), netns=west.name
    )
    topo.on_close(daemon.stop)
    return charon, daemon, creds


def check_both_sides(
    cell: Cell, charon: Any, ours: dict[str, Any], creds: dict[str, Credential], *, we_initiated: bool
) -> None:
    theirs = charon.wait_sas(lambda sas: [s for s in sas if s.get("state") == "ESTABLISHED" and children(s)])
    sa = theirs[0]
    assert (sa["initiator-spi"], sa["responder-spi"]) == (ours["icookie"], ours["rcookie"])
    assert sa["remote-id"] == creds["west"].dn and sa["local-id"] == creds["east"].dn
    assert ours["remote_id"] == creds["east"].dn and ours["local_id"] == creds["west"].dn
    assert ours["mode"] == ("aggressive" if cell.aggressive else "main")
    assert ours["role"] == ("initiator" if we_initiated else "responder")
    child = children(sa)[0]
    assert child["state"] == "INSTALLED"
    assert (child["spi-in"], child["spi-out"]) == (
        ours["children"][0]["spi_out"],
        ours["children"][0]["spi_in"],
    )
    log = charon.log()
    assert f"authentication of '{creds['west'].dn}' with" in log  # strongSwan verified our SIG


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: c.name)
def test_snakeswan_initiates_with_certificates(
    cell: Cell, topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    charon, daemon, creds = bring_up(cell, topology, charon_factory, tmp_path)
    daemon.cmd("up", conn="gw")
    ours = wait_for(lambda: [s for s in daemon.sas() if s["children"]], what="our IPsec SA")[0]
    check_both_sides(cell, charon, ours, creds, we_initiated=True)
    assert "peer_authenticated" in daemon.log()  # we verified strongSwan's SIG and certificate


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: c.name)
def test_snakeswan_responds_with_certificates(
    cell: Cell, topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    charon, daemon, creds = bring_up(cell, topology, charon_factory, tmp_path)
    charon.initiate("net", ike="gw")
    ours = wait_for(lambda: [s for s in daemon.sas() if s["children"]], what="our IPsec SA")[0]
    check_both_sides(cell, charon, ours, creds, we_initiated=False)
    assert "peer_authenticated" in daemon.log()


def test_strongswan_certificate_from_another_ca_is_refused(
    topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    """strongSwan initiates with a certificate of a CA we do not trust: MM5 is rejected with
    INVALID-CERT-AUTHORITY (strongSwan ignores the unprotected notify and times out), no SA."""
    charon, daemon, _ = bring_up(CELLS[0], topology, charon_factory, tmp_path, rogue_east=True)
    charon.swanctl("--initiate", "--child", "net", "--ike", "gw", "--timeout", "3", check=False)
    wait_for(lambda: "INVALID_CERT_AUTHORITY" in daemon.log(), what="snakeswan to reject the certificate")
    assert daemon.sas() == [] or all(s["state"] != "ESTABLISHED" for s in daemon.sas())
    assert not [s for s in charon.list_sas_raw() if s.get("state") == "ESTABLISHED"]
