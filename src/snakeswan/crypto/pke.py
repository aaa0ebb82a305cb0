"""Phase 1 authentication with public key encryption (RFC 2409 5.2) and its revised mode (5.3).

Pure functions: RSA PKCS#1 v1.5 encryption of payload bodies, HASH(1) (which of the responder's
keys the initiator encrypted to), and revised mode's ephemeral symmetric keys and the way payload
bodies are encrypted with them. ``cryptography``'s PKCS#1 v1.5 decryption uses implicit rejection
(OpenSSL 3.2+): a tampered ciphertext decrypts to random bytes instead of raising, so there is no
padding oracle; the protocol then fails at HASH_I/HASH_R (a wrong nonce gives another SKEYID).
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric import padding, rsa

from snakeswan.crypto.algorithms import CbcCipher, HashAlg
from snakeswan.crypto.keymat import encryption_key
from snakeswan.errors import CryptoError

__all__ = [
    "ephemeral_key",
    "key_hash",
    "open_bodies",
    "rsa_decrypt",
    "rsa_encrypt",
    "seal_bodies",
]


def rsa_encrypt(public: rsa.RSAPublicKey, body: bytes) -> bytes:
    """<body>PubKey: RSA with PKCS#1 v1.5 padding (RFC 2409 5.2 names PKCS #1 encoding)."""
    limit = public.key_size // 8 - 11
    if len(body) > limit:
        raise CryptoError(
            f"{len(body)} bytes do not fit one {public.key_size}-bit RSA block ({limit} at most)"
        )
    return public.encrypt(body, padding.PKCS1v15())


def rsa_decrypt(private: rsa.RSAPrivateKey, ciphertext: bytes) -> bytes:
    """The body of a payload encrypted to our key; :class:`CryptoError` when it has the wrong size
    (a tampered ciphertext of the right size yields random bytes: implicit rejection)."""
    if len(ciphertext) != private.key_size // 8:
        raise CryptoError(
            f"{len(ciphertext)} bytes of ciphertext, a {private.key_size}-bit RSA key makes "
            f"{private.key_size // 8}"
        )
    try:
        return private.decrypt(ciphertext, padding.PKCS1v15())
    except ValueError as e:
        raise CryptoError("RSA decryption failed") from e


def key_hash(h: HashAlg, der: bytes) -> bytes:
    """HASH(1): a hash, with the negotiated hash function, of the certificate (DER) the initiator
    encrypts to; for a raw public key, of its SubjectPublicKeyInfo (DER)."""
    return h.digest(der)


def ephemeral_key(h: HashAlg, nonce_b: bytes, cookie: bytes, key_size: int) -> bytes:
    """Revised mode: Ke_i (``nonce_b`` = Ni_b, ``cookie`` = CKY-I) or Ke_r (Nr_b, CKY-R)."""
    ne = h.prf(nonce_b, cookie)  # Ne_i = prf(Ni_b, CKY-I); Ne_r = prf(Nr_b, CKY-R)
    # Ke_i from Ne_i as a cipher key from SKEYID_e: its first bits, or K1 = prf(Ne_i, 0) | K2 ...
    return encryption_key(h, ne, key_size)


def _pad(body: bytes, block_size: int) -> bytes:
    """Revised mode's padding: always some; zeros, then one byte counting the zeros."""
    count = block_size - len(body) % block_size  # 1..block_size bytes, the last one included
    return body + bytes(count - 1) + bytes([count - 1])


def _unpad(data: bytes) -> bytes:
    count = data[-1] + 1 if data else 0
    if not data or count > len(data) or any(data[-count:-1]):
        raise CryptoError("bad padding after decryption (wrong key or a tampered payload)")
    return data[:-count]


def seal_bodies(cipher: CbcCipher, key: bytes, bodies: Sequence[bytes]) -> list[bytes]:
    """<b>Ke for each payload body following the encrypted nonce, in order: the first with an IV
    of zeros, each next one with the last ciphertext block of the one before (RFC 2409 5.3)."""
    iv = bytes(cipher.block_size)  # the IV for the first payload following the nonce is 0
    out = []
    for body in bodies:
        ciphertext = cipher.encrypt(key, iv, _pad(body, cipher.block_size))
        iv = ciphertext[-cipher.block_size :]  # then the last ciphertext block of the previous one
        out.append(ciphertext)
    return out


def open_bodies(cipher: CbcCipher, key: bytes, ciphertexts: Sequence[bytes]) -> list[bytes]:
    """The inverse of :func:`seal_bodies`; :class:`CryptoError` for a body that is not whole blocks
    or whose padding is wrong."""
    iv = bytes(cipher.block_size)
    out = []
    for index, ciphertext in enumerate(ciphertexts):
        if not ciphertext or len(ciphertext) % cipher.block_size:
            raise CryptoError(
                f"encrypted payload {index + 1} after the nonce is {len(ciphertext)} bytes, "
                f"not whole {cipher.block_size}-byte blocks"
            )
        out.append(_unpad(cipher.decrypt(key, iv, ciphertext)))
        iv = ciphertext[-cipher.block_size :]
    return out
