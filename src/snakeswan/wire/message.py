"""ISAKMP header and payload chains (RFC 2408 sections 3.1 and 3.2), and per-message payload rules.

Encryption is not done here (no crypto in ``wire``): the IKE layer encrypts the bytes of a payload
chain and passes them to :func:`encode_datagram`; on receipt it decrypts the body and calls
:func:`decode_payloads` with ``allow_trailing=True``, because the padding after the last payload of
an encrypted body is legal and must be ignored (RFC 2408 3.5; strongSwan adds a whole zero block).
The IKE layer also accepts padding after the last payload of a plaintext message, within the
length the header gives (Libreswan's ``ikepad=yes``, its default, pads every message to 4 bytes);
the codec itself stays strict unless asked (:func:`decode_message`'s ``allow_trailing``), and
:attr:`Message.padding` says how many bytes were skipped so that the caller can trace them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from snakeswan.errors import DecodeError
from snakeswan.wire.buffer import Reader, Writer
from snakeswan.wire.enums import Flag, NotifyType, PayloadType, name_of
from snakeswan.wire.payloads import (
    GENERIC_HEADER,
    DecodedPayloadT,
    NotifyPayload,
    Payload,
    UnknownPayload,
    decode_payload,
)

HEADER_SIZE = 28
ISAKMP_VERSION = 0x10
NON_ESP_MARKER = b"\x00\x00\x00\x00"
# The high bit of the generic header's reserved byte: IKEv2's "critical" flag. IKEv1 leaves the byte
# zero; an unknown payload that sets it is refused rather than silently skipped.
CRITICAL = 0x80


@dataclass(frozen=True, slots=True)
class Header:
    icookie: bytes
    rcookie: bytes
    next_payload: int
    exchange: int
    flags: int
    message_id: int
    length: int = 0
    version: int = ISAKMP_VERSION

    @property
    def encrypted(self) -> bool:
        return bool(self.flags & Flag.ENCRYPTION)

    def encode(self, length: int) -> bytes:
        w = Writer().raw(self.icookie).raw(self.rcookie).u8(self.next_payload).u8(self.version)
        return w.u8(self.exchange).u8(self.flags).u32(self.message_id).u32(length).getvalue()


def decode_header(data: bytes) -> Header:
    """Decode and check the 28-byte header against the datagram (``data`` is the whole datagram)."""
    r = Reader(data, where="ISAKMP header")
    icookie = r.take(8, "initiator cookie")
    rcookie = r.take(8, "responder cookie")
    next_payload = r.u8("next payload")
    version = r.u8("version")
    exchange = r.u8("exchange type")
    flags = r.u8("flags")
    message_id = r.u32("message id")
    length = r.u32("length")
    if version >> 4 != 1:
        raise DecodeError(f"ISAKMP major version {version >> 4} is not 1", 17, "ISAKMP header")
    if length != len(data):
        raise DecodeError(f"header length {length} but datagram has {len(data)} bytes", 24, "ISAKMP header")
    return Header(icookie, rcookie, next_payload, exchange, flags, message_id, length, version)


@dataclass(frozen=True, slots=True)
class RawPayload:
    """A decoded payload with its exact bytes as they were on the wire (generic header included).

    Hashes are computed over wire bytes: SAi_b and IDii_b are ``raw[4:]``, Quick Mode HASH(1) covers
    the raw bytes of every payload after HASH.
    """

    payload: Payload
    raw: bytes

    @property
    def body(self) -> bytes:
        return self.raw[GENERIC_HEADER:]


def decode_payloads(
    first: int, data: bytes, offset: int = 0, *, allow_trailing: bool = False, where: str = "payload chain"
) -> tuple[RawPayload, ...]:
    """Walk a payload chain starting with type ``first`` inside ``data[offset:]``.

    Bytes after the last payload are an error unless ``allow_trailing`` (encrypted bodies' padding).
    """
    r = Reader(data, offset, where=where)
    out: list[RawPayload] = []
    nxt = first
    while nxt != PayloadType.NONE:
        start = r.offset
        this = nxt
        nxt = r.u8("next payload")
        reserved = r.u8("payload reserved")
        length = r.u16("payload length")
        if length < GENERIC_HEADER:
            raise DecodeError(f"{name_of(PayloadType, this)} payload length {length} < 4", start, where)
        if length - GENERIC_HEADER > r.remaining:
            raise DecodeError(
                f"{name_of(PayloadType, this)} payload length {length} overruns the message", start, where
            )
        body = r.sub(length - GENERIC_HEADER, f"{name_of(PayloadType, this)} payload")
        payload = decode_payload(this, body)
        if reserved & CRITICAL and isinstance(payload, UnknownPayload):
            raise DecodeError(f"unknown critical payload type {this}", start, where)
        out.append(RawPayload(payload, data[start : start + length]))
    if r.remaining and not allow_trailing:
        raise DecodeError(f"{r.remaining} bytes after the last payload", r.offset, where)
    return tuple(out)


def encode_payloads(payloads: Sequence[Payload]) -> tuple[int, bytes]:
    """Encode a chain; returns (type of the first payload, bytes). Next-payload fields are filled in."""
    w = Writer()
    for i, p in enumerate(payloads):
        nxt = payloads[i + 1].payload_type if i + 1 < len(payloads) else PayloadType.NONE
        body = p.encode_body()
        if len(body) + GENERIC_HEADER > 0xFFFF:
            raise ValueError(f"{name_of(PayloadType, p.payload_type)} payload too long ({len(body)} bytes)")
        w.u8(nxt).u8(0).u16(GENERIC_HEADER + len(body)).raw(body)
    first = payloads[0].payload_type if payloads else PayloadType.NONE
    return first, w.getvalue()


def encode_payload(p: Payload) -> bytes:
    """One payload with a generic header whose next-payload is NONE (as hashed when alone)."""
    return encode_payloads([p])[1]


def encode_datagram(header: Header, body: bytes) -> bytes:
    """Header (length filled in) + an already encoded (maybe encrypted) body."""
    return header.encode(HEADER_SIZE + len(body)) + body


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded plaintext ISAKMP message."""

    header: Header
    payloads: tuple[RawPayload, ...]
    padding: int = 0  # bytes after the last payload that were accepted (and ignored)

    def all(self, cls: type[DecodedPayloadT]) -> list[DecodedPayloadT]:
        return [rp.payload for rp in self.payloads if isinstance(rp.payload, cls)]

    def first(self, cls: type[DecodedPayloadT]) -> DecodedPayloadT | None:
        for rp in self.payloads:
            if isinstance(rp.payload, cls):
                return rp.payload
        return None

    def raw_of(self, cls: type[object]) -> RawPayload | None:
        for rp in self.payloads:
            if isinstance(rp.payload, cls):
                return rp
        return None

    def types(self) -> list[int]:
        return [rp.payload.payload_type for rp in self.payloads]


def encode_message(header: Header, payloads: Sequence[Payload]) -> bytes:
    """A plaintext message: header.next_payload is taken from the first payload."""
    first, body = encode_payloads(payloads)
    h = Header(header.icookie, header.rcookie, first, header.exchange, header.flags, header.message_id)
    return encode_datagram(h, body)


def decode_message(data: bytes, *, allow_trailing: bool = False) -> Message:
    """Decode a plaintext datagram (its E flag must be clear).

    Bytes after the last payload (but inside the header's length, which must be the datagram's)
    are an error unless ``allow_trailing``; then :attr:`Message.padding` counts them.
    """
    header = decode_header(data)
    if header.encrypted:
        raise DecodeError("message is encrypted", 19, "ISAKMP header")
    payloads = decode_payloads(header.next_payload, data, HEADER_SIZE, allow_trailing=allow_trailing)
    return Message(header, payloads, len(data) - HEADER_SIZE - sum(len(rp.raw) for rp in payloads))


_SHORT: dict[int, str] = {
    PayloadType.SA: "SA",
    PayloadType.KE: "KE",
    PayloadType.ID: "ID",
    PayloadType.CERT: "CERT",
    PayloadType.CR: "CERTREQ",
    PayloadType.HASH: "HASH",
    PayloadType.SIG: "SIG",
    PayloadType.NONCE: "No",
    PayloadType.NOTIFICATION: "N",
    PayloadType.DELETE: "D",
    PayloadType.VENDOR_ID: "V",
    PayloadType.ATTRIBUTE: "CPRQ",
    PayloadType.NAT_D: "NAT-D",
    PayloadType.NAT_D_DRAFT: "NAT-D",
    PayloadType.NAT_OA: "NAT-OA",
    PayloadType.NAT_OA_DRAFT: "NAT-OA",
    PayloadType.FRAGMENT: "FRAG",
}


def summary(payloads: Iterable[Payload]) -> str:
    """Payload types in strongSwan's short notation: ``HASH SA No KE ID ID N(INITIAL_CONTACT)``."""
    out = []
    for p in payloads:
        name = _SHORT.get(p.payload_type, f"U{p.payload_type}")
        if isinstance(p, NotifyPayload):
            name += f"({name_of(NotifyType, p.notify_type)})"
        out.append(name)
    return " ".join(out)


# ---- payload rules (DESIGN.md principle 5: rules are data) -----------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    """How many payloads of one type a message may carry."""

    min: int = 0
    max: int = 1


def check_payloads(
    types: Iterable[int], rules: Mapping[int, Rule], what: str, *, allow_others: Iterable[int] = ()
) -> None:
    """Raise DecodeError naming ``what`` when the payload types break ``rules``.

    Types not in ``rules`` are allowed only when listed in ``allow_others`` (Vendor ID, Notify, ...).
    """
    counts: dict[int, int] = {}
    others = set(allow_others)
    for t in types:
        counts[t] = counts.get(t, 0) + 1
        if t not in rules and t not in others:
            raise DecodeError(f"unexpected {name_of(PayloadType, t)} payload", 0, what)
    for t, rule in rules.items():
        n = counts.get(t, 0)
        if n < rule.min:
            raise DecodeError(f"missing {name_of(PayloadType, t)} payload", 0, what)
        if n > rule.max:
            raise DecodeError(f"{n} {name_of(PayloadType, t)} payloads, at most {rule.max}", 0, what)
