"""Sealing secrets at rest (issue 14): AES-256-GCM over a record's secret part, the record's store
key as associated data, so a sealed blob copied under another key does not open.

``blob = MAGIC (4) | nonce (12) | ciphertext | tag (16)``. The nonce is an argument (this package
never reads the OS random source): the caller passes 12 fresh random bytes per seal. With random
96-bit nonces one key seals well over 2^32 records before the collision bound matters (NIST SP
800-38D 8.3); a daemon writes far fewer in its life.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from snakeswan.errors import CryptoError

__all__ = ["KEY_SIZE", "MAGIC", "NONCE_SIZE", "seal", "unseal"]

MAGIC = b"SSW1"
KEY_SIZE = 32
NONCE_SIZE = 12
_TAG = 16


def seal(key: bytes, nonce: bytes, aad: bytes, plaintext: bytes) -> bytes:
    """``plaintext`` encrypted and authenticated under ``key``, bound to ``aad`` (the record key)."""
    if len(key) != KEY_SIZE:
        raise CryptoError(f"sealing key is {len(key)} bytes, expected {KEY_SIZE}")
    if len(nonce) != NONCE_SIZE:
        raise CryptoError(f"nonce is {len(nonce)} bytes, expected {NONCE_SIZE}")
    return MAGIC + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def unseal(key: bytes, aad: bytes, blob: bytes) -> bytes:
    """The plaintext of :func:`seal`'s ``blob``; CryptoError if it is not one, or was altered,
    or was sealed under another key or another ``aad``."""
    if len(key) != KEY_SIZE:
        raise CryptoError(f"sealing key is {len(key)} bytes, expected {KEY_SIZE}")
    if len(blob) < len(MAGIC) + NONCE_SIZE + _TAG or not blob.startswith(MAGIC):
        raise CryptoError("not a sealed record (bad magic or too short)")
    nonce = blob[len(MAGIC) : len(MAGIC) + NONCE_SIZE]
    try:
        return AESGCM(key).decrypt(nonce, blob[len(MAGIC) + NONCE_SIZE :], aad)
    except InvalidTag:
        raise CryptoError("sealed record does not authenticate (altered, or another key)") from None
