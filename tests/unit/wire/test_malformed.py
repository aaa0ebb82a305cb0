"""Malformed input raises exactly DecodeError, naming where it stopped (never IndexError & co)."""

from __future__ import annotations

import pytest

from snakeswan.errors import DecodeError
from snakeswan.wire.attributes import Attribute
from snakeswan.wire.enums import PayloadType, ProtocolId
from snakeswan.wire.message import (
    CRITICAL,
    HEADER_SIZE,
    Header,
    decode_message,
    decode_payloads,
    encode_datagram,
    encode_payloads,
)
from snakeswan.wire.payloads import (
    DeletePayload,
    IdPayload,
    NoncePayload,
    NotifyPayload,
    Proposal,
    SaPayload,
    Transform,
    UnknownPayload,
    VendorIdPayload,
)

P = PayloadType


def _decode_error(first: int, data: bytes, **kw: object) -> DecodeError:
    try:
        decode_payloads(first, data, **kw)  # type: ignore[arg-type]
    except DecodeError as e:
        return e
    except Exception as e:
        pytest.fail(f"{type(e).__name__} instead of DecodeError: {e!r}")
    pytest.fail("decoded without error")


def _sa_chain() -> bytes:
    sa = SaPayload(
        (
            Proposal(
                1,
                ProtocolId.ISAKMP,
                b"",
                (Transform(1, 1, (Attribute.basic(1, 7), Attribute.integer(12, 86400))), Transform(2, 1, ())),
            ),
        )
    )
    return encode_payloads([sa])[1]


@pytest.mark.parametrize("length", [0, 1, 2, 3])
def test_payload_length_below_header(length: int) -> None:
    data = encode_payloads([NoncePayload(b"x" * 8)])[1]
    data = data + encode_payloads([VendorIdPayload(b"v")])[1]
    first_len = int.from_bytes(data[2:4], "big")
    bad = data[:first_len] + bytes([0, 0]) + length.to_bytes(2, "big") + data[first_len + 4 :]
    bad = bytes([P.VENDOR_ID]) + bad[1:]
    e = _decode_error(P.NONCE, bad)
    assert e.offset == first_len
    assert "< 4" in e.what
    assert "VENDOR_ID" in e.what


def test_payload_overruns_message() -> None:
    data = encode_payloads([NoncePayload(b"x" * 8)])[1]
    bad = data[:2] + (len(data) + 1).to_bytes(2, "big") + data[4:]
    e = _decode_error(P.NONCE, bad)
    assert e.offset == 0
    assert "overruns" in e.what and "NONCE" in e.what


def test_offsets_are_relative_to_the_message() -> None:
    """In a whole datagram, errors point into the datagram, past the 28-byte header."""
    body = encode_payloads([NoncePayload(b"x" * 8)])[1]
    bad_body = body[:2] + b"\x00\x02" + body[4:]
    data = encode_datagram(Header(b"i" * 8, b"r" * 8, P.NONCE, 2, 0, 0), bad_body)
    with pytest.raises(DecodeError) as ei:
        decode_message(data)
    assert ei.value.offset == HEADER_SIZE


def test_chain_ends_early() -> None:
    """The last payload names a next payload that is not there."""
    data = bytearray(encode_payloads([NoncePayload(b"x" * 8)])[1])
    data[0] = P.VENDOR_ID
    e = _decode_error(P.NONCE, bytes(data))
    assert e.offset == len(data)
    assert "next payload" in e.what


def test_empty_chain_with_first_type() -> None:
    e = _decode_error(P.SA, b"")
    assert e.offset == 0


def test_proposal_count_mismatch() -> None:
    data = bytearray(_sa_chain())
    # generic(4) + DOI(4) + situation(4) + proposal generic(4) + number, protocol, spi size, count
    count_at = 4 + 8 + 4 + 3
    assert data[count_at] == 2
    data[count_at] = 3
    e = _decode_error(P.SA, bytes(data))
    assert "3 transforms" in e.what and "has 2" in e.what
    assert "SA" in e.where or "proposal" in e.where


