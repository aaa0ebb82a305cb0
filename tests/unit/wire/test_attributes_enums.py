"""Data attributes (RFC 2408 3.3) and IANA number naming."""

from __future__ import annotations

import pytest

from snakeswan.errors import DecodeError
from snakeswan.wire.attributes import Attribute, decode_attributes, encode_attributes, find
from snakeswan.wire.buffer import Reader, Writer
from snakeswan.wire.enums import (
    ConfigAttr,
    DhGroup,
    ExchangeType,
    IkeAttr,
    NotifyType,
    PayloadType,
    known,
    name_of,
)


def _enc(*attrs: Attribute) -> bytes:
    w = Writer()
    encode_attributes(attrs, w)
    return w.getvalue()


def _dec(data: bytes) -> tuple[Attribute, ...]:
    return decode_attributes(Reader(data, where="attrs"))


def test_tv_layout() -> None:
    a = Attribute.basic(IkeAttr.ENCRYPTION_ALGORITHM, 7)
    assert a.tv and a.value == b"\x00\x07" and a.as_int() == 7
    assert _enc(a) == bytes.fromhex("80010007")


def test_tlv_layout() -> None:
    a = Attribute.variable(IkeAttr.LIFE_DURATION, b"\x00\x01\x51\x80")
    assert not a.tv and a.as_int() == 86400
    assert _enc(a) == bytes.fromhex("000c0004") + b"\x00\x01\x51\x80"


@pytest.mark.parametrize("value", [0, 1, 10800, 65535])
def test_integer_small_is_tv(value: int) -> None:
    a = Attribute.integer(IkeAttr.LIFE_DURATION, value)
    assert a.tv
    assert a.value == value.to_bytes(2, "big")
    assert a.as_int() == value


@pytest.mark.parametrize(
    ("value", "length"), [(65536, 4), (86400, 4), (0xFFFFFFFF, 4), (0x1_0000_0000, 5), (2**64 - 1, 8)]
)
def test_integer_large_is_tlv(value: int, length: int) -> None:
    a = Attribute.integer(IkeAttr.LIFE_DURATION, value)
    assert not a.tv
    assert len(a.value) == length
    assert a.as_int() == value
    assert _dec(_enc(a)) == (a,)


def test_basic_refuses_large_values() -> None:
    with pytest.raises(ValueError):
        Attribute.basic(1, 65536)
    with pytest.raises(ValueError):
        Attribute.basic(1, -1)
    with pytest.raises(ValueError):
        Attribute.variable(1, b"\x00" * 65536)


def test_tlv_of_small_value_stays_tlv() -> None:
    """A peer may send 10800 as a 4-byte TLV: it re-encodes as TLV, not as TV."""
    raw = bytes.fromhex("000c000400002a30")
    (a,) = _dec(raw)
    assert not a.tv and a.as_int() == 10800
    assert _enc(a) == raw
    assert a != Attribute.integer(IkeAttr.LIFE_DURATION, 10800)


def test_mixed_round_trip_and_unknown_types() -> None:
    attrs = (
        Attribute.basic(IkeAttr.ENCRYPTION_ALGORITHM, 7),
        Attribute.basic(0x7FFF, 0xFFFF),  # largest TV type, unknown
        Attribute.variable(0x7FFE, b""),  # empty TLV of an unknown type
        Attribute.variable(16000, bytes(range(200))),
        Attribute.variable(ConfigAttr.XAUTH_USER_NAME, b"bob"),
    )
    raw = _enc(*attrs)
    assert _dec(raw) == attrs
    assert _enc(*_dec(raw)) == raw


def test_find() -> None:
    attrs = (Attribute.basic(1, 7), Attribute.basic(14, 128), Attribute.basic(14, 256))
    assert find(attrs, 14) == Attribute.basic(14, 128)
    assert find(attrs, 99) is None


def test_tlv_overrun_is_decode_error() -> None:
    raw = bytes.fromhex("000c0008") + b"\x00\x00\x2a\x30"  # says 8 bytes, has 4
    with pytest.raises(DecodeError) as ei:
        _dec(raw)
    assert ei.value.offset == 0
    assert ei.value.where == "attrs"
    assert "overruns" in ei.value.what


@pytest.mark.parametrize("raw", ["80", "8001", "800100", "000c", "000c00"])
def test_truncated_attribute_is_decode_error(raw: str) -> None:
    with pytest.raises(DecodeError):
        _dec(bytes.fromhex(raw))


def test_attribute_offsets_are_absolute() -> None:
    data = b"\xee" * 10 + bytes.fromhex("80010007000c0009")
    with pytest.raises(DecodeError) as ei:
        decode_attributes(Reader(data, 10, where="transform"))
    assert ei.value.offset == 14


def test_name_of_known_and_unknown() -> None:
    assert name_of(PayloadType, 1) == "SA"
    assert name_of(PayloadType, 130) == "NAT_D_DRAFT"
    assert name_of(PayloadType, 77) == "PayloadType(77)"
    assert name_of(ExchangeType, 2) == "IDENTITY_PROTECTION"
    assert name_of(ExchangeType, 250) == "ExchangeType(250)"
    assert name_of(NotifyType, 24578) == "INITIAL_CONTACT"
    assert name_of(NotifyType, 65535) == "NotifyType(65535)"
    assert name_of(DhGroup, 14) == "MODP_2048"
    assert name_of(DhGroup, -1) == "DhGroup(-1)"


def test_known() -> None:
    assert known(PayloadType, 132)
    assert not known(PayloadType, 133)
    assert known(IkeAttr, 16)
    assert not known(IkeAttr, 17)
