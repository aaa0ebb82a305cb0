from __future__ import annotations

import hashlib
import hmac

import pytest

from snakeswan.crypto.algorithms import (
    CbcCipher,
    UnsupportedAlgorithm,
    ah_auth_algorithm,
    auth_key_size,
    esp_encryption_key_size,
    hash_by_name,
    ike_cipher,
    ike_hash,
)
from snakeswan.errors import CryptoError
from snakeswan.wire.enums import AhTransformId, AuthAlgorithm, EspTransformId, IkeEncryption, IkeHash

# --- hashes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hash_id", "name", "size"),
    [
        (IkeHash.MD5, "md5", 16),
        (IkeHash.SHA, "sha1", 20),
        (IkeHash.SHA2_256, "sha256", 32),
        (IkeHash.SHA2_384, "sha384", 48),
        (IkeHash.SHA2_512, "sha512", 64),
    ],
)
def test_ike_hash_digest_and_prf_match_hashlib(hash_id: int, name: str, size: int) -> None:
    h = ike_hash(hash_id)
    assert h.name == name
    assert h.digest_size == size
    assert h is hash_by_name(name)
    data = b"snakeswan" * 50
    key = b"k" * 7
    assert h.digest(data) == hashlib.new(name, data).digest()
    assert h.prf(key, data) == hmac.new(key, data, name).digest()
    assert len(h.digest(b"")) == size


def test_prf_rfc4231_case_2() -> None:
    # RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
    want = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    assert hash_by_name("sha256").prf(b"Jefe", b"what do ya want for nothing?").hex() == want


def test_hash_repr_and_equality() -> None:
    assert "sha256" in repr(hash_by_name("sha256"))
    assert hash_by_name("sha1") == ike_hash(IkeHash.SHA)


@pytest.mark.parametrize("hash_id", [0, IkeHash.TIGER, 7, 65535])
def test_unsupported_hash(hash_id: int) -> None:
    with pytest.raises(UnsupportedAlgorithm, match="hash"):
        ike_hash(hash_id)


def test_unsupported_hash_name() -> None:
    with pytest.raises(UnsupportedAlgorithm, match="whirlpool"):
        hash_by_name("whirlpool")
    assert issubclass(UnsupportedAlgorithm, CryptoError)


def test_unsupported_names_the_algorithm() -> None:
    with pytest.raises(UnsupportedAlgorithm, match="TIGER"):
        ike_hash(IkeHash.TIGER)
    with pytest.raises(UnsupportedAlgorithm, match=r"IkeHash\(99\)"):
        ike_hash(99)


# --- ciphers -----------------------------------------------------------------------------------

# NIST SP 800-38A appendix F.2.1 / F.2.3 / F.2.5 (CBC-AES128/192/256.Encrypt)
SP800_38A_IV = bytes(range(16))
SP800_38A_PLAINTEXT = bytes.fromhex(
    "6bc1bee22e409f96e93d7e117393172a"
    "ae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52ef"
    "f69f2445df4f9b17ad2b417be66c3710"
)
SP800_38A = {
    128: (
        "2b7e151628aed2a6abf7158809cf4f3c",
        "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
        "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7",
    ),
    192: (
        "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b",
        "4f021db243bc633d7178183a9fa071e8b4d9ada9ad7dedf4e5e738763f69145a"
        "571b242012fb7ae07fa9baac3df102e008b0e27988598881d920a9e64f5615cd",
    ),
    256: (
        "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
        "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d"
        "39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b",
    ),
}