def test_transform_chain_names_wrong_type() -> None:
    data = bytearray(_sa_chain())
    first_transform = 4 + 8 + 4 + 4
    assert data[first_transform] == P.TRANSFORM
    data[first_transform] = P.PROPOSAL
    e = _decode_error(P.SA, bytes(data))
    assert "transform chain names payload type 2" in e.what
    second_transform = first_transform + int.from_bytes(
        data[first_transform + 2 : first_transform + 4], "big"
    )
    assert e.offset == second_transform


def test_proposal_chain_names_wrong_type() -> None:
    sa = SaPayload((Proposal(1, 1, b"", (Transform(1, 1, ()),)), Proposal(2, 1, b"", (Transform(1, 1, ()),))))
    data = bytearray(encode_payloads([sa])[1])
    assert data[12] == P.PROPOSAL
    data[12] = P.TRANSFORM
    e = _decode_error(P.SA, bytes(data))
    assert "proposal chain names payload type 3" in e.what


def test_transform_length_impossible() -> None:
    data = bytearray(_sa_chain())
    first_transform = 4 + 8 + 4 + 4
    data[first_transform + 2 : first_transform + 4] = b"\x00\x03"
    e = _decode_error(P.SA, bytes(data))
    assert "transform length 3" in e.what
    assert e.offset == first_transform


def test_proposal_spi_overruns() -> None:
    data = bytearray(_sa_chain())
    data[4 + 8 + 4 + 2] = 200  # spi size
    e = _decode_error(P.SA, bytes(data))
    assert "spi" in e.what


def test_tlv_attribute_overruns_transform() -> None:
    data = bytearray(_sa_chain())
    # the TLV life duration 86400: find its header 000c0004 and make it claim 5 bytes
    at = bytes(data).index(bytes.fromhex("000c0004"))
    data[at + 3] = 5
    e = _decode_error(P.SA, bytes(data))
    assert e.offset == at
    assert "overruns" in e.what


def test_delete_with_too_few_spi_bytes() -> None:
    body = DeletePayload(ProtocolId.IPSEC_ESP, (b"\x00\x00\x00\x01", b"\x00\x00\x00\x02")).encode_body()
    body = body[:-1]
    data = bytes([0, 0]) + (4 + len(body)).to_bytes(2, "big") + body
    e = _decode_error(P.DELETE, data)
    assert "delete spi" in e.what
    assert e.offset == 4 + 8 + 4


def test_delete_count_too_small_leaves_trailing_bytes() -> None:
    body = bytearray(
        DeletePayload(ProtocolId.IPSEC_ESP, (b"\x00\x00\x00\x01", b"\x00\x00\x00\x02")).encode_body()
    )
    body[7] = 1
    data = bytes([0, 0]) + (4 + len(body)).to_bytes(2, "big") + bytes(body)
    e = _decode_error(P.DELETE, data)
    assert "trailing" in e.what


def test_notify_spi_overruns() -> None:
    body = bytearray(NotifyPayload(14, 1, b"\x01" * 4).encode_body())
    body[5] = 9
    data = bytes([0, 0]) + (4 + len(body)).to_bytes(2, "big") + bytes(body)
    e = _decode_error(P.NOTIFICATION, data)
    assert "notify spi" in e.what


@pytest.mark.parametrize(
    ("ptype", "body"),
    [
        (P.ID, b"\x01\x11\x01"),
        (P.CERT, b""),
        (P.CR, b""),
        (P.NOTIFICATION, b"\x00\x00\x00\x01\x01\x00\x00"),
        (P.DELETE, b"\x00\x00\x00\x01\x03\x04\x00"),
        (P.SA, b"\x00\x00\x00\x01\x00\x00\x00"),
        (P.ATTRIBUTE, b"\x01\x00\x00"),
        (P.FRAGMENT, b"\x00\x01\x01"),
        (P.NAT_OA, b"\x01\x00\x00"),
        (P.NAT_OA_DRAFT, b"\x01"),
    ],
)
def test_body_too_short_for_fixed_fields(ptype: int, body: bytes) -> None:
    data = bytes([0, 0]) + (4 + len(body)).to_bytes(2, "big") + body
    e = _decode_error(ptype, data)
    assert e.offset >= 4


def test_attribute_payload_tlv_overrun() -> None:
    body = b"\x01\x00\x00\x01" + bytes.fromhex("4089 0010") + b"short"
    data = bytes([0, 0]) + (4 + len(body)).to_bytes(2, "big") + body
    e = _decode_error(P.ATTRIBUTE, data)
    assert e.offset == 8
    assert "overruns" in e.what


