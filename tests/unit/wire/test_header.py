"""ISAKMP header (RFC 2408 3.1): round trip and the errors that name where decoding stopped."""

from __future__ import annotations

import pytest

from snakeswan.errors import DecodeError
from snakeswan.wire.enums import ExchangeType, Flag, PayloadType
from snakeswan.wire.message import (
    HEADER_SIZE,
    Header,
    decode_header,
    decode_message,
    encode_datagram,
    encode_message,
)
from snakeswan.wire.payloads import NoncePayload

ICOOKIE = bytes.fromhex("0102030405060708")
RCOOKIE = bytes.fromhex("a1a2a3a4a5a6a7a8")


def _header(**kw: object) -> Header:
    fields: dict[str, object] = dict(
        icookie=ICOOKIE,
        rcookie=RCOOKIE,
        next_payload=PayloadType.HASH,
        exchange=ExchangeType.QUICK_MODE,
        flags=Flag.ENCRYPTION | Flag.COMMIT,
        message_id=0xDEADBEEF,
    )
    fields.update(kw)
    return Header(**fields)  # type: ignore[arg-type]


def test_header_encode_layout() -> None:
    raw = _header().encode(HEADER_SIZE + 4)
    assert len(raw) == HEADER_SIZE
    assert raw[:8] == ICOOKIE
    assert raw[8:16] == RCOOKIE
    assert raw[16] == PayloadType.HASH
    assert raw[17] == 0x10  # major 1, minor 0
    assert raw[18] == ExchangeType.QUICK_MODE
    assert raw[19] == Flag.ENCRYPTION | Flag.COMMIT
    assert raw[20:24] == bytes.fromhex("deadbeef")
    assert raw[24:28] == (HEADER_SIZE + 4).to_bytes(4, "big")


def test_header_round_trip() -> None:
    body = b"\x00" * 16
    data = encode_datagram(_header(), body)
    h = decode_header(data)
    assert h == _header(length=HEADER_SIZE + 16)
    assert h.encrypted
    assert h.encode(h.length) + body == data


def test_header_minor_version_is_kept() -> None:
    data = bytearray(encode_datagram(_header(), b""))
    data[17] = 0x1F  # major 1, minor 15: still acceptable
    h = decode_header(bytes(data))
    assert h.version == 0x1F
    assert h.encode(h.length) == bytes(data)


def test_message_round_trip() -> None:
    h = _header(flags=0, exchange=ExchangeType.IDENTITY_PROTECTION, message_id=0)
    data = encode_message(h, [NoncePayload(b"n" * 16)])
    msg = decode_message(data)
    assert msg.header.next_payload == PayloadType.NONCE
    assert msg.header.length == len(data)
    assert [rp.payload for rp in msg.payloads] == [NoncePayload(b"n" * 16)]
    assert msg.types() == [PayloadType.NONCE]


@pytest.mark.parametrize("n", [0, 1, 8, 16, 23, 27])
def test_short_header(n: int) -> None:
    data = encode_datagram(_header(), b"")[:n]
    with pytest.raises(DecodeError) as ei:
        decode_header(data)
    assert ei.value.where == "ISAKMP header"
    assert ei.value.offset <= n
    assert "need" in ei.value.what


@pytest.mark.parametrize("version", [0x00, 0x01, 0x20, 0x21, 0xF0])
def test_wrong_major_version(version: int) -> None:
    data = bytearray(encode_datagram(_header(), b""))
    data[17] = version
    with pytest.raises(DecodeError) as ei:
        decode_header(bytes(data))
    assert ei.value.offset == 17
    assert "major version" in ei.value.what
    assert str(version >> 4) in ei.value.what


@pytest.mark.parametrize("delta", [-1, 1, 100])
def test_length_mismatch(delta: int) -> None:
    data = encode_datagram(_header(), b"\x00" * 8)
    bad = data[:24] + (len(data) + delta).to_bytes(4, "big") + data[28:]
    with pytest.raises(DecodeError) as ei:
        decode_header(bad)
    assert ei.value.offset == 24
    assert str(len(data) + delta) in ei.value.what
    assert str(len(data)) in ei.value.what


def test_datagram_longer_than_header_length() -> None:
    data = encode_datagram(_header(), b"\x00" * 8) + b"\x00"
    with pytest.raises(DecodeError) as ei:
        decode_header(data)
    assert ei.value.offset == 24


def test_decode_message_refuses_encrypted() -> None:
    data = encode_datagram(_header(flags=Flag.ENCRYPTION), b"\x00" * 16)
    with pytest.raises(DecodeError) as ei:
        decode_message(data)
    assert ei.value.offset == 19
    assert "encrypted" in ei.value.what


def test_decode_error_message_names_place() -> None:
    e = DecodeError("something odd", 42, "SA payload")
    assert e.offset == 42 and e.where == "SA payload"
    assert str(e) == "SA payload: something odd at offset 42"
