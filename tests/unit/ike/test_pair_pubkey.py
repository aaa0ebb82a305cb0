"""Phase 1 with signatures over X.509 certificates (RSA and ECDSA), two engines back to back."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import snakeswan.crypto.signatures as sigs
from snakeswan.config.identity import Identity
from snakeswan.ike.events import ChildSaEstablished, IkeSaEstablished, NegotiationFailed
from snakeswan.wire.enums import AuthMethod, NotifyType
from tests.pair import A_ADDR, B_ADDR, Pair, Side
from tests.pki import NOW, Issued, TestPki

LAN_A, LAN_B = "10.231.1.0/24", "10.231.2.0/24"
WEST, EAST = "west.sw-lab", "east.sw-lab"


def cert_config(
    local: str,
    remote: str,
    local_net: str,
    remote_net: str,
    me: Issued,
    ca: Path,
    *,
    remote_dn: str | None,
    aggressive: bool = False,
    local_id: str | None = None,
    ike: str = "aes128-sha256-ecp256",
    send_cert: str = "ifasked",
    send_certreq: bool = True,
    remote_certs: Path | None = None,
) -> str:
    lid = f'id = "{local_id}", ' if local_id else ""
    rid = f'id = "{remote_dn}", ' if remote_dn else ""
    pinned = f'certs = ["{remote_certs}"], ' if remote_certs else ""
    return f"""
[connections.site]
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
aggressive = {str(aggressive).lower()}
proposals = ["{ike}"]
send_cert = "{send_cert}"
send_certreq = {str(send_certreq).lower()}
local = {{ auth = "pubkey", {lid}certs = ["{me.cert}"] }}
remote = {{ auth = "pubkey", {rid}{pinned}cacerts = ["{ca}"] }}

[connections.site.children.net]
local_ts = ["{local_net}"]
remote_ts = ["{remote_net}"]
esp_proposals = ["aes128gcm16"]

