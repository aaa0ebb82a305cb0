"""One frozen dataclass per ISAKMP payload (RFC 2408 section 3, RFC 2407 section 4.6, RFC 3947).

Each class knows its payload type, decodes its body from a :class:`Reader` restricted to exactly the
body (the 4-byte generic header is handled by :mod:`snakeswan.wire.message`) and encodes it back.
Numbers are stored as plain ints so that unknown values round-trip byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

from snakeswan.errors import DecodeError
from snakeswan.wire.attributes import Attribute, decode_attributes, encode_attributes
from snakeswan.wire.buffer import Reader, Writer
from snakeswan.wire.enums import Doi, PayloadType, ProtocolId

GENERIC_HEADER = 4


def _wrap(next_type: int, body: bytes) -> bytes:
    """Generic payload header + body (used for nested Proposal/Transform payloads)."""
    return Writer().u8(next_type).u8(0).u16(GENERIC_HEADER + len(body)).raw(body).getvalue()


def _nested(r: Reader, expected: int, what: str) -> list[Reader]:
    """Split a chain of nested payloads (proposals in an SA, transforms in a proposal)."""
    out: list[Reader] = []
    nxt = expected
    while nxt != PayloadType.NONE:
        if nxt != expected:
            raise DecodeError(f"{what} chain names payload type {nxt}", r.offset, r.where)
        start = r.offset
        nxt = r.u8(f"{what} next payload")
        r.u8(f"{what} reserved")
        length = r.u16(f"{what} length")
        if length < GENERIC_HEADER or length - GENERIC_HEADER > r.remaining:
            raise DecodeError(f"{what} length {length} is impossible", start, r.where)
        out.append(r.sub(length - GENERIC_HEADER, what))
    r.expect_end()
    return out


@dataclass(frozen=True, slots=True)
class Transform:
    number: int
    transform_id: int
    attributes: tuple[Attribute, ...] = ()

    def encode(self) -> bytes:
        w = Writer().u8(self.number).u8(self.transform_id).u16(0)
        encode_attributes(self.attributes, w)
        return w.getvalue()

    @classmethod
    def decode(cls, r: Reader) -> Transform:
        number = r.u8("transform number")
        tid = r.u8("transform id")
        r.u16("transform reserved")
        return cls(number, tid, decode_attributes(r))


@dataclass(frozen=True, slots=True)
class Proposal:
    number: int
    protocol: int
    spi: bytes
    transforms: tuple[Transform, ...]

    def encode(self) -> bytes:
        w = Writer().u8(self.number).u8(self.protocol).u8(len(self.spi)).u8(len(self.transforms))
        w.raw(self.spi)
        for i, t in enumerate(self.transforms):
            last = i == len(self.transforms) - 1
            w.raw(_wrap(PayloadType.NONE if last else PayloadType.TRANSFORM, t.encode()))
        return w.getvalue()

    @classmethod
    def decode(cls, r: Reader) -> Proposal:
        number = r.u8("proposal number")
        protocol = r.u8("protocol id")
        spi_size = r.u8("spi size")
        count = r.u8("number of transforms")
        spi = r.take(spi_size, "proposal spi")
        transforms = tuple(Transform.decode(t) for t in _nested(r, PayloadType.TRANSFORM, "transform"))
        if len(transforms) != count:
            raise DecodeError(f"proposal says {count} transforms, has {len(transforms)}", r.offset, r.where)
        return cls(number, protocol, spi, transforms)


@dataclass(frozen=True, slots=True)
class SaPayload:
    """Security Association payload; ``proposals`` sharing a number form one AND-ed proposal."""

    payload_type: ClassVar[int] = PayloadType.SA
    proposals: tuple[Proposal, ...]
    doi: int = Doi.IPSEC
    situation: int = 1  # SIT_IDENTITY_ONLY

    def encode_body(self) -> bytes:
        w = Writer().u32(self.doi).u32(self.situation)
        for i, p in enumerate(self.proposals):
            last = i == len(self.proposals) - 1
            w.raw(_wrap(PayloadType.NONE if last else PayloadType.PROPOSAL, p.encode()))
        return w.getvalue()

    @classmethod
    def decode_body(cls, r: Reader) -> SaPayload:
        doi = r.u32("SA DOI")
        situation = r.u32("SA situation")
        proposals = tuple(Proposal.decode(p) for p in _nested(r, PayloadType.PROPOSAL, "proposal"))
        return cls(proposals, doi, situation)


@dataclass(frozen=True, slots=True)
class _Opaque:
    """Base for payloads whose body is one opaque byte string."""

    data: bytes

    def encode_body(self) -> bytes:
        return self.data


@dataclass(frozen=True, slots=True)
class KePayload(_Opaque):
    payload_type: ClassVar[int] = PayloadType.KE

    @classmethod
    def decode_body(cls, r: Reader) -> KePayload:
        return cls(r.rest())


@dataclass(frozen=True, slots=True)
class NoncePayload(_Opaque):
    payload_type: ClassVar[int] = PayloadType.NONCE

    @classmethod
    def decode_body(cls, r: Reader) -> NoncePayload:
        return cls(r.rest())


@dataclass(frozen=True, slots=True)
class HashPayload(_Opaque):
    payload_type: ClassVar[int] = PayloadType.HASH

    @classmethod
    def decode_body(cls, r: Reader) -> HashPayload:
        return cls(r.rest())


@dataclass(frozen=True, slots=True)
class SigPayload(_Opaque):
    payload_type: ClassVar[int] = PayloadType.SIG

    @classmethod
    def decode_body(cls, r: Reader) -> SigPayload:
        return cls(r.rest())


@dataclass(frozen=True, slots=True)
class VendorIdPayload(_Opaque):
    payload_type: ClassVar[int] = PayloadType.VENDOR_ID

    @classmethod
    def decode_body(cls, r: Reader) -> VendorIdPayload:
        return cls(r.rest())


@dataclass(frozen=True, slots=True)
class IdPayload:
    """Identification (RFC 2407 4.6.2): phase 1 identities and phase 2 client IDs (proxy IDs)."""

    payload_type: ClassVar[int] = PayloadType.ID
    id_type: int
    data: bytes
    protocol: int = 0
    port: int = 0

    def encode_body(self) -> bytes:
        return Writer().u8(self.id_type).u8(self.protocol).u16(self.port).raw(self.data).getvalue()

    @classmethod
    def decode_body(cls, r: Reader) -> IdPayload:
        id_type = r.u8("ID type")
        protocol = r.u8("ID protocol")
        port = r.u16("ID port")
        return cls(id_type, r.rest(), protocol, port)


@dataclass(frozen=True, slots=True)
class CertPayload:
    payload_type: ClassVar[int] = PayloadType.CERT
    encoding: int
    data: bytes

    def encode_body(self) -> bytes:
        return bytes([self.encoding]) + self.data

    @classmethod
    def decode_body(cls, r: Reader) -> CertPayload:
        return cls(r.u8("cert encoding"), r.rest())


@dataclass(frozen=True, slots=True)
class CertRequestPayload:
    payload_type: ClassVar[int] = PayloadType.CR
    encoding: int
    authority: bytes = b""

    def encode_body(self) -> bytes:
        return bytes([self.encoding]) + self.authority

    @classmethod
    def decode_body(cls, r: Reader) -> CertRequestPayload:
        return cls(r.u8("cert type"), r.rest())


@dataclass(frozen=True, slots=True)
class NotifyPayload:
    payload_type: ClassVar[int] = PayloadType.NOTIFICATION
    notify_type: int
    protocol: int = ProtocolId.ISAKMP
    spi: bytes = b""
    data: bytes = b""
    doi: int = Doi.IPSEC

    def encode_body(self) -> bytes:
        w = Writer().u32(self.doi).u8(self.protocol).u8(len(self.spi)).u16(self.notify_type)
        return w.raw(self.spi).raw(self.data).getvalue()

    @classmethod
    def decode_body(cls, r: Reader) -> NotifyPayload:
        doi = r.u32("notify DOI")
        protocol = r.u8("notify protocol")
        spi_size = r.u8("notify spi size")
        ntype = r.u16("notify type")
        spi = r.take(spi_size, "notify spi")
        return cls(ntype, protocol, spi, r.rest(), doi)


@dataclass(frozen=True, slots=True)
class DeletePayload:
    payload_type: ClassVar[int] = PayloadType.DELETE
    protocol: int
    spis: tuple[bytes, ...]
    spi_size: int = 4
    doi: int = Doi.IPSEC

    def encode_body(self) -> bytes:
        w = Writer().u32(self.doi).u8(self.protocol).u8(self.spi_size).u16(len(self.spis))
        for spi in self.spis:
            if len(spi) != self.spi_size:
                raise ValueError(f"delete SPI of {len(spi)} bytes, spi size {self.spi_size}")
            w.raw(spi)
        return w.getvalue()

    @classmethod
    def decode_body(cls, r: Reader) -> DeletePayload:
        doi = r.u32("delete DOI")
        protocol = r.u8("delete protocol")
        spi_size = r.u8("delete spi size")
        count = r.u16("delete number of SPIs")
        spis = tuple(r.take(spi_size, "delete spi") for _ in range(count))
        r.expect_end()
        return cls(protocol, spis, spi_size, doi)


@dataclass(frozen=True, slots=True)
class NatDPayload:
    """NAT discovery hash; ``payload_type`` is 20 (RFC 3947) or 130 (drafts)."""

    data: bytes
    payload_type: int = PayloadType.NAT_D

    def encode_body(self) -> bytes:
        return self.data


@dataclass(frozen=True, slots=True)
class NatOaPayload:
    """NAT original address; ``payload_type`` is 21 (RFC 3947) or 131 (drafts)."""

    id_type: int
    address: bytes
    payload_type: int = PayloadType.NAT_OA

    def encode_body(self) -> bytes:
        return Writer().u8(self.id_type).u8(0).u16(0).raw(self.address).getvalue()


@dataclass(frozen=True, slots=True)
class AttributePayload:
    """Mode Config / XAUTH attributes (draft-ietf-ipsec-isakmp-mode-cfg)."""

    payload_type: ClassVar[int] = PayloadType.ATTRIBUTE
    message_type: int
    identifier: int
    attributes: tuple[Attribute, ...] = ()

    def encode_body(self) -> bytes:
        w = Writer().u8(self.message_type).u8(0).u16(self.identifier)
        encode_attributes(self.attributes, w)
        return w.getvalue()

    @classmethod
    def decode_body(cls, r: Reader) -> AttributePayload:
        mtype = r.u8("attribute message type")
        r.u8("attribute reserved")
        ident = r.u16("attribute identifier")
        return cls(mtype, ident, decode_attributes(r, padded=True))


@dataclass(frozen=True, slots=True)
class FragmentPayload:
    """Cisco-style IKEv1 fragment (payload type 132): id, number, flags (1 = last)."""

    payload_type: ClassVar[int] = PayloadType.FRAGMENT
    fragment_id: int
    number: int
    last: bool
    data: bytes

    def encode_body(self) -> bytes:
        return Writer().u16(self.fragment_id).u8(self.number).u8(int(self.last)).raw(self.data).getvalue()

    @classmethod
    def decode_body(cls, r: Reader) -> FragmentPayload:
        fid = r.u16("fragment id")
        num = r.u8("fragment number")
        flags = r.u8("fragment flags")
        return cls(fid, num, bool(flags & 1), r.rest())


@dataclass(frozen=True, slots=True)
class UnknownPayload:
    """A payload type we have no class for, kept as raw bytes so that it re-encodes unchanged."""

    payload_type: int
    body: bytes = field(default=b"")

    def encode_body(self) -> bytes:
        return self.body


Payload = (
    SaPayload
    | KePayload
    | NoncePayload
    | HashPayload
    | SigPayload
    | VendorIdPayload
    | IdPayload
    | CertPayload
    | CertRequestPayload
    | NotifyPayload
    | DeletePayload
    | NatDPayload
    | NatOaPayload
    | AttributePayload
    | FragmentPayload
    | UnknownPayload
)


def _natd(ptype: int) -> Callable[[Reader], Payload]:
    return lambda r: NatDPayload(r.rest(), ptype)


def _natoa(ptype: int) -> Callable[[Reader], Payload]:
    def dec(r: Reader) -> Payload:
        id_type = r.u8("NAT-OA ID type")
        r.take(3, "NAT-OA reserved")
        return NatOaPayload(id_type, r.rest(), ptype)

    return dec


DECODERS: dict[int, Callable[[Reader], Payload]] = {
    PayloadType.SA: SaPayload.decode_body,
    PayloadType.KE: KePayload.decode_body,
    PayloadType.ID: IdPayload.decode_body,
    PayloadType.CERT: CertPayload.decode_body,
    PayloadType.CR: CertRequestPayload.decode_body,
    PayloadType.HASH: HashPayload.decode_body,
    PayloadType.SIG: SigPayload.decode_body,
    PayloadType.NONCE: NoncePayload.decode_body,
    PayloadType.NOTIFICATION: NotifyPayload.decode_body,
    PayloadType.DELETE: DeletePayload.decode_body,
    PayloadType.VENDOR_ID: VendorIdPayload.decode_body,
    PayloadType.ATTRIBUTE: AttributePayload.decode_body,
    PayloadType.NAT_D: _natd(PayloadType.NAT_D),
    PayloadType.NAT_D_DRAFT: _natd(PayloadType.NAT_D_DRAFT),
    PayloadType.NAT_OA: _natoa(PayloadType.NAT_OA),
    PayloadType.NAT_OA_DRAFT: _natoa(PayloadType.NAT_OA_DRAFT),
    PayloadType.FRAGMENT: FragmentPayload.decode_body,
}


def decode_payload(payload_type: int, r: Reader) -> Payload:
    """Decode one payload body; unknown types become :class:`UnknownPayload`."""
    dec = DECODERS.get(payload_type)
    if dec is None:
        return UnknownPayload(payload_type, r.rest())
    p = dec(r)
    r.expect_end()
    return p


DecodedPayloadT = TypeVar("DecodedPayloadT")
