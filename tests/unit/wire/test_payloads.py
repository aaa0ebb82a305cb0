"""Every payload class: build -> encode -> decode -> equal, and byte-identical re-encoding."""

from __future__ import annotations

import pytest

from snakeswan.wire.attributes import Attribute
from snakeswan.wire.enums import (
    AuthMethod,
    CertEncoding,
    ConfigAttr,
    ConfigMessageType,
    DhGroup,
    Doi,
    EncapsulationMode,
    EspTransformId,
    IdType,
    IkeAttr,
    IkeEncryption,
    IkeHash,
    IkeTransformId,
    IpProtocol,
    IpsecAttr,
    NotifyType,
    PayloadType,
    ProtocolId,
)
from snakeswan.wire.message import (
    HEADER_SIZE,
    Header,
    decode_message,
    decode_payloads,
    encode_message,
    encode_payload,
    encode_payloads,
)
from snakeswan.wire.payloads import (
    AttributePayload,
    CertPayload,
    CertRequestPayload,
    DeletePayload,
    FragmentPayload,
    HashPayload,
    IdPayload,
    KePayload,
    NatDPayload,
    NatOaPayload,
    NoncePayload,
    NotifyPayload,
    Payload,
    Proposal,
    SaPayload,
    SigPayload,
    Transform,
    UnknownPayload,
    VendorIdPayload,
)


def ike_transform(number: int, enc: int, keylen: int, hash_: int, group: int, life: int) -> Transform:
    return Transform(
        number,
        IkeTransformId.KEY_IKE,
        (
            Attribute.basic(IkeAttr.ENCRYPTION_ALGORITHM, enc),
            Attribute.basic(IkeAttr.KEY_LENGTH, keylen),
            Attribute.basic(IkeAttr.HASH_ALGORITHM, hash_),
            Attribute.basic(IkeAttr.AUTHENTICATION_METHOD, AuthMethod.PRE_SHARED_KEY),
            Attribute.basic(IkeAttr.GROUP_DESCRIPTION, group),
            Attribute.basic(IkeAttr.LIFE_TYPE, 1),
            Attribute.integer(IkeAttr.LIFE_DURATION, life),
        ),
    )


SA_PHASE1 = SaPayload(
    (
        Proposal(
            1,
            ProtocolId.ISAKMP,
            b"",
            (
                ike_transform(1, IkeEncryption.AES_CBC, 256, IkeHash.SHA2_256, DhGroup.MODP_2048, 86400),
                ike_transform(2, IkeEncryption.AES_CBC, 128, IkeHash.SHA, DhGroup.MODP_1024, 28800),
                ike_transform(3, IkeEncryption.TRIPLE_DES_CBC, 0, IkeHash.MD5, DhGroup.ECP_256, 3600),
            ),
        ),
    )
)

SA_PHASE2 = SaPayload(
    (
        Proposal(
            1,
            ProtocolId.IPSEC_ESP,
            bytes.fromhex("c0ffee01"),
            (
                Transform(
                    1,
                    EspTransformId.AES_GCM_16,
                    (
                        Attribute.basic(IpsecAttr.KEY_LENGTH, 256),
                        Attribute.basic(IpsecAttr.ENCAPSULATION_MODE, EncapsulationMode.TUNNEL),
                        Attribute.basic(IpsecAttr.SA_LIFE_TYPE, 1),
                        Attribute.integer(IpsecAttr.SA_LIFE_DURATION, 3600),
                        Attribute.basic(IpsecAttr.SA_LIFE_TYPE, 2),
                        Attribute.integer(IpsecAttr.SA_LIFE_DURATION, 4608000),
                    ),
                ),
                Transform(2, EspTransformId.AES_CBC, (Attribute.variable(0x7ABC, b"vendor-specific"),)),
            ),
        ),
        # same number: AND-ed with the ESP proposal above (ESP + AH bundle)
        Proposal(1, ProtocolId.IPSEC_AH, bytes.fromhex("c0ffee02"), (Transform(1, 5, ()),)),
        Proposal(2, ProtocolId.IPCOMP, bytes.fromhex("1234"), (Transform(1, 2, ()),)),
    ),
    doi=Doi.IPSEC,
    situation=1,
)

