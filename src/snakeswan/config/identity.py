"""IKE identities (RFC 2407 4.6.2): parsing strongSwan's text syntax, rendering, matching.

strongSwan (``identification_create_from_string``) decides the type from the text:

- ``%any`` (also ``%any6``, ``*``): the wildcard identity, matches any peer;
- an IPv4/IPv6 literal: ``ID_IPV4_ADDR`` / ``ID_IPV6_ADDR`` (4 or 16 bytes);
- text containing ``=``: an X.500 distinguished name ``C=CH, O=sw-lab, CN=x``, DER encoded;
- ``@fqdn``: ``ID_FQDN``; ``@@user``: ``ID_USER_FQDN``; ``@#0a0b``: ``ID_KEY_ID`` (hex);
- ``user@host``: ``ID_USER_FQDN``; any other name: ``ID_FQDN``;
- ``<type>:<value>`` with type ``ipv4 ipv6 rfc822 email userfqdn fqdn dns asn1dn asn1gn keyid`` or
  ``{<number>}``; a value starting with ``#`` is hex, anything else is taken as text. Unlike
  strongSwan, ``ipv4:``/``ipv6:``/``asn1dn:`` text values are converted (an address, a DN), not kept
  as raw text, since that is what a user means.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID, ObjectIdentifier

from snakeswan.errors import ConfigError
from snakeswan.wire.enums import IdType

ID_ANY = 0
"""``id_type`` of the wildcard identity ``%any`` (strongSwan's ``ID_ANY``); never sent on the wire."""

# Match qualities, after strongSwan's id_match_t: the higher, the better.
MATCH_NONE = 0
MATCH_ANY = 1
MATCH_MAX_WILDCARDS = 2
MATCH_ONE_WILDCARD = 19
MATCH_PERFECT = 20

_PRINTABLE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")

# (names accepted when parsing, the first is used when rendering), OID, string type (None: Printable
# when possible, else UTF8 - as strongSwan's atodn does).
_DN_ATTRS: tuple[tuple[tuple[str, ...], ObjectIdentifier, _ASN1Type | None], ...] = (
    (("C",), NameOID.COUNTRY_NAME, None),
    (("ST", "S"), NameOID.STATE_OR_PROVINCE_NAME, None),
    (("L",), NameOID.LOCALITY_NAME, None),
    (("O",), NameOID.ORGANIZATION_NAME, None),
    (("OU",), NameOID.ORGANIZATIONAL_UNIT_NAME, None),
    (("CN",), NameOID.COMMON_NAME, None),
    (("E", "Email", "emailAddress"), NameOID.EMAIL_ADDRESS, _ASN1Type.IA5String),
    (("DC",), NameOID.DOMAIN_COMPONENT, _ASN1Type.IA5String),
    (("serialNumber",), NameOID.SERIAL_NUMBER, None),
    (("SN", "surname"), NameOID.SURNAME, None),
    (("G", "GN", "givenName"), NameOID.GIVEN_NAME, None),
    (("T", "title"), NameOID.TITLE, None),
    (("UID",), NameOID.USER_ID, None),
)
_DN_BY_NAME = {name.lower(): (names[0], oid, kind) for names, oid, kind in _DN_ATTRS for name in names}
_DN_NAME_BY_OID = {oid.dotted_string: names[0] for names, oid, _ in _DN_ATTRS}
_DN_ACCEPTED = ", ".join(names[0] for names, _, _ in _DN_ATTRS)

_PREFIXES = {
    "ipv4": IdType.IPV4_ADDR,
    "ipv6": IdType.IPV6_ADDR,
    "rfc822": IdType.USER_FQDN,
    "email": IdType.USER_FQDN,
    "userfqdn": IdType.USER_FQDN,
    "fqdn": IdType.FQDN,
    "dns": IdType.FQDN,
    "asn1dn": IdType.DER_ASN1_DN,
    "asn1gn": IdType.DER_ASN1_GN,
    "keyid": IdType.KEY_ID,
}
_ANY_TEXTS = frozenset({"%any", "%any6", "*", ""})


@dataclass(frozen=True, slots=True)
class Identity:
    """An IKE identity: the ID payload's type (``IdType`` number, or ``ID_ANY``) and its data."""

    id_type: int
    data: bytes

    @classmethod
    def parse(cls, text: str) -> Identity:
        """Parse strongSwan's identity syntax (module docstring); raises ``ConfigError``."""
        text = text.strip()
        if text in _ANY_TEXTS:
            return ANY_IDENTITY
        prefixed = _parse_prefixed(text)
        if prefixed is not None:
            return prefixed
        if "=" in text and not text.startswith("@"):
            return cls(IdType.DER_ASN1_DN, encode_dn(text))
        if text.startswith("@#"):
            return cls(IdType.KEY_ID, _hex(text[2:], text))
        if text.startswith("@@"):
            return cls(IdType.USER_FQDN, text[2:].encode())
        if text.startswith("@"):
            return cls(IdType.FQDN, text[1:].encode())
        if "@" in text:
            return cls(IdType.USER_FQDN, text.encode())
        try:
            return cls.from_address(ipaddress.ip_address(text))
        except ValueError:
            return cls(IdType.FQDN, text.encode())

    @classmethod
    def from_address(cls, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Identity:
        """The ``ID_IPV4_ADDR`` / ``ID_IPV6_ADDR`` identity of an address."""
        kind = IdType.IPV4_ADDR if address.version == 4 else IdType.IPV6_ADDR
        return cls(kind, address.packed)

    @property
    def is_any(self) -> bool:
        return self.id_type == ID_ANY

    def __str__(self) -> str:
        return _render(self)

    def matches(self, other: Identity) -> int:
        """How well ``other`` (a concrete identity) matches ``self`` (a pattern, may hold wildcards).

        Returns one of the ``MATCH_*`` qualities, like strongSwan's ``identification_t.matches``:
        ``%any`` gives ``MATCH_ANY``, an equal identity ``MATCH_PERFECT``, a ``*`` pattern
        (``*.example.com``, ``*@example.com``, DN attribute value ``*``) less than perfect.
        """
        if self.is_any:
            return MATCH_ANY
        if self.id_type != other.id_type:
            return MATCH_NONE
        if self.id_type in (IdType.FQDN, IdType.USER_FQDN):
            return _match_text(self.data, other.data)
        if self.id_type == IdType.DER_ASN1_DN:
            return _match_dn(self.data, other.data)
        return MATCH_PERFECT if self.data == other.data else MATCH_NONE


ANY_IDENTITY = Identity(ID_ANY, b"")


def _hex(digits: str, text: str) -> bytes:
    try:
        return bytes.fromhex(digits.replace(":", ""))
    except ValueError:
        raise ConfigError(f"expected hex digits after '#' in identity {text!r}") from None


def _parse_prefixed(text: str) -> Identity | None:
    head, sep, value = text.partition(":")
    if not sep:
        return None
    if head.startswith("{") and head.endswith("}") and head[1:-1].isdigit():
        kind = int(head[1:-1])
    elif head.lower() in _PREFIXES:
        kind = _PREFIXES[head.lower()]
    else:
        return None  # an IPv6 literal, a DN value with ':' ...
    if value.startswith("#"):
        return Identity(kind, _hex(value[1:], text))
    if kind in (IdType.IPV4_ADDR, IdType.IPV6_ADDR):
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise ConfigError(f"expected an IP address in identity {text!r}") from None
        if (address.version == 4) != (kind == IdType.IPV4_ADDR):
            raise ConfigError(f"address family does not match the prefix in identity {text!r}")
        return Identity.from_address(address)
    if kind == IdType.DER_ASN1_DN:
        return Identity(kind, encode_dn(value))
    return Identity(kind, value.encode())


def _split_dn(text: str) -> list[tuple[str, str]]:
    """``C=CH, O=x`` (or strongSwan's alternative ``/C=CH/O=x``) -> ``[("C", "CH"), ("O", "x")]``."""
    sep = "/" if text.startswith("/") else ","
    parts: list[str] = []
    current = ""
    escaped = False
    for char in text.lstrip("/") if sep == "/" else text:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == sep:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    pairs = []
    for part in parts:
        name, eq, value = part.partition("=")
        if not eq or not name.strip() or not value.strip():
            raise ConfigError(f"expected attr=value in distinguished name {text!r}, got {part.strip()!r}")
        pairs.append((name.strip(), value.strip()))
    return pairs


def encode_dn(text: str) -> bytes:
    """DER encoding of a strongSwan DN string, attributes kept in the order written.

    String types as strongSwan's ``atodn``: PrintableString when the value allows it, else
    UTF8String; IA5String for ``E`` and ``DC``.
    """
    rdns = []
    for name, value in _split_dn(text):
        known = _DN_BY_NAME.get(name.lower())
        if known is None:
            raise ConfigError(
                f"unknown attribute {name!r} in distinguished name {text!r}; accepted: {_DN_ACCEPTED}"
            )
        _, oid, kind = known
        if kind is None:
            kind = _ASN1Type.PrintableString if set(value) <= _PRINTABLE else _ASN1Type.UTF8String
        elif not value.isascii():
            raise ConfigError(f"attribute {name} of distinguished name {text!r} must be ASCII")
        try:
            attr = x509.NameAttribute(oid, value, _type=kind)
        except ValueError as exc:
            raise ConfigError(f"bad attribute {name}={value!r} in distinguished name: {exc}") from None
        rdns.append(x509.RelativeDistinguishedName([attr]))
    return x509.Name(rdns).public_bytes()


def _der_items(data: bytes) -> list[tuple[int, bytes]]:
    """Split DER ``data`` into (tag, value) pairs; raises ``ValueError`` when malformed."""
    items = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise ValueError("truncated DER")
        tag, length = data[pos], data[pos + 1]
        pos += 2
        if length & 0x80:
            count = length & 0x7F
            if count == 0 or count > 4 or pos + count > len(data):
                raise ValueError("bad DER length")
            length = int.from_bytes(data[pos : pos + count], "big")
            pos += count
        if pos + length > len(data):
            raise ValueError("truncated DER")
        items.append((tag, data[pos : pos + length]))
        pos += length
    return items


def _oid_text(body: bytes) -> str:
    if not body:
        raise ValueError("empty OID")
    arcs = [body[0] // 40, body[0] % 40] if body[0] < 80 else [2, body[0] - 80]
    value = 0
    for byte in body[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    return ".".join(map(str, arcs))


def decode_dn(data: bytes) -> list[tuple[str, str]]:
    """``[(attribute name or dotted OID, value)]`` of a DER Name; raises ``ValueError`` if malformed."""
    outer = _der_items(data)
    if len(outer) != 1 or outer[0][0] != 0x30:
        raise ValueError("a Name must be one SEQUENCE")
    pairs = []
    for set_tag, rdn in _der_items(outer[0][1]):
        if set_tag != 0x31:
            raise ValueError("an RDN must be a SET")
        for seq_tag, atv in _der_items(rdn):
            fields = _der_items(atv)
            if seq_tag != 0x30 or len(fields) != 2 or fields[0][0] != 0x06:
                raise ValueError("bad AttributeTypeAndValue")
            dotted = _oid_text(fields[0][1])
            value = fields[1][1].decode("utf-8", errors="replace")
            pairs.append((_DN_NAME_BY_OID.get(dotted, dotted), value))
    return pairs


def _match_text(pattern: bytes, other: bytes) -> int:
    if pattern.lower() == other.lower():
        return MATCH_PERFECT
    if pattern.startswith(b"*") and other.lower().endswith(pattern[1:].lower()):
        return MATCH_ONE_WILDCARD
    return MATCH_NONE


def _match_dn(pattern: bytes, other: bytes) -> int:
    if pattern == other:
        return MATCH_PERFECT
    try:
        mine, theirs = decode_dn(pattern), decode_dn(other)
    except ValueError:
        return MATCH_NONE
    if len(mine) != len(theirs):
        return MATCH_NONE
    wildcards = 0
    for (my_name, my_value), (their_name, their_value) in zip(mine, theirs, strict=True):
        if my_name != their_name:
            return MATCH_NONE
        if my_value == "*":
            wildcards += 1
        elif my_value.lower() != their_value.lower():
            return MATCH_NONE
    return max(MATCH_PERFECT - wildcards, MATCH_MAX_WILDCARDS)


def _text(data: bytes) -> str | None:
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() and text.strip() == text and text else None


_RENDER_PREFIX: dict[int, str] = {IdType.FQDN: "fqdn", IdType.USER_FQDN: "email", IdType.KEY_ID: "keyid"}


def _reparses(text: str, identity: Identity) -> bool:
    try:
        return Identity.parse(text) == identity
    except ConfigError:
        return False


@functools.lru_cache(maxsize=4096)  # an SA's IDs are rendered several times (index, events, logs)
def _render(identity: Identity) -> str:
    kind, data = identity.id_type, identity.data
    if kind == ID_ANY:
        return "%any"
    if kind in (IdType.IPV4_ADDR, IdType.IPV6_ADDR) and len(data) in (4, 16):
        return str(ipaddress.ip_address(data))
    if kind == IdType.DER_ASN1_DN:
        try:
            return ", ".join(f"{name}={value}" for name, value in decode_dn(data))
        except ValueError:
            return f"asn1dn:#{data.hex()}"
    text = _text(data)
    if text is not None and not text.startswith("#"):
        if kind == IdType.FQDN:
            return text if _reparses(text, identity) else f"@{text}"
        if kind == IdType.USER_FQDN:
            return text if _reparses(text, identity) else f"@@{text}"
        if kind == IdType.KEY_ID:
            return f"keyid:{text}"
    prefix = _RENDER_PREFIX.get(kind)
    head = prefix or ("asn1gn" if kind == IdType.DER_ASN1_GN else f"{{{kind}}}")
    return f"{head}:#{data.hex()}"
