"""Identity parsing as strongSwan does, DER DNs, rendering back, wildcard matching."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from snakeswan.config.identity import (
    ANY_IDENTITY,
    ID_ANY,
    MATCH_ANY,
    MATCH_NONE,
    MATCH_PERFECT,
    Identity,
    decode_dn,
)
from snakeswan.errors import ConfigError
from snakeswan.wire.enums import IdType


def _name(*attrs: tuple[x509.ObjectIdentifier, str, _ASN1Type]) -> bytes:
    return x509.Name(
        [
            x509.RelativeDistinguishedName([x509.NameAttribute(oid, value, _type=kind)])
            for oid, value, kind in attrs
        ]
    ).public_bytes()


@pytest.mark.parametrize(
    ("text", "id_type", "data"),
    [
        ("10.231.0.1", IdType.IPV4_ADDR, bytes([10, 231, 0, 1])),
        ("2001:db8::1", IdType.IPV6_ADDR, ipaddress.IPv6Address("2001:db8::1").packed),
        ("@gw.example.com", IdType.FQDN, b"gw.example.com"),
        ("gw.example.com", IdType.FQDN, b"gw.example.com"),
        ("@vpn", IdType.FQDN, b"vpn"),
        ("alice@example.com", IdType.USER_FQDN, b"alice@example.com"),
        ("@@alice", IdType.USER_FQDN, b"alice"),
        ("keyid:#0a0b0c", IdType.KEY_ID, b"\x0a\x0b\x0c"),
        ("keyid:mykey", IdType.KEY_ID, b"mykey"),
        ("@#cafe", IdType.KEY_ID, b"\xca\xfe"),
        ("fqdn:gw.example.com", IdType.FQDN, b"gw.example.com"),
        ("email:bob@example.com", IdType.USER_FQDN, b"bob@example.com"),
        ("ipv4:10.0.0.1", IdType.IPV4_ADDR, bytes([10, 0, 0, 1])),
        ("ipv4:#0a000001", IdType.IPV4_ADDR, bytes([10, 0, 0, 1])),
        ("{11}:#01", IdType.KEY_ID, b"\x01"),
    ],
)
def test_parse_types(text: str, id_type: int, data: bytes) -> None:
    identity = Identity.parse(text)
    assert (identity.id_type, identity.data) == (id_type, data)


@pytest.mark.parametrize("text", ["%any", "%any6", "*", "  %any  "])
def test_wildcard(text: str) -> None:
    identity = Identity.parse(text)
    assert identity == ANY_IDENTITY and identity.is_any and identity.id_type == ID_ANY
    assert str(identity) == "%any"


def test_dn_der_matches_cryptography_encoding() -> None:
    identity = Identity.parse("C=CH, O=sw-lab, CN=x")
    assert identity.id_type == IdType.DER_ASN1_DN
    printable = _ASN1Type.PrintableString
    assert identity.data == _name(
        (NameOID.COUNTRY_NAME, "CH", printable),
        (NameOID.ORGANIZATION_NAME, "sw-lab", printable),
        (NameOID.COMMON_NAME, "x", printable),
    )


def test_dn_keeps_order_and_string_types() -> None:
    text = "CN=gw, OU=Ops, O=Zürich AG, L=Bern, ST=BE, C=CH, E=gw@example.com, DC=example, serialNumber=42"
    identity = Identity.parse(text)
    printable, utf8, ia5 = _ASN1Type.PrintableString, _ASN1Type.UTF8String, _ASN1Type.IA5String
    assert identity.data == _name(
        (NameOID.COMMON_NAME, "gw", printable),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "Ops", printable),
        (NameOID.ORGANIZATION_NAME, "Zürich AG", utf8),  # not printable: UTF8String, as strongSwan
        (NameOID.LOCALITY_NAME, "Bern", printable),
        (NameOID.STATE_OR_PROVINCE_NAME, "BE", printable),
        (NameOID.COUNTRY_NAME, "CH", printable),
        (NameOID.EMAIL_ADDRESS, "gw@example.com", ia5),
        (NameOID.DOMAIN_COMPONENT, "example", ia5),
        (NameOID.SERIAL_NUMBER, "42", printable),
    )
    assert str(identity) == text


def test_dn_aliases_and_slash_syntax() -> None:
    assert Identity.parse("emailAddress=a@b.c, CN=x") == Identity.parse("E=a@b.c, CN=x")
    assert Identity.parse("/C=CH/O=sw-lab/CN=x") == Identity.parse("C=CH, O=sw-lab, CN=x")
    assert Identity.parse("C=CH,O=sw-lab,CN=x") == Identity.parse("C=CH, O=sw-lab, CN=x")
    assert decode_dn(Identity.parse("C=CH, CN=a b").data) == [("C", "CH"), ("CN", "a b")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("C=CH, XX=foo", "unknown attribute 'XX'"),
        ("C=CHE, CN=x", "bad attribute C"),
        ("C=CH, CN", "expected attr=value"),
        ("keyid:#zz", "expected hex digits"),
        ("ipv4:not-an-ip", "expected an IP address"),
        ("ipv6:10.0.0.1", "address family"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Identity.parse(text)


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("10.231.0.1", "10.231.0.1"),
        ("2001:db8::1", "2001:db8::1"),
        ("@gw.example.com", "gw.example.com"),
        ("alice@example.com", "alice@example.com"),
        ("@@alice", "@@alice"),
        ("keyid:mykey", "keyid:mykey"),
        ("@#0102", "keyid:#0102"),
        ("C=CH, O=sw-lab, CN=x", "C=CH, O=sw-lab, CN=x"),
        ("@10.0.0.1", "@10.0.0.1"),  # an FQDN that looks like an address keeps its @
        ("fqdn:#ff00", "fqdn:#ff00"),
    ],
)
def test_render_and_round_trip(text: str, rendered: str) -> None:
    identity = Identity.parse(text)
    assert str(identity) == rendered
    assert Identity.parse(str(identity)) == identity


def test_render_unknown_type_round_trips() -> None:
    identity = Identity(200, b"\x01\x02")
    assert str(identity) == "{200}:#0102"
    assert Identity.parse(str(identity)) == identity


def test_matches() -> None:
    gw = Identity.parse("gw.example.com")
    assert Identity.parse("%any").matches(gw) == MATCH_ANY
    assert gw.matches(Identity.parse("GW.example.com")) == MATCH_PERFECT
    assert MATCH_ANY < Identity.parse("*.example.com").matches(gw) < MATCH_PERFECT
    assert Identity.parse("*.example.org").matches(gw) == MATCH_NONE
    assert Identity.parse("10.0.0.1").matches(gw) == MATCH_NONE
    assert (
        MATCH_ANY < Identity.parse("*@example.com").matches(Identity.parse("bob@example.com")) < MATCH_PERFECT
    )
    dn = Identity.parse("C=CH, O=sw-lab, CN=x")
    assert Identity.parse("C=CH, O=SW-LAB, CN=x").matches(dn) == MATCH_PERFECT
    assert MATCH_ANY < Identity.parse("C=CH, O=sw-lab, CN=*").matches(dn) < MATCH_PERFECT
    assert Identity.parse("C=CH, O=other, CN=*").matches(dn) == MATCH_NONE