@pytest.mark.parametrize("bits", [128, 192, 256])
def test_aes_cbc_sp800_38a(bits: int) -> None:
    key, ciphertext = SP800_38A[bits]
    c = ike_cipher(IkeEncryption.AES_CBC, bits)
    assert (c.name, c.block_size, c.key_size) == (f"aes{bits}", 16, bits // 8)
    assert c.encrypt(bytes.fromhex(key), SP800_38A_IV, SP800_38A_PLAINTEXT).hex() == ciphertext
    assert c.decrypt(bytes.fromhex(key), SP800_38A_IV, bytes.fromhex(ciphertext)) == SP800_38A_PLAINTEXT


def test_aes_without_key_length_is_128() -> None:
    assert ike_cipher(IkeEncryption.AES_CBC, None).key_size == 16


def test_des_cbc_fips81() -> None:
    # FIPS 81 appendix C, CBC mode: "Now is the time for all "
    c = ike_cipher(IkeEncryption.DES_CBC, None)
    assert (c.name, c.block_size, c.key_size) == ("des", 8, 8)
    key, iv = bytes.fromhex("0123456789abcdef"), bytes.fromhex("1234567890abcdef")
    want = "e5c7cdde872bf27c43e934008c389c0f683788499a7c05f6"
    assert c.encrypt(key, iv, b"Now is the time for all ").hex() == want
    assert c.decrypt(key, iv, bytes.fromhex(want)) == b"Now is the time for all "


def test_3des_sp800_67() -> None:
    # NIST SP 800-67 appendix B (TDEA ECB example); CBC with a zero IV on one block is ECB.
    c = ike_cipher(IkeEncryption.TRIPLE_DES_CBC, None)
    assert (c.name, c.block_size, c.key_size) == ("3des", 8, 24)
    key = bytes.fromhex("0123456789ABCDEF23456789ABCDEF01456789ABCDEF0123")
    plaintext = b"The qufck brown fox jump"
    want = ["a826fd8ce53b855f", "cce21c8112256fe6", "68d5c05dd9b6b900"]
    for i, block_hex in enumerate(want):
        assert c.encrypt(key, bytes(8), plaintext[8 * i : 8 * i + 8]).hex() == block_hex
    # and CBC chaining over the whole message round-trips and differs from ECB after block 1
    whole = c.encrypt(key, bytes(8), plaintext)
    assert whole[:8].hex() == want[0]
    assert whole[8:16].hex() != want[1]
    assert c.decrypt(key, bytes(8), whole) == plaintext


CIPHERS = [
    (IkeEncryption.DES_CBC, None),
    (IkeEncryption.TRIPLE_DES_CBC, None),
    (IkeEncryption.AES_CBC, 128),
    (IkeEncryption.AES_CBC, 192),
    (IkeEncryption.AES_CBC, 256),
]


@pytest.mark.parametrize(("encr", "bits"), CIPHERS)
def test_round_trip(encr: int, bits: int | None) -> None:
    c = ike_cipher(encr, bits)
    key = bytes(range(1, c.key_size + 1))
    iv = bytes(range(100, 100 + c.block_size))
    data = bytes(range(7 * c.block_size))
    encrypted = c.encrypt(key, iv, data)
    assert len(encrypted) == len(data) and encrypted != data
    assert c.decrypt(key, iv, encrypted) == data
    assert c.encrypt(key, iv, b"") == b""


@pytest.mark.parametrize(("encr", "bits"), CIPHERS)
def test_bad_lengths(encr: int, bits: int | None) -> None:
    c = ike_cipher(encr, bits)
    key, iv = bytes(c.key_size), bytes(c.block_size)
    for op in (c.encrypt, c.decrypt):
        with pytest.raises(CryptoError, match="multiple of the block size"):
            op(key, iv, bytes(c.block_size + 1))
        with pytest.raises(CryptoError, match="key"):
            op(key + b"\0", iv, bytes(c.block_size))
        with pytest.raises(CryptoError, match="IV"):
            op(key, iv[:-1], bytes(c.block_size))


def test_cipher_repr_has_no_factory() -> None:
    text = repr(ike_cipher(IkeEncryption.AES_CBC, 256))
    assert "aes256" in text and "factory" not in text
    assert isinstance(ike_cipher(IkeEncryption.AES_CBC, 256), CbcCipher)


@pytest.mark.parametrize(
    ("encr", "bits"),
    [
        (IkeEncryption.AES_CBC, 64),
        (IkeEncryption.AES_CBC, 512),
        (IkeEncryption.DES_CBC, 128),
        (IkeEncryption.TRIPLE_DES_CBC, 128),
        (IkeEncryption.BLOWFISH_CBC, None),
        (IkeEncryption.CAMELLIA_CBC, 128),
        (0, None),
        (4242, None),
    ],
)
def test_unsupported_cipher(encr: int, bits: int | None) -> None:
    with pytest.raises(UnsupportedAlgorithm, match="encryption algorithm"):
        ike_cipher(encr, bits)


def test_fixed_size_ciphers_accept_their_own_key_length() -> None:
    assert ike_cipher(IkeEncryption.DES_CBC, 64).name == "des"
    assert ike_cipher(IkeEncryption.TRIPLE_DES_CBC, 192).name == "3des"


# --- phase 2 key sizes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transform", "bits", "size"),
    [
        (EspTransformId.DES, None, 8),
        (EspTransformId.TRIPLE_DES, None, 24),
        (EspTransformId.TRIPLE_DES, 192, 24),
        (EspTransformId.NULL, None, 0),
        (EspTransformId.AES_CBC, None, 16),
        (EspTransformId.AES_CBC, 128, 16),
        (EspTransformId.AES_CBC, 192, 24),
        (EspTransformId.AES_CBC, 256, 32),
        (EspTransformId.AES_GCM_16, 128, 20),
        (EspTransformId.AES_GCM_16, 256, 36),
        (EspTransformId.AES_GCM_12, 192, 28),
        (EspTransformId.AES_GCM_8, None, 20),
        (EspTransformId.AES_CTR, 256, 36),
        (EspTransformId.AES_CCM_16, 128, 19),
        (EspTransformId.NULL_AUTH_AES_GMAC, 256, 36),
    ],
)
def test_esp_encryption_key_size(transform: int, bits: int | None, size: int) -> None:
    assert esp_encryption_key_size(transform, bits) == size