[secrets.private-me]
file = "{me.key}"
"""


def run_pair(a_conf: str, b_conf: str, *, wall: dt.datetime | None = None, max_time: float = 120.0) -> Pair:
    p = Pair(a_conf, b_conf)
    offset = (wall.timestamp() if wall else time.time()) - p.now
    p.a.engine.ctx.wall_offset = offset
    p.b.engine.ctx.wall_offset = offset
    p.a.engine.initiate("site", now=p.now)
    p.run(max_time=max_time)
    return p


@pytest.fixture(scope="module", params=["rsa", "ecdsa"])
def pki(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki(tmp_path_factory.mktemp(f"pki-{request.param}"), request.param)


def _pair_configs(pki: TestPki, **kw: object) -> tuple[str, str]:
    west, east = pki.host(WEST), pki.host(EAST, key_index=1)
    a = cert_config(A_ADDR, B_ADDR, LAN_A, LAN_B, west, pki.ca_path, remote_dn=east.dn, **kw)  # type: ignore[arg-type]
    b = cert_config(B_ADDR, A_ADDR, LAN_B, LAN_A, east, pki.ca_path, remote_dn=west.dn, **kw)  # type: ignore[arg-type]
    return a, b


@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
def test_certificates_establish(pki: TestPki, aggressive: bool) -> None:
    a, b = _pair_configs(pki, aggressive=aggressive)
    p = run_pair(a, b)
    ea, eb = p.of(p.a, IkeSaEstablished), p.of(p.b, IkeSaEstablished)
    assert len(ea) == 1 and len(eb) == 1, [r.render() for r in p.b.engine.tracer.records][-10:]
    assert (
        ea[0].local_id == f"C=CH, O=snakeswan, CN={WEST}"
        and ea[0].remote_id == f"C=CH, O=snakeswan, CN={EAST}"
    )
    assert eb[0].remote_id == ea[0].local_id and ea[0].aggressive is aggressive
    method = AuthMethod.RSA_SIGNATURES if pki.kind == "rsa" else AuthMethod.ECDSA_SHA256_P256
    for side in (p.a, p.b):
        sa = side.engine.ike_sas[0]
        assert sa.choice is not None and sa.choice.auth_method == method
        auth = [r.fields for r in side.engine.tracer.find("peer_authenticated")]
        assert len(auth) == 1 and auth[0]["issuer"] == "CN=snakeswan test CA,O=snakeswan,C=CH"
        # each side was asked for its certificate (CERTREQ) and sent it
        assert list(side.engine.tracer.find("certreq_received"))
    ca, cb = p.of(p.a, ChildSaEstablished)[0].child, p.of(p.b, ChildSaEstablished)[0].child
    assert ca.spi_in == cb.spi_out and ca.keys_in == cb.keys_out


def test_default_ids_are_subjects_and_any_remote(pki: TestPki, tmp_path: Path) -> None:
    """No ids configured: ours is the certificate's subject, the peer's anything its cert holds."""
    a, b = _pair_configs(pki)
    a = a.replace(f'id = "C=CH, O=snakeswan, CN={EAST}", ', "")
    b = b.replace(f'id = "C=CH, O=snakeswan, CN={WEST}", ', "")
    p = run_pair(a, b)
    assert p.of(p.a, IkeSaEstablished)[0].remote_id == f"C=CH, O=snakeswan, CN={EAST}"


def test_fqdn_identity_from_subject_alt_name(pki: TestPki) -> None:
    west, east = pki.host(WEST), pki.host(EAST, key_index=1)
    a = cert_config(
        A_ADDR, B_ADDR, LAN_A, LAN_B, west, pki.ca_path, local_id=f"@{WEST}", remote_dn=f"@{EAST}"
    )
    b = cert_config(
        B_ADDR, A_ADDR, LAN_B, LAN_A, east, pki.ca_path, local_id=f"@{EAST}", remote_dn=f"@{WEST}"
    )
    p = run_pair(a, b)
    assert p.of(p.b, IkeSaEstablished)[0].remote_id == WEST


def test_certs_pinned_without_cert_payloads(pki: TestPki) -> None:
    """send_cert = never on both sides: each uses the peer certificate configured in remote.certs."""
    west, east = pki.host(WEST), pki.host(EAST, key_index=1)
    kw: dict[str, Any] = {"send_cert": "never", "send_certreq": False}
    a = cert_config(
        A_ADDR, B_ADDR, LAN_A, LAN_B, west, pki.ca_path, remote_dn=east.dn, remote_certs=east.cert, **kw
    )
    b = cert_config(
        B_ADDR, A_ADDR, LAN_B, LAN_A, east, pki.ca_path, remote_dn=west.dn, remote_certs=west.cert, **kw
    )
    p = run_pair(a, b)
    assert p.of(p.a, IkeSaEstablished) and p.of(p.b, IkeSaEstablished)
    assert not list(p.a.engine.tracer.find("certreq_received"))


def test_send_cert_never_without_pinned_cert_fails(pki: TestPki) -> None:
    a, b = _pair_configs(pki, send_cert="never")
    p = run_pair(a, b, max_time=600)
    assert not p.of(p.a, IkeSaEstablished) and not p.of(p.b, IkeSaEstablished)
    rejected = [r.fields["notify"] for r in p.b.engine.tracer.find("message_rejected")]
    assert rejected and rejected[0] == "CERTIFICATE_UNAVAILABLE"


# ---- negative ------------------------------------------------------------------------------------


def _failure(p: Pair) -> tuple[list[str], list[int]]:
    """(what the responder rejected, the notify the initiator's negotiation failed with)."""
    rejected = [r.fields["notify"] for r in p.b.engine.tracer.find("message_rejected")]
    failed = [e.notify for e in p.of(p.a, NegotiationFailed)]
    return rejected, failed


@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
def test_cert_from_another_ca(pki: TestPki, tmp_path: Path, aggressive: bool) -> None:
    rogue = TestPki(tmp_path / "rogue", pki.kind, cn="rogue CA", n=1)
    west = rogue.host(WEST)
    east = pki.host(EAST, key_index=1)
    a = cert_config(
        A_ADDR, B_ADDR, LAN_A, LAN_B, west, rogue.ca_path, remote_dn=east.dn, aggressive=aggressive
    )
    b = cert_config(B_ADDR, A_ADDR, LAN_B, LAN_A, east, pki.ca_path, remote_dn=west.dn, aggressive=aggressive)
    p = run_pair(a, b, max_time=600)
    assert not p.of(p.a, IkeSaEstablished) and not p.of(p.b, IkeSaEstablished)
    if aggressive:
        # AM2 carries east's certificate, which west (trusting only the rogue CA) refuses
        rejected = [r.fields["notify"] for r in p.a.engine.tracer.find("message_rejected")]
        assert rejected[0] == "INVALID_CERT_AUTHORITY"
        assert p.of(p.b, NegotiationFailed)[0].notify == NotifyType.INVALID_CERT_AUTHORITY
    else:
        rejected, failed = _failure(p)
        assert rejected[0] == "INVALID_CERT_AUTHORITY" and failed[0] == NotifyType.INVALID_CERT_AUTHORITY
    assert p.a.engine.ike_sas == [] and p.b.engine.ike_sas == []


def test_cert_signed_by_impostor_with_the_same_ca_name(pki: TestPki, tmp_path: Path) -> None:
    """A CA with our CA's very name but another key: the signature check catches it."""
    impostor = TestPki(tmp_path / "impostor", pki.kind, n=7)  # same CN, other key
    west = impostor.host(WEST, key_index=5)
    east = pki.host(EAST, key_index=1)
    a = cert_config(A_ADDR, B_ADDR, LAN_A, LAN_B, west, pki.ca_path, remote_dn=east.dn)
    b = cert_config(B_ADDR, A_ADDR, LAN_B, LAN_A, east, pki.ca_path, remote_dn=west.dn)
    p = run_pair(a, b, max_time=600)
    rejected, failed = _failure(p)
    assert not p.of(p.b, IkeSaEstablished)
    assert rejected[0] == "INVALID_CERTIFICATE" and failed[0] == NotifyType.INVALID_CERTIFICATE


def test_expired_certificate(pki: TestPki) -> None:
    west = pki.host(WEST, not_before=NOW - dt.timedelta(days=30), not_after=NOW - dt.timedelta(days=1))
    east = pki.host(EAST, key_index=1)
    a = cert_config(A_ADDR, B_ADDR, LAN_A, LAN_B, west, pki.ca_path, remote_dn=east.dn)
    b = cert_config(B_ADDR, A_ADDR, LAN_B, LAN_A, east, pki.ca_path, remote_dn=west.dn)
    p = run_pair(a, b, max_time=600)
    rejected, failed = _failure(p)
    assert not p.of(p.b, IkeSaEstablished)
    assert rejected[0] == "INVALID_CERTIFICATE" and failed[0] == NotifyType.INVALID_CERTIFICATE
    reasons = [r.fields["reason"] for r in p.b.engine.tracer.find("message_rejected")]
    assert "expired" in reasons[0]


def test_validity_is_checked_at_the_wall_clock_time(pki: TestPki) -> None:
    """The same certificates, two years later (engine time + wall_offset): expired."""
    a, b = _pair_configs(pki)
    p = run_pair(a, b, wall=NOW + dt.timedelta(days=730), max_time=600)
    assert not p.of(p.b, IkeSaEstablished)
    assert _failure(p)[0][0] == "INVALID_CERTIFICATE"


def test_id_not_matching_the_certificate(pki: TestPki) -> None:
    """West sends an ID its (valid) certificate does not contain: INVALID-ID-INFORMATION."""
    west, east = pki.host(WEST), pki.host(EAST, key_index=1)
    a = cert_config(A_ADDR, B_ADDR, LAN_A, LAN_B, west, pki.ca_path, remote_dn=east.dn)
    b = cert_config(B_ADDR, A_ADDR, LAN_B, LAN_A, east, pki.ca_path, remote_dn=None)
    # west's configuration is checked by the loader (ID must be in the certificate), so make the
    # mismatch on the wire: west sends an FQDN its certificate does not hold
    p = Pair(a, b)
    conn = p.a.engine.config.connections[0]
    bad = replace(conn, local=replace(conn.local, id=Identity.parse("@mallory.sw-lab")))
    config = replace(p.a.engine.config, connections=(bad,))
    p.a.engine.config = config
    p.a.engine.ctx.config = config
    for side in (p.a, p.b):
        side.engine.ctx.wall_offset = time.time() - p.now
    p.a.engine.initiate("site", now=p.now)
    p.run(max_time=600)
    rejected, failed = _failure(p)
    assert not p.of(p.b, IkeSaEstablished)
    assert rejected[0] == "INVALID_ID_INFORMATION" and failed[0] == NotifyType.INVALID_ID_INFORMATION


def test_tampered_signature(pki: TestPki) -> None:
    """MM5's SIG flipped after signing (inside the encryption): INVALID-SIGNATURE, no SA."""
    a, b = _pair_configs(pki)
    p = Pair(a, b)
    for side in (p.a, p.b):
        side.engine.ctx.wall_offset = time.time() - p.now
    real_sign = sigs.sign
    calls = []

    def bad_sign(key: object, data: bytes) -> bytes:
        sig = real_sign(key, data)  # type: ignore[arg-type]
        calls.append(1)
        return sig[:-1] + bytes([sig[-1] ^ 1]) if len(calls) == 1 else sig

    mp = pytest.MonkeyPatch()
    mp.setattr(sigs, "sign", bad_sign)
    try:
        p.a.engine.initiate("site", now=p.now)
        p.run(max_time=600)
    finally:
        mp.undo()
    rejected, failed = _failure(p)
    assert not p.of(p.b, IkeSaEstablished) and not p.of(p.a, IkeSaEstablished)
    assert rejected[0] == "INVALID_SIGNATURE" and failed[0] == NotifyType.INVALID_SIGNATURE


def test_mixed_key_types_do_not_negotiate(tmp_path: Path) -> None:
    """As strongSwan: the auth method follows our key, so RSA meets ECDSA with NO-PROPOSAL-CHOSEN."""
    rsa_pki, ec_pki = TestPki(tmp_path / "r", "rsa"), TestPki(tmp_path / "e", "ecdsa")
    west, east = rsa_pki.host(WEST), ec_pki.host(EAST)
    a = cert_config(A_ADDR, B_ADDR, LAN_A, LAN_B, west, ec_pki.ca_path, remote_dn=east.dn)
    b = cert_config(B_ADDR, A_ADDR, LAN_B, LAN_A, east, rsa_pki.ca_path, remote_dn=west.dn)
    p = run_pair(a, b, max_time=600)
    assert not p.of(p.a, IkeSaEstablished)
    assert p.of(p.a, NegotiationFailed)[0].notify == NotifyType.NO_PROPOSAL_CHOSEN


def test_main_mode_payloads_on_the_wire(pki: TestPki) -> None:
    """CERTREQ in MM3 and MM4; [CERT,] SIG instead of HASH in MM5 and MM6 (strongSwan's order)."""
    a, b = _pair_configs(pki)
    p = run_pair(a, b)

    def sent(side: Side, msg: str) -> list[str]:
        records = side.engine.tracer.find("sent")
        return [str(r.fields["payloads"]) for r in records if r.fields.get("msg") == msg]

    assert sent(p.a, "MM3")[0].split()[-1] == "CERTREQ" and sent(p.b, "MM4")[0].split()[-1] == "CERTREQ"
    assert sent(p.a, "MM5")[0].split()[:3] == ["ID", "CERT", "SIG"]
    assert sent(p.b, "MM6")[0].split() == ["ID", "CERT", "SIG"]


@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
def test_ecdsa_p384_with_a_sha256_proposal(tmp_path: Path, aggressive: bool) -> None:
    """Method 10: HASH_I/R with HMAC-SHA-384 (RFC 4754 7) while the proposal negotiated SHA-256."""
    pki = TestPki(tmp_path, "ecdsa384")
    a, b = _pair_configs(pki, aggressive=aggressive, ike="aes128-sha256-modp2048")
    p = run_pair(a, b)
    assert p.of(p.a, IkeSaEstablished) and p.of(p.b, IkeSaEstablished)
    choice = p.a.engine.ike_sas[0].choice
    assert choice is not None and choice.auth_method == AuthMethod.ECDSA_SHA384_P384
