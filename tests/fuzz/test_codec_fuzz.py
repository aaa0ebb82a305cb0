"""Codec fuzzing: random and mutated datagrams decode or raise DecodeError, nothing else; whatever
decodes re-encodes to bytes that decode to an equal result."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snakeswan.errors import DecodeError
from snakeswan.wire.attributes import Attribute
from snakeswan.wire.enums import PayloadType
from snakeswan.wire.message import (
    HEADER_SIZE,
    Header,
    decode_message,
    decode_payloads,
    encode_message,
    encode_payloads,
)
from snakeswan.wire.payloads import (
    AttributePayload,
    DeletePayload,
    FragmentPayload,
    IdPayload,
    KePayload,
    NatDPayload,
    NatOaPayload,
    NoncePayload,
    NotifyPayload,
    Proposal,
    SaPayload,
    Transform,
    UnknownPayload,
    VendorIdPayload,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_SA = SaPayload(
    (
        Proposal(
            1,
            3,
            b"\x01\x02\x03\x04",
            (
                Transform(
                    1, 12, (Attribute.basic(6, 128), Attribute.integer(2, 86400), Attribute.basic(4, 1))
                ),
                Transform(2, 3, (Attribute.variable(0x1234, b"xyz"),)),
            ),
        ),
        Proposal(2, 2, b"\x05\x06\x07\x08", (Transform(1, 5, ()),)),
    )
)
SEEDS: list[bytes] = [
    encode_message(
        Header(b"I" * 8, b"\x00" * 8, 0, 2, 0, 0),
        [_SA, VendorIdPayload(b"v" * 16), UnknownPayload(77, b"unknown")],
    ),
    encode_message(
        Header(b"I" * 8, b"R" * 8, 0, 2, 0, 0),
        [KePayload(b"k" * 64), NoncePayload(b"n" * 32), NatDPayload(b"d" * 32), NatDPayload(b"e" * 32, 130)],
    ),
    encode_message(
        Header(b"I" * 8, b"R" * 8, 0, 5, 0, 7),
        [
            NotifyPayload(24578, 1, b"c" * 16, b"data"),
            DeletePayload(1, (b"s" * 16,), 16),
            DeletePayload(3, (b"abcd", b"efgh")),
        ],
    ),
    encode_message(
        Header(b"I" * 8, b"R" * 8, 0, 6, 0, 9),
        [
            AttributePayload(1, 5, (Attribute.basic(16520, 0), Attribute.variable(16521, b"user"))),
            IdPayload(4, b"\x0a\x00\x00\x00\xff\xff\xff\x00", 17, 500),
            NatOaPayload(1, b"\x0a\x00\x00\x01"),
            FragmentPayload(1, 1, True, b"frag"),
        ],
    ),
]


def check_message(data: bytes) -> None:
    """decode_message raises only DecodeError; a success round-trips."""
    try:
        msg = decode_message(data)
    except DecodeError:
        return
    payloads = [rp.payload for rp in msg.payloads]
    again = encode_message(msg.header, payloads)
    msg2 = decode_message(again)
    assert [rp.payload for rp in msg2.payloads] == payloads
    assert msg2.header.icookie == msg.header.icookie and msg2.header.exchange == msg.header.exchange
    assert encode_message(msg2.header, payloads) == again


def check_chain(first: int, data: bytes, allow_trailing: bool) -> None:
    try:
        decoded = decode_payloads(first, data, allow_trailing=allow_trailing)
    except DecodeError:
        return
    payloads = [rp.payload for rp in decoded]
    f2, again = encode_payloads(payloads)
    if payloads:
        assert f2 == first
    assert [rp.payload for rp in decode_payloads(f2, again)] == payloads


@FUZZ
@given(st.binary(max_size=300))
def test_random_datagrams(data: bytes) -> None:
    check_message(data)


@FUZZ
@given(st.integers(0, 255), st.binary(max_size=300), st.booleans())
def test_random_chains(first: int, data: bytes, allow_trailing: bool) -> None:
    check_chain(first, data, allow_trailing)


@FUZZ
@given(st.sampled_from(SEEDS), st.binary(max_size=300), st.integers(0, 255), st.integers(0, 255))
def test_random_body_with_valid_header(seed: bytes, body: bytes, first: int, exchange: int) -> None:
    h = Header(seed[:8], seed[8:16], first, exchange, 0, 0)
    data = h.encode(HEADER_SIZE + len(body)) + body
    check_message(data)


def test_truncation_at_every_length() -> None:
    for seed in SEEDS:
        for n in range(len(seed)):
            check_message(seed[:n])
            # with the header length fixed, the cut reaches the payload parsers
            fixed = seed[:24] + n.to_bytes(4, "big") + seed[28:n] if n >= HEADER_SIZE else seed[:n]
            check_message(fixed)
            check_chain(seed[16], seed[HEADER_SIZE:n], False)
            check_chain(seed[16], seed[HEADER_SIZE:n], True)


def test_every_single_byte_flip_position() -> None:
    for seed in SEEDS:
        for i in range(len(seed)):
            for x in (0x01, 0x80, 0xFF):
                data = bytearray(seed)
                data[i] ^= x
                check_message(bytes(data))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif kind == "set" and data:
            data[pos] = draw(st.sampled_from([0, 1, 2, 3, 4, 0x7F, 0x80, 0xFF]))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        else:
            del data[pos:]
    if draw(st.booleans()) and len(data) >= HEADER_SIZE:
        data[24:28] = len(data).to_bytes(4, "big")  # keep the header length consistent
    return bytes(data)


@FUZZ
@given(mutated())
def test_mutated_messages(data: bytes) -> None:
    check_message(data)
    if len(data) > HEADER_SIZE:
        check_chain(data[16], data[HEADER_SIZE:], True)


def test_seeds_decode() -> None:
    for seed in SEEDS:
        msg = decode_message(seed)
        assert msg.payloads
        assert msg.types()[0] == seed[16]
    assert decode_message(SEEDS[0]).first(UnknownPayload) == UnknownPayload(77, b"unknown")
    assert PayloadType.SA in decode_message(SEEDS[0]).types()
