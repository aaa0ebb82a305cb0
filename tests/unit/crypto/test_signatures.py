"""Phase 1 signatures: RSA PKCS#1 v1.5 without DigestInfo, ECDSA r|s (RFC 4754)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils

from snakeswan.crypto import signatures
from snakeswan.errors import CryptoError
from snakeswan.wire.enums import AuthMethod
from tests.pki import make_key

HASH_I = bytes(range(32))


def test_rsa_is_pkcs1_type1_of_the_raw_hash() -> None:
    """Known structure: s^e mod n = 00 01 FF..FF 00 | HASH (no DigestInfo), RFC 2409 5.1."""
    key = make_key("rsa")
    assert isinstance(key, rsa.RSAPrivateKey)
    sig = signatures.sign(key, HASH_I)
    pub = key.public_key().public_numbers()
    k = (pub.n.bit_length() + 7) // 8
    block = pow(int.from_bytes(sig, "big"), pub.e, pub.n).to_bytes(k, "big")
    assert block == b"\x00\x01" + b"\xff" * (k - 3 - len(HASH_I)) + b"\x00" + HASH_I
    assert signatures.verify(key.public_key(), HASH_I, sig)
    assert not signatures.verify(key.public_key(), HASH_I[:-1] + b"\x00", sig)
    assert not signatures.verify(key.public_key(), HASH_I, sig[:-1])
    assert signatures.auth_method_for(key) == AuthMethod.RSA_SIGNATURES


@pytest.mark.parametrize(
    ("kind", "size", "method"),
    [
        ("ecdsa", 32, AuthMethod.ECDSA_SHA256_P256),
        ("ecdsa384", 48, AuthMethod.ECDSA_SHA384_P384),
        ("ecdsa521", 66, AuthMethod.ECDSA_SHA512_P521),
    ],
)
@pytest.mark.parametrize("hash_len", [20, 32, 48, 64])
def test_ecdsa_is_r_concatenated_with_s(kind: str, size: int, method: int, hash_len: int) -> None:
    key = make_key(kind)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    data = bytes(range(hash_len))
    sig = signatures.sign(key, data)
    assert len(sig) == 2 * size  # r | s, each of the field size, not DER
    r, s = int.from_bytes(sig[:size], "big"), int.from_bytes(sig[size:], "big")
    # an independent check: the DER form verifies as ECDSA over the value as the digest
    algo = {20: hashes.SHA1(), 32: hashes.SHA256(), 48: hashes.SHA384(), 64: hashes.SHA512()}[hash_len]
    key.public_key().verify(utils.encode_dss_signature(r, s), data, ec.ECDSA(utils.Prehashed(algo)))
    assert signatures.verify(key.public_key(), data, sig)
    assert not signatures.verify(key.public_key(), data, sig[::-1])
    assert not signatures.verify(key.public_key(), data, sig + b"\x00")
    assert signatures.auth_method_for(key) == method
    assert signatures.auth_hash_name(method) == {32: "sha256", 48: "sha384", 66: "sha512"}[size]


def test_other_keys_and_sizes_are_refused() -> None:
    key = ec.generate_private_key(ec.SECP256K1())
    with pytest.raises(CryptoError):
        signatures.auth_method_for(key)
    with pytest.raises(CryptoError):
        signatures.sign(make_key("ecdsa"), b"x" * 17)
    assert signatures.auth_hash_name(AuthMethod.RSA_SIGNATURES) is None
    other = make_key("rsa")
    assert not signatures.verify(other.public_key(), HASH_I, signatures.sign(make_key("ecdsa"), HASH_I))
