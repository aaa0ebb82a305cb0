"""Sealing at rest: AES-256-GCM with the record key as AAD (issue 14)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from snakeswan.crypto.seal import MAGIC, seal, unseal
from snakeswan.errors import CryptoError

KEY, NONCE = bytes(range(32)), bytes(range(12))


def test_layout_is_magic_nonce_then_aes_gcm() -> None:
    blob = seal(KEY, NONCE, b"ike/00", b"secret")
    assert blob == MAGIC + NONCE + AESGCM(KEY).encrypt(NONCE, b"secret", b"ike/00")
    assert unseal(KEY, b"ike/00", blob) == b"secret"


@pytest.mark.parametrize(
    ("key", "aad", "mutate"),
    [
        (bytes(32), b"ike/00", lambda b: b),  # another key
        (KEY, b"ike/01", lambda b: b),  # moved under another record key
        (KEY, b"ike/00", lambda b: b[:-1] + bytes([b[-1] ^ 1])),  # altered
        (KEY, b"ike/00", lambda b: b"XXXX" + b[4:]),  # not ours
        (KEY, b"ike/00", lambda b: b[:20]),  # truncated
    ],
)
def test_what_does_not_open(key: bytes, aad: bytes, mutate: object) -> None:
    blob = mutate(seal(KEY, NONCE, b"ike/00", b"secret"))  # type: ignore[operator]
    with pytest.raises(CryptoError):
        unseal(key, aad, blob)


def test_bad_sizes_refused() -> None:
    with pytest.raises(CryptoError):
        seal(bytes(16), NONCE, b"", b"x")
    with pytest.raises(CryptoError):
        seal(KEY, bytes(8), b"", b"x")
