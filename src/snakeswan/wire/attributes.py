"""ISAKMP data attributes (RFC 2408 section 3.3): TV (AF=1, 2-byte value) and TLV (AF=0).

Used by transforms (phase 1 and phase 2 SA attributes) and by the Attribute payload (Mode Config,
XAUTH). An attribute remembers whether it was TV or TLV so that it re-encodes byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from snakeswan.errors import DecodeError
from snakeswan.wire.buffer import Reader, Writer

_AF = 0x8000


@dataclass(frozen=True, slots=True)
class Attribute:
    """One data attribute. ``value`` is the raw value bytes (2 bytes for TV)."""

    type: int
    value: bytes
    tv: bool

    @classmethod
    def basic(cls, attr_type: int, value: int) -> Attribute:
        """A TV attribute; ``value`` must fit in 16 bits."""
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"TV attribute {attr_type} value {value} does not fit 16 bits")
        return cls(attr_type, value.to_bytes(2, "big"), True)

    @classmethod
    def variable(cls, attr_type: int, value: bytes) -> Attribute:
        """A TLV attribute carrying ``value`` as is."""
        if len(value) > 0xFFFF:
            raise ValueError(f"TLV attribute {attr_type} too long ({len(value)} bytes)")
        return cls(attr_type, value, False)

    @classmethod
    def integer(cls, attr_type: int, value: int) -> Attribute:
        """TV when the number fits 16 bits, else a 4-byte (or longer) TLV, as peers encode lifetimes."""
        if 0 <= value <= 0xFFFF:
            return cls.basic(attr_type, value)
        length = max(4, (value.bit_length() + 7) // 8)
        return cls.variable(attr_type, value.to_bytes(length, "big"))

    def as_int(self) -> int:
        return int.from_bytes(self.value, "big")

    def encode(self, w: Writer) -> None:
        if self.tv:
            w.u16(_AF | self.type).raw(self.value)
        else:
            w.u16(self.type).u16(len(self.value)).raw(self.value)


def decode_attributes(r: Reader, *, padded: bool = False) -> tuple[Attribute, ...]:
    """Decode attributes until ``r`` is exhausted. ``padded``: fewer than 4 zero bytes at the end
    are padding, not an attribute (Libreswan pads its Mode Config attribute payloads to 4 bytes)."""
    out: list[Attribute] = []
    while r.remaining:
        start = r.offset
        if padded and r.remaining < 4:
            if any(r.take(r.remaining, "attribute padding")):
                raise DecodeError("attribute payload ends in a partial attribute", start, r.where)
            break
        head = r.u16("attribute type")
        if head & _AF:
            out.append(Attribute(head & 0x7FFF, r.take(2, "TV attribute value"), True))
        else:
            length = r.u16("attribute length")
            if length > r.remaining:
                raise DecodeError(
                    f"TLV attribute {head} length {length} overruns its payload", start, r.where
                )
            out.append(Attribute(head, r.take(length, "TLV attribute value"), False))
    return tuple(out)


def encode_attributes(attrs: Iterable[Attribute], w: Writer) -> None:
    for a in attrs:
        a.encode(w)


def find(attrs: Iterable[Attribute], attr_type: int) -> Attribute | None:
    for a in attrs:
        if a.type == attr_type:
            return a
    return None
