"""Certificate path validation (crypto.certs)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from snakeswan.crypto.certs import MAX_PATH, CertError, parse_certificate, validate_chain
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


def _leaf_with(issuer_key, *exts: tuple[x509.ExtensionType, bool]):  # type: ignore[no-untyped-def]
    key = make_key("ecdsa", 12)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name("ext"))
        .issuer_name(name("root"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
    )
    for ext, critical in exts:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def test_ipsec_policy_not_the_web_pki() -> None:
    """No SAN, no EKU (or a TLS-only one), no key identifiers: strongSwan accepts these for IKE."""
    root, root_key = _ca("root", 10)
    bare = _leaf_with(root_key)
    assert validate_chain(bare, [], [root], NOW) == [bare, root]
    server_only = _leaf_with(root_key, (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False))
    assert validate_chain(server_only, [], [root], NOW) == [server_only, root]


def test_checks_the_verifier_adds_or_keeps() -> None:
    root, root_key = _ca("root", 10)
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    with pytest.raises(CertError, match="critical"):
        validate_chain(_leaf_with(root_key, (unknown, True)), [], [root], NOW)
    no_sign = x509.KeyUsage(False, False, True, False, False, False, False, False, False)
    with pytest.raises(CertError, match="digitalSignature"):
        validate_chain(_leaf_with(root_key, (no_sign, True)), [], [root], NOW)
    # a CA whose keyUsage does not allow certificate signing, and a path length constraint
    bad_ku_key = make_key("ecdsa", 17)
    only_crl = x509.KeyUsage(False, False, False, False, False, False, True, False, False)
    bad_ku = (
        x509.CertificateBuilder()
        .subject_name(name("badku"))
        .issuer_name(name("badku"))
        .public_key(bad_ku_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(only_crl, critical=True)
        .sign(bad_ku_key, hashes.SHA256())
    )
    leaf = build_cert(name("z"), make_key("ecdsa", 12), name("badku"), bad_ku_key)
    with pytest.raises(CertError, match="keyCertSign"):
        validate_chain(leaf, [], [bad_ku], NOW)
    sub_key = make_key("ecdsa", 11)
    zero = (
        x509.CertificateBuilder()
        .subject_name(name("root"))
        .issuer_name(name("root"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    sub = build_cert(name("sub"), sub_key, name("root"), root_key, ca=True)
    leaf2 = build_cert(name("leaf2"), make_key("ecdsa", 12), name("sub"), sub_key)
    assert validate_chain(leaf2, [sub], [root], NOW) == [leaf2, sub, root]
    with pytest.raises(CertError, match="path length") as e:
        validate_chain(leaf2, [sub], [zero], NOW)  # pathLenConstraint 0: no CA below it
    assert not e.value.untrusted


def test_at_most_max_path_intermediates() -> None:
    root, root_key = _ca("root", 60)
    issuer_name, issuer_key, chain = name("root"), root_key, []
    for i in range(MAX_PATH + 1):
        key = make_key("ecdsa", 61 + i)
        chain.append(build_cert(name(f"i{i}"), key, issuer_name, issuer_key, ca=True))
        issuer_name, issuer_key = name(f"i{i}"), key
        leaf = build_cert(name("leaf"), make_key("ecdsa", 12), issuer_name, issuer_key)
        if i + 1 <= MAX_PATH:
            assert len(validate_chain(leaf, chain, [root], NOW)) == i + 3
        else:
            with pytest.raises(CertError, match="max depth"):
                validate_chain(leaf, chain, [root], NOW)
