"""RFC 2409 5.2/5.3 primitives: RSA PKCS#1 v1.5 bodies, HASH(1), Ne/Ke and revised mode's payload
encryption, each checked against the RFC's formula computed independently here."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from snakeswan.crypto import pke
from snakeswan.crypto.algorithms import hash_by_name, ike_cipher
from snakeswan.errors import CryptoError
from snakeswan.wire.enums import IkeEncryption
from tests.pki import make_key

NI = bytes(range(32))
CKY_I = bytes.fromhex("0102030405060708")


def _prf(name: str, key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, name).digest()


def test_ke_is_the_first_bits_of_ne_when_the_prf_is_long_enough() -> None:
    ne = _prf("sha256", NI, CKY_I)  # Ne_i = prf(Ni_b, CKY-I)
    assert pke.ephemeral_key(hash_by_name("sha256"), NI, CKY_I, 16) == ne[:16]
    assert pke.ephemeral_key(hash_by_name("sha256"), NI, CKY_I, 32) == ne


def test_ke_is_expanded_by_feeding_the_prf_back_when_too_short() -> None:
    """RFC 2409 5.3: K = K1 | K2 ..., K1 = prf(Ne_i, 0) (one octet), K2 = prf(Ne_i, K1)."""
    ne = _prf("sha1", NI, CKY_I)
    k1 = _prf("sha1", ne, b"\x00")
    k2 = _prf("sha1", ne, k1)
    assert pke.ephemeral_key(hash_by_name("sha1"), NI, CKY_I, 32) == (k1 + k2)[:32]


def test_revised_mode_payload_encryption() -> None:
    """IV 0 for the first payload after the nonce, then the last ciphertext block of the one
    before; padding always present: zeros, then a byte counting them."""
    cipher = ike_cipher(IkeEncryption.AES_CBC, 128)
    key = bytes(range(16))
    bodies = [b"A" * 16, b"B" * 5, b""]
    sealed = pke.seal_bodies(cipher, key, bodies)
    assert [len(s) for s in sealed] == [32, 16, 16]

    def cbc(iv: bytes, data: bytes) -> bytes:
        enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        return enc.update(data) + enc.finalize()

    first = cbc(bytes(16), b"A" * 16 + bytes(15) + b"\x0f")
    second = cbc(first[-16:], b"B" * 5 + bytes(10) + b"\x0a")
    third = cbc(second[-16:], bytes(15) + b"\x0f")
    assert sealed == [first, second, third]
    assert pke.open_bodies(cipher, key, sealed) == bodies


def test_revised_mode_decryption_refuses_bad_padding_and_partial_blocks() -> None:
    cipher = ike_cipher(IkeEncryption.AES_CBC, 128)
    key = bytes(16)
    sealed = pke.seal_bodies(cipher, key, [b"identity"])
    with pytest.raises(CryptoError, match="padding"):
        pke.open_bodies(cipher, bytes([1] * 16), sealed)  # another key
    with pytest.raises(CryptoError, match="whole 16-byte blocks"):
        pke.open_bodies(cipher, key, [sealed[0][:-1]])


def test_rsa_bodies_and_hash1() -> None:
    key = make_key("rsa", 0)
    assert isinstance(key, rsa.RSAPrivateKey)
    ciphertext = pke.rsa_encrypt(key.public_key(), NI)
    assert len(ciphertext) == 256 and pke.rsa_decrypt(key, ciphertext) == NI
    with pytest.raises(CryptoError, match="do not fit"):
        pke.rsa_encrypt(key.public_key(), bytes(246))
    with pytest.raises(CryptoError, match="bytes of ciphertext"):
        pke.rsa_decrypt(key, ciphertext[:-1])
    assert pke.key_hash(hash_by_name("sha256"), b"cert") == hashlib.sha256(b"cert").digest()
