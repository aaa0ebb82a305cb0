"""Certificate path validation (crypto.certs)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization

from snakeswan.crypto.certs import CertError, parse_certificate, validate_chain
from tests.pki import NOW, build_cert, make_key, name


def _ca(cn: str, n: int, **kw: object):  # type: ignore[no-untyped-def]
    key = make_key("ecdsa", n)
    return build_cert(name(cn), key, name(cn), key, ca=True, **kw), key  # type: ignore[arg-type]


def test_chain_to_trusted_ca_and_through_an_intermediate() -> None:
    root, root_key = _ca("root", 10)
    sub_key = make_key("ecdsa", 11)
    sub = build_cert(name("sub"), sub_key, name("root"), root_key, ca=True)
    leaf = build_cert(name("leaf"), make_key("ecdsa", 12), name("root"), root_key)
    assert validate_chain(leaf, [], [root], NOW) == [leaf, root]
    leaf2 = build_cert(name("leaf2"), make_key("ecdsa", 12), name("sub"), sub_key)
    assert validate_chain(leaf2, [sub], [root], NOW) == [leaf2, sub, root]
    with pytest.raises(CertError) as e:
        validate_chain(leaf2, [], [root], NOW)  # the intermediate is missing
    assert e.value.untrusted


def test_bad_paths() -> None:
    root, root_key = _ca("root", 10)
    leaf = build_cert(name("leaf"), make_key("ecdsa", 12), name("root"), root_key)
    other, _ = _ca("other", 13)
    with pytest.raises(CertError) as e:
        validate_chain(leaf, [], [other], NOW)
    assert e.value.untrusted
    impostor, _ = _ca("root", 14)  # the same name, another key
    with pytest.raises(CertError, match="not signed") as e:
        validate_chain(leaf, [], [impostor], NOW)
    assert not e.value.untrusted
    with pytest.raises(CertError, match="expired"):
        validate_chain(leaf, [], [root], NOW + dt.timedelta(days=400))
    with pytest.raises(CertError, match="not valid before"):
        validate_chain(leaf, [], [root], NOW - dt.timedelta(days=2))
    not_ca_key = make_key("ecdsa", 15)
    not_ca = build_cert(name("notca"), not_ca_key, name("notca"), not_ca_key)
    issued = build_cert(name("x"), make_key("ecdsa", 12), name("notca"), not_ca_key)
    with pytest.raises(CertError, match="not a CA"):
        validate_chain(issued, [], [not_ca], NOW)
    no_bc, no_bc_key = _ca("nobc", 16, basic_constraints=False)
    with pytest.raises(CertError, match="not a CA"):
        validate_chain(
            build_cert(name("y"), make_key("ecdsa", 12), name("nobc"), no_bc_key), [], [no_bc], NOW
        )


def test_pinned_end_entity_and_parsing() -> None:
    _, root_key = _ca("root", 10)
    leaf = build_cert(name("leaf"), make_key("ecdsa", 12), name("root"), root_key)
    assert validate_chain(leaf, [], [leaf], NOW) == [leaf]
    pem = leaf.public_bytes(serialization.Encoding.PEM)
    der = leaf.public_bytes(serialization.Encoding.DER)
    assert parse_certificate(pem) == parse_certificate(der) == leaf
    with pytest.raises(CertError):
        parse_certificate(b"\x30\x03\x02\x01\x00")