def test_attribute_payload_zero_padding_is_not_an_attribute() -> None:
    """Libreswan pads a Mode Config REPLY to 4 bytes (46 bytes of attributes, 2 zero bytes): the
    padding is skipped; 2 non-zero bytes, or 4 (an attribute header), are still refused."""
    attrs = bytes.fromhex("0001 0004 0ae7640a 7004 000e 0ae70200 ffffff00 000000000000")
    for tail, ok in ((b"", True), (b"\x00", True), (b"\x00\x00", True), (b"\x00\x01", False)):
        body = b"\x02\x00\x17\xbd" + attrs + tail
        data = bytes([0, 0]) + (4 + len(body)).to_bytes(2, "big") + body
        if ok:
            [rp] = decode_payloads(P.ATTRIBUTE, data)
            assert [a.type for a in rp.payload.attributes] == [1, 28676]  # type: ignore[attr-defined]
        else:
            assert "partial attribute" in _decode_error(P.ATTRIBUTE, data).what
    body = b"\x02\x00\x17\xbd" + attrs + b"\x00\x00\x00\x00"  # a whole (empty) attribute of type 0
    data = bytes([0, 0]) + (4 + len(body)).to_bytes(2, "big") + body
    [rp] = decode_payloads(P.ATTRIBUTE, data)
    assert [a.type for a in rp.payload.attributes] == [1, 28676, 0]  # type: ignore[attr-defined]


def test_trailing_bytes_refused_or_allowed() -> None:
    data = encode_payloads([IdPayload(2, b"peer"), NoncePayload(b"n" * 16)])[1]
    padding = b"\x00" * 7
    e = _decode_error(P.ID, data + padding)
    assert e.offset == len(data)
    assert "7 bytes after the last payload" in e.what
    decoded = decode_payloads(P.ID, data + padding, allow_trailing=True)
    assert [rp.payload for rp in decoded] == [IdPayload(2, b"peer"), NoncePayload(b"n" * 16)]
    assert decoded[-1].raw == data[-len(decoded[-1].raw) :]


def test_trailing_bytes_in_whole_datagram() -> None:
    body = encode_payloads([NoncePayload(b"n" * 8)])[1] + b"\x00"
    data = encode_datagram(Header(b"i" * 8, b"r" * 8, P.NONCE, 2, 0, 0), body)
    with pytest.raises(DecodeError) as ei:
        decode_message(data)
    assert ei.value.offset == len(data) - 1


def test_unknown_critical_payload_refused() -> None:
    data = bytes([0, CRITICAL, 0, 8]) + b"abcd"
    e = _decode_error(77, data)
    assert "critical" in e.what and "77" in e.what
    assert e.offset == 0


def test_unknown_critical_payload_refused_mid_chain() -> None:
    nonce = encode_payloads([NoncePayload(b"n" * 8)])[1]
    nonce = bytes([77]) + nonce[1:]
    data = nonce + bytes([0, CRITICAL | 0x01, 0, 5]) + b"z"
    e = _decode_error(P.NONCE, data)
    assert e.offset == len(nonce)


def test_unknown_noncritical_payload_kept() -> None:
    data = bytes([0, 0, 0, 8]) + b"abcd"
    (rp,) = decode_payloads(77, data)
    assert rp.payload == UnknownPayload(77, b"abcd")
    assert rp.raw == data


def test_known_payload_with_critical_bit_is_decoded() -> None:
    """The critical bit only matters for payloads we do not understand."""
    data = bytes([0, CRITICAL, 0, 12]) + b"n" * 8
    (rp,) = decode_payloads(P.NONCE, data)
    assert rp.payload == NoncePayload(b"n" * 8)
    assert rp.raw == data


def test_reader_restricted_to_payload() -> None:
    """A payload's fields cannot be read from the next payload's bytes."""
    notify_short = bytes([P.VENDOR_ID, 0, 0, 4 + 7]) + b"\x00\x00\x00\x01\x01\x00\x00"
    vid = bytes([0, 0, 0, 8]) + b"\x00\x0e\x00\x00"
    e = _decode_error(P.NOTIFICATION, notify_short + vid)
    assert e.offset < len(notify_short)
