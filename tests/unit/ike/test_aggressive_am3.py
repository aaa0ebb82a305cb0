"""Aggressive Mode's third message: sent encrypted (as Libreswan and Cisco send it), accepted in
either form, and the Quick Mode IV that follows from each form (RFC 2409 appendix B: the first
phase 2 IV is hash(last phase 1 CBC output block | M-ID))."""

from __future__ import annotations

import pytest

from snakeswan.crypto import keymat
from snakeswan.ike.aggressive_mode import AggressiveMode
from snakeswan.ike.events import ChildSaEstablished, IkeSaEstablished
from snakeswan.wire.enums import ExchangeType
from snakeswan.wire.message import HEADER_SIZE, decode_header, decode_payloads
from snakeswan.wire.payloads import HashPayload
from tests.pair import A_ADDR, B_ADDR, Pair, site_config

IDS_A = {"local_id": "a.example.org", "remote_id": "b.example.org"}
IDS_B = {"local_id": "b.example.org", "remote_id": "a.example.org"}


def _pair(ike: str) -> Pair:
    a = site_config(A_ADDR, B_ADDR, "10.231.1.0/24", "10.231.2.0/24", ike=ike, aggressive=True, **IDS_A)
    b = site_config(B_ADDR, A_ADDR, "10.231.2.0/24", "10.231.1.0/24", ike=ike, aggressive=True, **IDS_B)
    return Pair(a, b)


@pytest.mark.parametrize("ike", ["aes128-sha256-modp2048", "3des-sha1-modp1536"])
@pytest.mark.parametrize("encrypted", [True, False], ids=["am3-encrypted", "am3-plaintext"])
def test_quick_mode_iv_after_either_form_of_am3(
    encrypted: bool, ike: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(AggressiveMode, "encrypt_am3", encrypted)
    p = _pair(ike)
    p.a.engine.initiate("site", now=p.now)
    p.run(max_time=5)
    assert p.of(p.a, IkeSaEstablished) and p.of(p.b, IkeSaEstablished)
    ca, cb = p.of(p.a, ChildSaEstablished)[0].child, p.of(p.b, ChildSaEstablished)[0].child
    assert ca.spi_in == cb.spi_out and ca.keys_in == cb.keys_out

    aggressive = [d for s, d in p.wire if decode_header(d.data).exchange == ExchangeType.AGGRESSIVE]
    am3 = aggressive[2]
    assert decode_header(am3.data).encrypted is encrypted
    qm1 = next(d for s, d in p.wire if s == "a" and decode_header(d.data).exchange == ExchangeType.QUICK_MODE)

    sa = p.a.engine.ike_sas[0]
    c, p1 = sa.crypto, sa.phase1.p1  # type: ignore[union-attr]
    assert c is not None
    bs = c.cipher.block_size
    first_iv = keymat.phase1_iv(c.hash, p1.gxi, p1.gxr, bs)  # hash(g^xi | g^xr)
    last_block = am3.data[-bs:] if encrypted else first_iv
    other = first_iv if encrypted else am3.data[-bs:]
    mid = decode_header(qm1.data).message_id
    body = qm1.data[HEADER_SIZE:]
    plain = c.cipher.decrypt(c.enc_key, keymat.phase2_iv(c.hash, last_block, mid, bs), body)
    payloads = decode_payloads(decode_header(qm1.data).next_payload, plain, allow_trailing=True)
    assert isinstance(payloads[0].payload, HashPayload)  # QM1 starts with HASH(1)
    expected = keymat.qm_hash1(c.hash, c.keys.skeyid_a, mid, b"".join(rp.raw for rp in payloads[1:]))
    assert payloads[0].payload.data == expected
    # the other form's IV does not decrypt QM1 (why a peer that expects it fails)
    wrong = c.cipher.decrypt(c.enc_key, keymat.phase2_iv(c.hash, other, mid, bs), body)
    assert wrong[:bs] != plain[:bs] and wrong[bs:] == plain[bs:]


def test_responder_accepts_both_forms_and_traces_which() -> None:
    for encrypted in (True, False):
        AggressiveMode.encrypt_am3 = encrypted
        try:
            p = _pair("aes128-sha256-modp2048")
            p.a.engine.initiate("site", now=p.now)
            p.run(max_time=5)
        finally:
            AggressiveMode.encrypt_am3 = True
        got = [r for r in p.b.engine.tracer.find("received") if r.fields.get("msg") == "AM3"]
        assert got and got[0].fields["encrypted"] is encrypted
        assert p.of(p.b, ChildSaEstablished)


def test_am3_is_encrypted_by_default() -> None:
    assert AggressiveMode.encrypt_am3 is True
    p = _pair("aes128-sha256-modp2048")
    p.a.engine.initiate("site", now=p.now)
    p.run(max_time=5)
    sent = [r for r in p.a.engine.tracer.find("sent") if r.fields.get("msg") == "AM3"]
    assert sent and sent[0].fields["encrypted"] is True
