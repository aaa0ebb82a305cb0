"""OCSP against a real responder: ``openssl ocsp`` answers from a CA index (one certificate good,
one revoked), signing as a delegated responder (id-kp-OCSPSigning); two snakeswan daemons run Main
Mode with certificates over 127.0.0.1, all inside one network namespace of their own (openssl's
responder listens on every address of the namespace it runs in: only its loopback exists). The
IKE responder, with ``revocation = strict``, lets the good certificate through to Quick Mode and
refuses the revoked one."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.daemons import DaemonProcess, wait_for
from tests.integration.test_daemon_operator import cli
from tests.netns import Netns, Topology, netns_usable
from tests.pki import Issued, TestPki
from tests.pki_ocsp import index_line, responder_cert

pytestmark = [
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed"),
    pytest.mark.skipif(not netns_usable()[0], reason=netns_usable()[1]),
]
OCSP_PORT = 2560

CONF = """
[daemon]
port = {port}
nat_port = {nat_port}
dataplane = false  # both daemons share the host's network namespace: no TUN, no routes
[connections.lo]
local_addrs = ["127.0.0.1"]
remote_addrs = ["127.0.0.1"]
remote_port = {peer_port}
proposals = ["aes128-sha256-modp2048"]
send_cert = "always"
local = {{ auth = "pubkey", certs = ["{cert}"] }}
remote = {{ auth = "pubkey", cacerts = ["{ca}"]{remote} }}
[connections.lo.children.net]
local_ts = ["{lnet}"]
remote_ts = ["{rnet}"]
esp_proposals = ["aes128gcm16"]
[secrets.private-me]
file = "{key}"
"""


def _pem(path: Path, obj: x509.Certificate | object) -> Path:
    if isinstance(obj, x509.Certificate):
        path.write_bytes(obj.public_bytes(serialization.Encoding.PEM))
    else:
        key = obj.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.write_bytes(key)
    return path


class Responder:
    def __init__(self, ns: Netns, pki: TestPki, good: Issued, revoked: Issued) -> None:
        d = pki.dir
        index = d / "index.txt"
        index.write_text(
            index_line(good.certificate, False) + "\n" + index_line(revoked.certificate, True) + "\n"
        )
        rcert, rkey = responder_cert(pki.ca_name, pki.ca_key)
        self.ns = ns
        self.url = f"http://127.0.0.1:{OCSP_PORT}/"
        self.log = open(d / "ocsp.log", "wb")  # noqa: SIM115 - closed in stop()
        cmd = ["openssl", "ocsp", "-port", str(OCSP_PORT), "-index", str(index)]
        cmd += ["-CA", str(pki.ca_path), "-rsigner", str(_pem(d / "responder.crt", rcert))]
        cmd += ["-rkey", str(_pem(d / "responder.key", rkey)), "-ndays", "1"]
        self.proc = ns.popen(*cmd, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self._listening, 10, "openssl ocsp to listen")

    def _listening(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"openssl ocsp exited {self.proc.returncode}")
        return f":{OCSP_PORT} " in self.ns.run("ss", "-ltnH").stdout

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


Lab = tuple[Netns, TestPki, Issued, Issued, Issued, Responder]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    pki = TestPki(tmp_path, "rsa")
    good, revoked = pki.host("west-good.sw-lab"), pki.host("west-revoked.sw-lab", key_index=2)
    east = pki.host("east.sw-lab", key_index=1)
    with Topology() as topo:
        ns = topo.add("ocsp")
        responder = Responder(ns, pki, good, revoked)
        topo.on_close(responder.stop)
        yield ns, pki, good, revoked, east, responder


def _pair(
    tmp: Path, ns: Netns, pki: TestPki, west: Issued, east: Issued, url: str, tag: str
) -> tuple[DaemonProcess, DaemonProcess]:
    pa, na, pb, nb = 500, 4500, 1500, 5500
    a = CONF.format(
        port=pa,
        nat_port=na,
        peer_port=pb,
        cert=west.cert,
        key=west.key,
        ca=pki.ca_path,
        remote="",
        lnet="10.231.1.0/24",
        rnet="10.231.2.0/24",
    )
    strict = f', ocsp_uris = ["{url}"], revocation = "strict"'
    b = CONF.format(
        port=pb,
        nat_port=nb,
        peer_port=pa,
        cert=east.cert,
        key=east.key,
        ca=pki.ca_path,
        remote=strict,
        lnet="10.231.2.0/24",
        rnet="10.231.1.0/24",
    )
    da = DaemonProcess(tmp, f"west-{tag}", a, netns=ns.name)
    try:
        db = DaemonProcess(tmp, f"east-{tag}", b, netns=ns.name)
    except BaseException:
        da.stop()
        raise
    return da, db


def test_good_certificate_passes_and_revoked_is_refused(tmp_path: Path, lab: Lab) -> None:
    ns, pki, good, revoked, east, responder = lab
    a, b = _pair(tmp_path, ns, pki, good, east, responder.url, "good")
    try:
        up = cli(a.control, "up", "lo", "--timeout", "30")
        assert up.returncode == 0, up.stdout + up.stderr
        wait_for(lambda: [s for s in b.sas() if s["children"]], 20, "east's IPsec SA with the good peer")
        wait_for(lambda: [s for s in a.sas() if s["children"]], 20, "west's IPsec SA")
        assert "asking OCSP " + responder.url in b.log()
    finally:
        a.stop(), b.stop()
    a, b = _pair(tmp_path, ns, pki, revoked, east, responder.url, "revoked")
    try:
        up = cli(a.control, "up", "lo", "--timeout", "30")
        assert up.returncode == 1, up.stdout + up.stderr
        assert "deleted by peer" in up.stderr  # east deleted the ISAKMP SA once OCSP said revoked
        wait_for(lambda: "ocsp failed" in b.log(), 20, "east to refuse the revoked peer")
        time.sleep(1.0)
        assert not [s for s in b.sas() if s["children"]] and not [s for s in a.sas() if s["children"]]
        failed = [line for line in b.log().splitlines() if "ocsp failed" in line]
        assert "revoked" in failed[0] and "west-revoked.sw-lab" in failed[0], failed
    finally:
        a.stop(), b.stop()
