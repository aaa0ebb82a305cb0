"""OCSP for the peer's certificate, two engines back to back: the engine asks its driver
(OcspCheck), waits without blocking (the SA is established but not ready: no Quick Mode), and
the answer the test hands to ``ocsp_verdict`` decides under ``remote.revocation``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import ocsp

from snakeswan.ike.events import ChildSaEstablished, NegotiationFailed, OcspCheck, XauthResult
from tests.pair import A_ADDR, B_ADDR, Pair
from tests.pki import Issued, TestPki
from tests.pki_ocsp import response
from tests.ra import Hub
from tests.unit.ike.test_pair_remote_access import _cert_configs

WEST, EAST = "west.sw-lab", "east.sw-lab"
URL = "http://127.0.0.1:2560/"
GOOD, REVOKED, UNKNOWN = ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.REVOKED, ocsp.OCSPCertStatus.UNKNOWN


def conf(
    local: str, remote: str, me: Issued, ca: Path, revocation: str = "", aggressive: bool = False
) -> str:
    return f"""
[connections.site]
aggressive = {str(aggressive).lower()}
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
proposals = ["aes128-sha256-modp2048"]
send_cert = "always"
local = {{ auth = "pubkey", certs = ["{me.cert}"] }}
remote = {{ auth = "pubkey", cacerts = ["{ca}"]{revocation} }}
[connections.site.children.net]
local_ts = ["10.231.{1 if local == A_ADDR else 2}.0/24"]
remote_ts = ["10.231.{2 if local == A_ADDR else 1}.0/24"]
esp_proposals = ["aes128gcm16"]
[secrets.private-me]
file = "{me.key}"
"""


class Lab:
    def __init__(
        self, tmp: Path, b_revocation: str, a_revocation: str = "", *, aggressive: bool = False
    ) -> None:
        self.pki = TestPki(tmp, "ecdsa")
        self.west, self.east = self.pki.host(WEST), self.pki.host(EAST, key_index=1)
        self.a = conf(A_ADDR, B_ADDR, self.west, self.pki.ca_path, a_revocation, aggressive)
        self.b = conf(B_ADDR, A_ADDR, self.east, self.pki.ca_path, b_revocation, aggressive)
        self.p = Pair(self.a, self.b)
        for side in (self.p.a, self.p.b):
            side.engine.ctx.wall_offset = time.time() - self.p.now

    def start(self) -> None:
        self.p.a.engine.initiate("site", now=self.p.now)
        self.p.run(5)

    def answer(
        self, status: ocsp.OCSPCertStatus, *, nonce: bytes | None = None, side: str = "b"
    ) -> OcspCheck:
        """Answer the last OcspCheck of ``side`` about the other's certificate (by its CA)."""
        s = self.p.b if side == "b" else self.p.a
        check = self.p.of(s, OcspCheck)[-1]
        req = ocsp.load_der_ocsp_request(check.request)
        sent = req.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        peer = self.west if side == "b" else self.east
        assert req.serial_number == peer.certificate.serial_number
        der = response(
            peer.certificate, self.pki.ca_cert, self.pki.ca_key, status=status, nonce=nonce or sent
        )
        s.engine.ocsp_verdict(check.ike_sa, der, f"from {URL}", self.p.now)
        self.p.run(60)
        return check

    def up(self) -> bool:
        return bool(self.p.of(self.p.a, ChildSaEstablished)) and bool(self.p.of(self.p.b, ChildSaEstablished))


def ocsp_keys(policy: str = "relaxed") -> str:
    return f', ocsp_uris = ["{URL}"], revocation = "{policy}"'


@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
def test_good_answer_lets_quick_mode_run(tmp_path: Path, aggressive: bool) -> None:
    lab = Lab(tmp_path, ocsp_keys(), aggressive=aggressive)
    lab.start()
    [check] = lab.p.of(lab.p.b, OcspCheck)
    assert check.urls == (URL,) and "request" not in repr(check)
    assert not lab.up() and not lab.p.b.engine.ike_sas[0].ready  # established, waiting for OCSP
    lab.answer(GOOD)
    assert lab.up()
    [status] = [r.fields for r in lab.p.b.engine.tracer.find("ocsp_status")]
    assert status["status"] == "good" and status["accepted"] is True


@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
def test_revoked_peer_is_refused_and_the_cache_refuses_it_in_phase1(tmp_path: Path, aggressive: bool) -> None:
    lab = Lab(tmp_path, ocsp_keys(), aggressive=aggressive)
    lab.start()
    lab.answer(REVOKED)
    assert not lab.up() and not lab.p.b.engine.ike_sas and not lab.p.a.engine.ike_sas
    [failed] = lab.p.of(lab.p.b, NegotiationFailed)
    assert failed.exchange == "ocsp" and "revoked" in failed.reason and WEST in failed.reason
    # the answer is cached until its nextUpdate: the next attempt fails in Main Mode itself
    lab.p.a.engine.initiate("site", now=lab.p.now)
    lab.p.run(60)
    assert len(lab.p.of(lab.p.b, OcspCheck)) == 1 and not lab.up()
    rejected = [r.fields["reason"] for r in lab.p.b.engine.tracer.find("message_rejected")]
    assert any("revoked" in r for r in rejected), rejected


def test_cached_good_answer_needs_no_second_question(tmp_path: Path) -> None:
    lab = Lab(tmp_path, ocsp_keys("strict"))
    lab.start()
    lab.answer(GOOD)
    assert lab.up()
    sa = lab.p.a.engine.ike_sas[0].unique_id
    lab.p.a.engine.delete_ike(sa, lab.p.now)
    lab.p.run(5)
    lab.p.a.engine.initiate("site", now=lab.p.now)
    lab.p.run(60)
    assert len(lab.p.of(lab.p.b, OcspCheck)) == 1
    assert len(lab.p.of(lab.p.b, ChildSaEstablished)) == 2


