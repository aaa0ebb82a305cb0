"""OCSP for strongSwan's certificate: strongSwan's ``pki`` issues ``east.sw-lab`` with an OCSP URL
in its authorityInfoAccess (``--ocsp``); ``openssl ocsp`` answers there (in the east namespace,
signing with the CA's key) from an index where that certificate is good or revoked. snakeswan
(``ocsp_aia = true``, ``revocation = "strict"``) initiates Main Mode: a good certificate gives the
IPsec SA on both sides, a revoked one ends the ISAKMP SA before Quick Mode."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.daemons import DaemonProcess, wait_for
from tests.interop.strongswan import Pki, children, swanctl_conf, swanctl_conn
from tests.interop.test_strongswan_certs import CELLS, EAST, LAN_E, LAN_W, snakeswan_conf
from tests.netns import site_to_site
from tests.pki_ocsp import index_line

pytestmark = [pytest.mark.interop, pytest.mark.netns]

OCSP_URL = f"http://{EAST}:2560/"


@pytest.mark.parametrize("revoked", [False, True], ids=["good", "revoked"])
def test_ocsp_from_the_aia_of_strongswans_certificate(
    revoked: bool, topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    cell = CELLS[0]  # RSA, Main Mode
    pki = Pki(tmp_path / "pki", key_type=cell.key_type)
    ca = pki.ca()
    west_cred, east_cred = pki.host("west.sw-lab"), pki.host("east.sw-lab", ocsp=OCSP_URL)
    east_cert = x509.load_pem_x509_certificate(east_cred.cert.read_bytes())
    index = tmp_path / "index.txt"
    index.write_text(index_line(east_cert, revoked) + "\n")
    topo = topology()
    west, east = site_to_site(topo)
    log = open(tmp_path / "ocsp.log", "wb")  # noqa: SIM115 - closed at the end
    responder = east.popen(
        "openssl", "ocsp", "-port", "2560", "-index", str(index), "-CA", str(ca.cert),
        "-rsigner", str(ca.cert), "-rkey", str(ca.key), "-ndays", "1",
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    topo.on_close(log.close)
    topo.on_close(responder.terminate)
    wait_for(lambda: ":2560 " in east.run("ss", "-ltnH").stdout, 10, "openssl ocsp to listen")
    conn = swanctl_conn(
        "gw",
        local_addrs=EAST,
        remote_addrs="10.231.0.1",
        proposals=cell.ike,
        auth="pubkey",
        local_id=east_cred.dn,
        remote_id=west_cred.dn,
        local_ts=LAN_E,
        remote_ts=LAN_W,
        esp_proposals="aes128gcm16",
        local_extra={"certs": "east.sw-lab.crt"},
        remote_extra={"cacerts": "ca.crt"},
    )
    charon = charon_factory(east, "east", swanctl_conf(conn), start=False)
    charon.add_cert(ca.cert, "x509ca")
    charon.add_cert(east_cred.cert, "x509")
    charon.add_cert(east_cred.key, cell.key_type)
    charon.start()
    charon.load_all()
    ours = snakeswan_conf(cell, ca, west_cred, east_cred).replace(
        f'cacerts = ["{ca.cert}"]', f'cacerts = ["{ca.cert}"], ocsp_aia = true, revocation = "strict"'
    )
    assert "ocsp_aia = true" in ours
    daemon = DaemonProcess(tmp_path, "west", ours, netns=west.name)
    topo.on_close(daemon.stop)
    daemon.cmd("up", conn="gw")
    if not revoked:
        wait_for(lambda: [s for s in daemon.sas() if s["children"]], 20, "our IPsec SA")
        charon.wait_sas(lambda sas: [s for s in sas if s.get("state") == "ESTABLISHED" and children(s)])
        assert f"asking OCSP {OCSP_URL}" in daemon.log() and "status=good" in daemon.log()
        return
    wait_for(lambda: "ocsp failed" in daemon.log(), 20, "snakeswan to refuse the revoked certificate")
    failed = next(line for line in daemon.log().splitlines() if "ocsp failed" in line)
    assert "revoked" in failed and "east.sw-lab" in failed
    wait_for(lambda: not [s for s in daemon.sas() if s["state"] == "ESTABLISHED"], 10, "our SA gone")
    assert not [s for s in daemon.sas() if s["children"]]
    assert not [s for s in charon.list_sas_raw() if children(s)]
