"""Phase 1 digital signatures over HASH_I / HASH_R (RFC 2409 section 5.1, RFC 4754 for ECDSA).

What is signed is the prf output itself (HASH_I or HASH_R); nothing is hashed again:

- RSA (auth method 3): PKCS#1 v1.5 type 1 padding of the raw hash, *without* a DigestInfo
  (RFC 2409 5.1 "the signature is ... the output of the prf, encrypted with the private key";
  strongSwan's ``SIGN_RSA_EMSA_PKCS1_NULL``);
- ECDSA (auth methods 9, 10, 11 = P-256, P-384, P-521, RFC 4754): ECDSA over the hash value as
  the message digest (strongSwan's ``SIGN_ECDSA_WITH_NULL``: OpenSSL's ``ECDSA_do_sign`` on the
  prf output, truncated to the group order as usual), encoded as ``r | s``, each a big-endian
  integer of the field size (32, 48 or 66 bytes), not DER (RFC 4754 section 7).

Pure functions over ``cryptography`` keys; no key is ever logged or put in an exception text.
"""

from __future__ import annotations

import hmac

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from snakeswan.errors import CryptoError
from snakeswan.wire.enums import AuthMethod

__all__ = [
    "SIGNATURE_METHODS",
    "PrivateKeyType",
    "PublicKeyType",
    "auth_hash_name",
    "auth_method_for",
    "key_description",
    "sign",
    "verify",
]

PrivateKeyType = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKeyType = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

# RFC 4754 section 3 (IKEv1 auth methods): the curve each ECDSA method is defined on.
_ECDSA_METHODS: dict[str, int] = {
    "secp256r1": AuthMethod.ECDSA_SHA256_P256,
    "secp384r1": AuthMethod.ECDSA_SHA384_P384,
    "secp521r1": AuthMethod.ECDSA_SHA512_P521,
}
SIGNATURE_METHODS = frozenset({AuthMethod.RSA_SIGNATURES, *_ECDSA_METHODS.values()})

# A prehashed value must come with a hash of its size (only the size matters to ECDSA).
_BY_SIZE: dict[int, type[hashes.HashAlgorithm]] = {
    16: hashes.MD5,
    20: hashes.SHA1,
    28: hashes.SHA224,
    32: hashes.SHA256,
    48: hashes.SHA384,
    64: hashes.SHA512,
}


# RFC 4754 section 7 (and strongSwan's keymat_v1): with ECDSA, HASH_I/HASH_R are computed with the
# HMAC of the method's hash (keyed with SKEYID), whatever hash the proposal negotiated.
_ECDSA_HASHES: dict[int, str] = {
    AuthMethod.ECDSA_SHA256_P256: "sha256",
    AuthMethod.ECDSA_SHA384_P384: "sha384",
    AuthMethod.ECDSA_SHA512_P521: "sha512",
}


def auth_hash_name(auth_method: int) -> str | None:
    """The hash whose HMAC computes HASH_I/HASH_R for ``auth_method`` (ECDSA), None: the
    negotiated prf (every other method)."""
    return _ECDSA_HASHES.get(auth_method)


def _public(key: PrivateKeyType | PublicKeyType) -> PublicKeyType:
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        return key.public_key()
    return key


def auth_method_for(key: PrivateKeyType | PublicKeyType) -> int:
    """The IKEv1 auth method a key signs with: RSA -> 3; ECDSA P-256/384/521 -> 9/10/11."""
    pub = _public(key)
    if isinstance(pub, rsa.RSAPublicKey):
        return AuthMethod.RSA_SIGNATURES
    if isinstance(pub, ec.EllipticCurvePublicKey) and pub.curve.name in _ECDSA_METHODS:
        return _ECDSA_METHODS[pub.curve.name]
    raise CryptoError(f"no IKEv1 signature method for a {key_description(key)} key")


def key_description(key: PrivateKeyType | PublicKeyType | object) -> str:
    """``RSA-2048``, ``ECDSA-secp256r1``... (for messages; never the key material)."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return f"ECDSA-{key.curve.name}"
    return type(key).__name__


def _prehashed(data: bytes) -> utils.Prehashed:
    factory = _BY_SIZE.get(len(data))
    if factory is None:
        raise CryptoError(f"cannot sign a {len(data)}-byte hash with ECDSA")
    return utils.Prehashed(factory())


def _field_bytes(curve: ec.EllipticCurve) -> int:
    return (curve.key_size + 7) // 8


def sign(key: PrivateKeyType, data: bytes) -> bytes:
    """SIG_I / SIG_R: ``data`` (HASH_I or HASH_R) signed with ``key`` as the module docstring says."""
    if isinstance(key, rsa.RSAPrivateKey):
        # PKCS#1 v1.5 block type 1: 00 01 FF..FF 00 | HASH (no DigestInfo), then RSASP1
        return key.sign(data, padding.PKCS1v15(), utils.NoDigestInfo())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        auth_method_for(key)  # a curve RFC 4754 defines
        der = key.sign(data, ec.ECDSA(_prehashed(data)))
        r, s = utils.decode_dss_signature(der)
        n = _field_bytes(key.curve)
        return r.to_bytes(n, "big") + s.to_bytes(n, "big")  # RFC 4754: r | s, fixed width
    raise CryptoError(f"cannot sign with a {key_description(key)} key")


def verify(key: PublicKeyType, data: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``key``'s signature of ``data`` (HASH_I or HASH_R)."""
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if len(signature) != (key.key_size + 7) // 8:
                return False
            # RSAVP1, then the block must be 00 01 FF..FF 00 | HASH: recover HASH and compare
            recovered = key.recover_data_from_signature(signature, padding.PKCS1v15(), utils.NoDigestInfo())
            return hmac.compare_digest(recovered, data)
        if isinstance(key, ec.EllipticCurvePublicKey):
            n = _field_bytes(key.curve)
            if len(signature) != 2 * n or key.curve.name not in _ECDSA_METHODS:
                return False
            r, s = int.from_bytes(signature[:n], "big"), int.from_bytes(signature[n:], "big")
            key.verify(utils.encode_dss_signature(r, s), data, ec.ECDSA(_prehashed(data)))
            return True
    except InvalidSignature:
        return False
    except CryptoError:
        return False
    return False