@pytest.mark.parametrize(
    ("policy", "status", "accepted"),
    [
        ("relaxed", UNKNOWN, True),
        ("ifuri", UNKNOWN, False),
        ("strict", UNKNOWN, False),
        ("relaxed", None, True),  # no answer at all
        ("ifuri", None, False),
        ("strict", None, False),
        ("relaxed", REVOKED, False),
    ],
)
def test_policy(tmp_path: Path, policy: str, status: ocsp.OCSPCertStatus | None, accepted: bool) -> None:
    lab = Lab(tmp_path, ocsp_keys(policy))
    lab.start()
    if status is None:
        [check] = lab.p.of(lab.p.b, OcspCheck)
        lab.p.b.engine.ocsp_verdict(check.ike_sa, None, f"{URL} did not answer", lab.p.now)
        lab.p.run(60)
    else:
        lab.answer(status)
    assert lab.up() is accepted
    if not accepted:
        [failed] = lab.p.of(lab.p.b, NegotiationFailed)
        assert failed.exchange == "ocsp"


def test_replayed_answer_with_another_nonce_is_not_believed(tmp_path: Path) -> None:
    lab = Lab(tmp_path, ocsp_keys("ifuri"))
    lab.start()
    lab.answer(GOOD, nonce=b"z" * 16)
    assert not lab.up()
    [failed] = lab.p.of(lab.p.b, NegotiationFailed)
    assert "nonce" in failed.reason


def test_initiator_checks_the_responder_before_quick_mode(tmp_path: Path) -> None:
    lab = Lab(tmp_path, "", ocsp_keys("strict"))
    lab.start()
    assert lab.p.of(lab.p.a, OcspCheck) and not lab.p.of(lab.p.b, OcspCheck)
    assert not lab.up()
    lab.answer(GOOD, side="a")
    assert lab.up()


def test_strict_without_any_source_fails_in_main_mode(tmp_path: Path) -> None:
    lab = Lab(tmp_path, ', revocation = "strict"')
    lab.start()
    lab.p.run(60)
    assert not lab.up() and not lab.p.of(lab.p.b, OcspCheck)
    rejected = [r.fields["reason"] for r in lab.p.b.engine.tracer.find("message_rejected")]
    assert any("no CRL and no OCSP responder" in r for r in rejected), rejected


def test_a_late_or_unasked_verdict_is_ignored(tmp_path: Path) -> None:
    lab = Lab(tmp_path, "")
    lab.start()
    lab.p.run(30)
    assert lab.up()
    lab.p.b.engine.ocsp_verdict(lab.p.b.engine.ike_sas[0].unique_id, None, "late", lab.p.now)
    assert lab.p.b.engine.tracer.find("ocsp_verdict_ignored") and lab.p.b.engine.ike_sas


def test_responder_configured_for_the_ca(tmp_path: Path) -> None:
    """[authorities.<name>] names the responder for what its cacert issued: asked, and under
    ifuri its answer is required."""
    lab = Lab(tmp_path, ', revocation = "ifuri"')
    authority = f'\n[authorities.lab]\ncacert = "{lab.pki.ca_path}"\nocsp_uris = ["{URL}ca"]\n'
    lab.p = Pair(lab.a, lab.b + authority)
    for side in (lab.p.a, lab.p.b):
        side.engine.ctx.wall_offset = time.time() - lab.p.now
    lab.start()
    [check] = lab.p.of(lab.p.b, OcspCheck)
    assert check.urls == (f"{URL}ca",)
    lab.p.b.engine.ocsp_verdict(check.ike_sa, None, "no answer", lab.p.now)
    lab.p.run(60)
    assert not lab.up()


@pytest.mark.parametrize("hybrid", [False, True], ids=["rsa-xauth", "hybrid"])
def test_remote_access_client_waits_for_ocsp_before_xauth(tmp_path: Path, hybrid: bool) -> None:
    """The gateway asks for XAUTH right after phase 1; the client, still waiting for the OCSP
    answer about the gateway's certificate, drops the request (the gateway sends it again) and
    answers once the certificate is known good."""
    pki = TestPki(tmp_path, "rsa")
    gateway, client_conf = _cert_configs(pki, hybrid)
    client_conf = client_conf.replace(
        f'cacerts = ["{pki.ca_path}"] }}', f'cacerts = ["{pki.ca_path}"]{ocsp_keys()} }}'
    )
    assert "ocsp_uris" in client_conf
    h = Hub(gateway, [client_conf])
    for eng in h.engines.values():
        eng.ctx.wall_offset = time.time() - h.now
    client = h.clients[0]
    client.initiate("home", now=h.now)
    h.run(2)
    [check] = h.of(client, OcspCheck)
    assert not h.of(client, XauthResult) and client.ike_sas and client.ike_sas[0].remote_access is None
    gw_cert = x509.load_pem_x509_certificate(Path(gateway.split('certs = ["')[1].split('"')[0]).read_bytes())
    nonce = (
        ocsp.load_der_ocsp_request(check.request)
        .extensions.get_extension_for_class(x509.OCSPNonce)
        .value.nonce
    )
    client.ocsp_verdict(check.ike_sa, response(gw_cert, pki.ca_cert, pki.ca_key, nonce=nonce), "", h.now)
    h.run(60)
    assert [e.ok for e in h.of(client, XauthResult)] == [True]
    assert [r for r in client.tracer.find("drop") if r.fields["reason"] == "waiting for OCSP"]
    assert not list(client.tracer.find("exchange_failed")) and not list(
        h.gateway.tracer.find("notify_received")
    )
    assert [e.child for e in h.of(client, ChildSaEstablished)]
