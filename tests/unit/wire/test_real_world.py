"""A Main Mode MM1 built byte by byte as strongSwan 5.9 sends it, and payload rule checking."""

from __future__ import annotations

import pytest

from snakeswan.errors import DecodeError
from snakeswan.wire.attributes import Attribute, find
from snakeswan.wire.enums import (
    AuthMethod,
    DhGroup,
    Doi,
    ExchangeType,
    IkeAttr,
    IkeEncryption,
    IkeHash,
    IkeTransformId,
    LifeType,
    PayloadType,
    ProtocolId,
)
from snakeswan.wire.message import Rule, check_payloads, decode_message, encode_message
from snakeswan.wire.payloads import SaPayload, VendorIdPayload

VID_XAUTH = "09002689dfd6b712"
VID_DPD = "afcad71368a1f1c96b8696fc77570100"
VID_NATT_RFC = "4a131c81070358455c5728f20e95452f"
VID_NATT_03 = "7d9419a65310ca6f2c179d9215529d56"
VID_FRAG = "4048b7d56ebce88525e7de7f00d6c2d3"


def _strongswan_mm1(life: str = "800c2a30") -> bytes:
    """HDR, SA(P1: KEY_IKE aes128/sha256/psk/modp2048/life), VID x5 as strongSwan 5.9 orders them.

    strongSwan numbers the first proposal 1 and its first transform 1, and writes the attributes in
    the order encryption, key length, hash, group, auth, life type, life duration (TV below 65536).
    """
    attrs = (
        "8001"
        "0007"  # encryption algorithm: AES-CBC
        "800e"
        "0080"  # key length: 128
        "8002"
        "0004"  # hash: SHA2-256
        "8004"
        "000e"  # group: MODP 2048
        "8003"
        "0001"  # auth: PSK
        "800b"
        "0001"  # life type: seconds
    ) + life  # life duration: 10800
    transform = "01010000" + attrs  # number 1, KEY_IKE, reserved
    transform = "0000" + f"{4 + len(transform) // 2:04x}" + transform  # last transform
    proposal = "01010001" + transform  # number 1, ISAKMP, spi size 0, 1 transform
    proposal = "0000" + f"{4 + len(proposal) // 2:04x}" + proposal  # last proposal
    sa_body = "0000000100000001" + proposal  # DOI IPsec, SIT_IDENTITY_ONLY
    vids = [VID_XAUTH, VID_DPD, VID_NATT_RFC, VID_NATT_03, VID_FRAG]
    payloads = "0d00" + f"{4 + len(sa_body) // 2:04x}" + sa_body  # SA, next: VID
    for i, v in enumerate(vids):
        nxt = "0d" if i + 1 < len(vids) else "00"
        payloads += nxt + "00" + f"{4 + len(v) // 2:04x}" + v
    body = bytes.fromhex(payloads)
    header = bytes.fromhex(
        "8fd2a6c1e7f0a3b5"  # initiator cookie
        "0000000000000000"  # responder cookie: not known yet
        "01"  # next payload: SA
        "10"  # version 1.0
        "02"  # exchange: identity protection (Main Mode)
        "00"  # flags
        "00000000"  # message ID
    ) + (28 + len(body)).to_bytes(4, "big")
    return header + body