CASES: list[Payload] = [
    SA_PHASE1,
    SA_PHASE2,
    SaPayload((Proposal(9, 200, b"\x01", (Transform(255, 255, ()),)),), doi=0xFFFFFFFF, situation=7),
    KePayload(bytes(range(256))),
    IdPayload(IdType.FQDN, b"vpn.example.org"),
    IdPayload(IdType.IPV4_ADDR_SUBNET, bytes([10, 1, 0, 0, 255, 255, 0, 0]), IpProtocol.UDP, 500),
    IdPayload(IdType.IPV6_ADDR, bytes(15) + b"\x01", IpProtocol.TCP, 65535),
    CertPayload(CertEncoding.X509_SIGNATURE, b"\x30\x82\x01\x00" + b"c" * 40),
    CertRequestPayload(CertEncoding.X509_SIGNATURE, b"\x30\x10" + b"d" * 16),
    CertRequestPayload(CertEncoding.X509_SIGNATURE),
    HashPayload(b"h" * 32),
    SigPayload(b"s" * 256),
    NoncePayload(b"n" * 32),
    NotifyPayload(NotifyType.INITIAL_CONTACT, ProtocolId.ISAKMP, ICOOKIES := bytes(range(16))),
    NotifyPayload(
        NotifyType.RESPONDER_LIFETIME, ProtocolId.IPSEC_ESP, b"\x01\x02\x03\x04", b"\x80\x01\x00\x01"
    ),
    NotifyPayload(NotifyType.R_U_THERE, ProtocolId.ISAKMP, ICOOKIES, (123456).to_bytes(4, "big")),
    NotifyPayload(NotifyType.NO_PROPOSAL_CHOSEN),
    NotifyPayload(40000, 77, b"\xaa", b"data", doi=5),
    DeletePayload(ProtocolId.IPSEC_ESP, (b"\x00\x00\x10\x00", b"\xff\xff\xff\xff", b"\x01\x02\x03\x04")),
    DeletePayload(ProtocolId.ISAKMP, (bytes(range(16)), bytes(range(16, 32))), 16),
    DeletePayload(ProtocolId.IPSEC_AH, ()),
    VendorIdPayload(bytes.fromhex("4a131c81070358455c5728f20e95452f")),
    NatDPayload(b"\x11" * 32),
    NatDPayload(b"\x22" * 20, PayloadType.NAT_D_DRAFT),
    NatOaPayload(IdType.IPV4_ADDR, bytes([192, 0, 2, 1])),
    NatOaPayload(IdType.IPV6_ADDR, bytes(16), PayloadType.NAT_OA_DRAFT),
    AttributePayload(
        ConfigMessageType.REQUEST,
        0x1234,
        (
            Attribute.variable(ConfigAttr.INTERNAL_IP4_ADDRESS, b""),
            Attribute.variable(ConfigAttr.INTERNAL_IP4_DNS, b""),
            Attribute.basic(ConfigAttr.XAUTH_TYPE, 0),
            Attribute.variable(ConfigAttr.XAUTH_USER_NAME, b"alice"),
            Attribute.variable(ConfigAttr.XAUTH_USER_PASSWORD, b"secret"),
        ),
    ),
    AttributePayload(ConfigMessageType.SET, 7, (Attribute.basic(ConfigAttr.XAUTH_STATUS, 1),)),
    AttributePayload(ConfigMessageType.ACK, 0),
    FragmentPayload(1, 1, False, b"f" * 100),
    FragmentPayload(0xFFFF, 3, True, b"last"),
    UnknownPayload(77, b"\x01\x02\x03 opaque"),
    UnknownPayload(200, b""),
]


def _ids(p: Payload) -> str:
    return f"{type(p).__name__}-{p.payload_type}"


@pytest.mark.parametrize("payload", CASES, ids=_ids)
def test_single_payload_round_trip(payload: Payload) -> None:
    first, data = encode_payloads([payload])
    assert first == payload.payload_type
    assert data[0] == PayloadType.NONE
    assert data[1] == 0
    assert int.from_bytes(data[2:4], "big") == len(data)
    (rp,) = decode_payloads(first, data)
    assert rp.payload == payload
    assert rp.raw == data
    assert rp.body == payload.encode_body()
    assert encode_payload(rp.payload) == data


def test_whole_chain_round_trip() -> None:
    first, data = encode_payloads(CASES)
    decoded = decode_payloads(first, data)
    assert [rp.payload for rp in decoded] == CASES
    assert b"".join(rp.raw for rp in decoded) == data
    # next-payload fields chain the types in order
    for rp, nxt in zip(decoded, [*CASES[1:], None], strict=True):
        assert rp.raw[0] == (nxt.payload_type if nxt is not None else PayloadType.NONE)
    assert encode_payloads([rp.payload for rp in decoded]) == (first, data)


def test_message_with_all_payloads() -> None:
    h = Header(b"i" * 8, b"r" * 8, 0, 5, 0, 99)
    data = encode_message(h, CASES)
    msg = decode_message(data)
    assert msg.header.next_payload == PayloadType.SA
    assert [rp.payload for rp in msg.payloads] == CASES
    assert encode_message(msg.header, [rp.payload for rp in msg.payloads]) == data
    assert len(data) == HEADER_SIZE + sum(len(rp.raw) for rp in msg.payloads)
    assert msg.first(DeletePayload) == next(p for p in CASES if isinstance(p, DeletePayload))
    assert len(msg.all(NotifyPayload)) == 5
    raw_sa = msg.raw_of(SaPayload)
    assert raw_sa is not None and raw_sa.body == SA_PHASE1.encode_body()
    assert msg.first(SigPayload) == SigPayload(b"s" * 256)