@pytest.mark.parametrize(
    ("transform", "bits"),
    [
        (EspTransformId.AES_CBC, 100),
        (EspTransformId.AES_GCM_16, 512),
        (EspTransformId.TRIPLE_DES, 128),
        (EspTransformId.BLOWFISH, None),
        (EspTransformId.DES_IV64, None),
        (999, None),
    ],
)
def test_esp_encryption_unsupported(transform: int, bits: int | None) -> None:
    with pytest.raises(UnsupportedAlgorithm, match="ESP transform"):
        esp_encryption_key_size(transform, bits)


@pytest.mark.parametrize(
    ("alg", "size"),
    [
        (AuthAlgorithm.HMAC_MD5, 16),
        (AuthAlgorithm.HMAC_SHA, 20),
        (AuthAlgorithm.HMAC_SHA2_256, 32),
        (AuthAlgorithm.HMAC_SHA2_384, 48),
        (AuthAlgorithm.HMAC_SHA2_512, 64),
    ],
)
def test_auth_key_size(alg: int, size: int) -> None:
    assert auth_key_size(alg) == size


@pytest.mark.parametrize("alg", [AuthAlgorithm.DES_MAC, AuthAlgorithm.KPDK, AuthAlgorithm.HMAC_RIPEMD, 0])
def test_auth_key_size_unsupported(alg: int) -> None:
    with pytest.raises(UnsupportedAlgorithm, match="authentication algorithm"):
        auth_key_size(alg)


@pytest.mark.parametrize(
    ("ah", "auth"),
    [
        (AhTransformId.MD5, AuthAlgorithm.HMAC_MD5),
        (AhTransformId.SHA, AuthAlgorithm.HMAC_SHA),
        (AhTransformId.SHA2_256, AuthAlgorithm.HMAC_SHA2_256),
        (AhTransformId.SHA2_384, AuthAlgorithm.HMAC_SHA2_384),
        (AhTransformId.SHA2_512, AuthAlgorithm.HMAC_SHA2_512),
    ],
)
def test_ah_auth_algorithm(ah: int, auth: int) -> None:
    assert ah_auth_algorithm(ah) == auth


@pytest.mark.parametrize("ah", [AhTransformId.DES, 1, 99])
def test_ah_unsupported(ah: int) -> None:
    with pytest.raises(UnsupportedAlgorithm, match="AH transform"):
        ah_auth_algorithm(ah)