def test_strongswan_mm1_field_by_field() -> None:
    data = _strongswan_mm1()
    msg = decode_message(data)
    h = msg.header
    assert h.icookie == bytes.fromhex("8fd2a6c1e7f0a3b5")
    assert h.rcookie == bytes(8)
    assert h.next_payload == PayloadType.SA
    assert h.version == 0x10
    assert h.exchange == ExchangeType.IDENTITY_PROTECTION
    assert h.flags == 0 and not h.encrypted
    assert h.message_id == 0
    assert h.length == len(data)
    assert msg.types() == [PayloadType.SA] + [PayloadType.VENDOR_ID] * 5

    sa = msg.first(SaPayload)
    assert sa is not None
    assert sa.doi == Doi.IPSEC and sa.situation == 1
    (prop,) = sa.proposals
    assert prop.number == 1 and prop.protocol == ProtocolId.ISAKMP and prop.spi == b""
    (t,) = prop.transforms
    assert t.number == 1 and t.transform_id == IkeTransformId.KEY_IKE
    assert [a.type for a in t.attributes] == [
        IkeAttr.ENCRYPTION_ALGORITHM,
        IkeAttr.KEY_LENGTH,
        IkeAttr.HASH_ALGORITHM,
        IkeAttr.GROUP_DESCRIPTION,
        IkeAttr.AUTHENTICATION_METHOD,
        IkeAttr.LIFE_TYPE,
        IkeAttr.LIFE_DURATION,
    ]
    assert all(a.tv for a in t.attributes)

    def val(kind: int) -> int:
        a = find(t.attributes, kind)
        assert a is not None
        return a.as_int()

    assert val(IkeAttr.ENCRYPTION_ALGORITHM) == IkeEncryption.AES_CBC
    assert val(IkeAttr.KEY_LENGTH) == 128
    assert val(IkeAttr.HASH_ALGORITHM) == IkeHash.SHA2_256
    assert val(IkeAttr.GROUP_DESCRIPTION) == DhGroup.MODP_2048
    assert val(IkeAttr.AUTHENTICATION_METHOD) == AuthMethod.PRE_SHARED_KEY
    assert val(IkeAttr.LIFE_TYPE) == LifeType.SECONDS
    assert val(IkeAttr.LIFE_DURATION) == 10800

    assert [v.data.hex() for v in msg.all(VendorIdPayload)] == [
        VID_XAUTH,
        VID_DPD,
        VID_NATT_RFC,
        VID_NATT_03,
        VID_FRAG,
    ]
    # SAi_b for HASH_I is the SA body exactly as received
    raw = msg.raw_of(SaPayload)
    assert raw is not None and raw.body == sa.encode_body()
    # and the whole message re-encodes byte for byte
    assert encode_message(h, [rp.payload for rp in msg.payloads]) == data


def test_mm1_with_tlv_lifetime() -> None:
    """Other peers send the 10800 s lifetime as a 4-byte TLV; it decodes to the same number."""
    data = _strongswan_mm1(life="000c000400002a30")
    msg = decode_message(data)
    sa = msg.first(SaPayload)
    assert sa is not None
    life = find(sa.proposals[0].transforms[0].attributes, IkeAttr.LIFE_DURATION)
    assert life == Attribute(IkeAttr.LIFE_DURATION, b"\x00\x00\x2a\x30", False)
    assert life.as_int() == 10800
    assert encode_message(msg.header, [rp.payload for rp in msg.payloads]) == data


# ---- check_payloads ------------------------------------------------------------------------------

P = PayloadType
RULES = {P.KE: Rule(1, 1), P.NONCE: Rule(1, 1), P.NAT_D: Rule(0, 2)}


def test_rules_accept() -> None:
    check_payloads([P.KE, P.NONCE], RULES, "MM3")
    check_payloads([P.NONCE, P.KE, P.NAT_D, P.NAT_D], RULES, "MM3")
    check_payloads([P.KE, P.VENDOR_ID, P.NONCE, P.VENDOR_ID], RULES, "MM3", allow_others=[P.VENDOR_ID])


def test_rules_missing() -> None:
    with pytest.raises(DecodeError) as ei:
        check_payloads([P.KE], RULES, "MM3")
    assert "missing NONCE" in ei.value.what
    assert ei.value.where == "MM3"


def test_rules_too_many() -> None:
    with pytest.raises(DecodeError) as ei:
        check_payloads([P.KE, P.NONCE, P.KE], RULES, "MM3")
    assert "2 KE payloads, at most 1" in ei.value.what
    with pytest.raises(DecodeError):
        check_payloads([P.KE, P.NONCE, P.NAT_D, P.NAT_D, P.NAT_D], RULES, "MM3")


def test_rules_unexpected() -> None:
    with pytest.raises(DecodeError) as ei:
        check_payloads([P.KE, P.NONCE, P.SA], RULES, "MM3", allow_others=[P.VENDOR_ID])
    assert "unexpected SA" in ei.value.what
    with pytest.raises(DecodeError) as ei:
        check_payloads([P.KE, P.NONCE, 77], RULES, "MM3")
    assert "PayloadType(77)" in ei.value.what


def test_rules_zero_max_forbids() -> None:
    with pytest.raises(DecodeError):
        check_payloads(
            [P.ID, P.HASH, P.SIG], {P.ID: Rule(1, 1), P.HASH: Rule(1, 1), P.SIG: Rule(0, 0)}, "MM5"
        )


def test_rules_empty_message() -> None:
    check_payloads([], {P.NOTIFICATION: Rule(0, 5)}, "info")
    with pytest.raises(DecodeError):
        check_payloads([], {P.HASH: Rule(1, 1)}, "QM3")