def test_sa_layout() -> None:
    """SA body: DOI, situation, then proposals with generic headers chaining PROPOSAL/NONE."""
    body = SA_PHASE2.encode_body()
    assert body[:8] == bytes.fromhex("0000000100000001")
    # first proposal header says another proposal follows
    assert body[8] == PayloadType.PROPOSAL
    plen = int.from_bytes(body[10:12], "big")
    prop = body[12 : 8 + plen]
    assert prop[0] == 1 and prop[1] == ProtocolId.IPSEC_ESP and prop[2] == 4 and prop[3] == 2
    assert prop[4:8] == bytes.fromhex("c0ffee01")
    # first transform header: another transform follows
    assert prop[8] == PayloadType.TRANSFORM
    # the last proposal's generic header says NONE
    last = SaPayload((SA_PHASE2.proposals[-1],)).encode_body()
    assert body.endswith(last[8:])
    assert last[8] == PayloadType.NONE


def test_delete_layout_spi_size_16() -> None:
    d = DeletePayload(ProtocolId.ISAKMP, (bytes(range(16)),), 16)
    body = d.encode_body()
    assert body == bytes.fromhex("00000001") + bytes([1, 16]) + b"\x00\x01" + bytes(range(16))


def test_delete_spi_size_mismatch_refused_on_encode() -> None:
    with pytest.raises(ValueError):
        DeletePayload(ProtocolId.IPSEC_ESP, (b"\x00\x01",)).encode_body()


def test_notify_layout() -> None:
    n = NotifyPayload(NotifyType.RESPONDER_LIFETIME, ProtocolId.IPSEC_ESP, b"\x01\x02\x03\x04", b"zz")
    assert n.encode_body() == bytes.fromhex("000000010304600001020304") + b"zz"


def test_id_layout() -> None:
    i = IdPayload(IdType.IPV4_ADDR, bytes([10, 0, 0, 1]), IpProtocol.UDP, 500)
    assert i.encode_body() == bytes([1, 17, 0x01, 0xF4, 10, 0, 0, 1])


def test_natoa_reserved_bytes_zero() -> None:
    assert (
        NatOaPayload(IdType.IPV4_ADDR, b"\x01\x02\x03\x04").encode_body()
        == b"\x01\x00\x00\x00\x01\x02\x03\x04"
    )


def test_fragment_layout() -> None:
    assert FragmentPayload(0x0102, 3, True, b"x").encode_body() == b"\x01\x02\x03\x01x"
    (rp,) = decode_payloads(PayloadType.FRAGMENT, encode_payload(FragmentPayload(1, 2, True, b"")))
    assert rp.payload == FragmentPayload(1, 2, True, b"")


def test_fragment_other_flag_bits_read_as_last() -> None:
    """Flags byte 0x03: bit 0 set means last; the decoder keeps only that bit."""
    data = bytes([0, 0, 0, 9]) + b"\x00\x01\x02\x03" + b"z"
    (rp,) = decode_payloads(PayloadType.FRAGMENT, data)
    assert rp.payload == FragmentPayload(1, 2, True, b"z")
    assert rp.raw == data  # the wire bytes are kept as they were


def test_unknown_payload_survives_byte_for_byte() -> None:
    body = bytes(range(37))
    chain = encode_payloads([NoncePayload(b"n" * 8), UnknownPayload(77, body), VendorIdPayload(b"v" * 16)])[1]
    decoded = decode_payloads(PayloadType.NONCE, chain)
    assert decoded[1].payload == UnknownPayload(77, body)
    assert decoded[1].raw[0] == PayloadType.VENDOR_ID
    assert decoded[2].payload == VendorIdPayload(b"v" * 16)
    assert encode_payloads([rp.payload for rp in decoded])[1] == chain


def test_unknown_payload_with_nonzero_noncritical_reserved() -> None:
    data = bytes([0, 0x01, 0, 6]) + b"ab"
    (rp,) = decode_payloads(77, data)
    assert rp.payload == UnknownPayload(77, b"ab")
    assert rp.raw == data


def test_nat_payload_types_preserved() -> None:
    for p in (
        NatDPayload(b"a" * 20, 20),
        NatDPayload(b"a" * 20, 130),
        NatOaPayload(1, b"\x01" * 4, 21),
        NatOaPayload(1, b"\x01" * 4, 131),
    ):
        first, data = encode_payloads([p])
        assert first == p.payload_type
        (rp,) = decode_payloads(first, data)
        assert rp.payload == p
        assert rp.payload.payload_type == p.payload_type
