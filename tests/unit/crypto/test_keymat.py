"""Key derivation against independent computations with Python's hmac/hashlib modules.

(The phase 1 SKEYID chain is also checked against NIST's CAVS vectors in tests/vectors/.)
"""

from __future__ import annotations

import hashlib
import hmac

import pytest

from snakeswan.crypto.algorithms import hash_by_name
from snakeswan.crypto.keymat import (
    Phase1Keys,
    derive_phase1,
    encryption_key,
    hash_i,
    hash_r,
    informational_hash,
    keymat,
    phase1_iv,
    phase2_iv,
    qm_hash1,
    qm_hash2,
    qm_hash3,
    skeyid_pke,
    skeyid_psk,
    skeyid_sig,
)
from snakeswan.errors import CryptoError


def prf(name: str, key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, name).digest()


NI = bytes.fromhex("11" * 16)
NR = bytes.fromhex("22" * 20)
CKY_I = bytes.fromhex("0102030405060708")
CKY_R = bytes.fromhex("f1f2f3f4f5f6f7f8")
GXI = bytes(range(64))
GXR = bytes(range(64, 128))
GXY = bytes(range(128, 192))


# --- SKEYID --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["md5", "sha1", "sha256", "sha384", "sha512"])
def test_skeyid_variants(name: str) -> None:
    h = hash_by_name(name)
    assert skeyid_psk(h, b"secret", NI, NR) == prf(name, b"secret", NI + NR)
    assert skeyid_sig(h, NI, NR, GXY) == prf(name, NI + NR, GXY)
    hashed = hashlib.new(name, NI + NR).digest()
    assert skeyid_pke(h, NI, NR, CKY_I, CKY_R) == prf(name, hashed, CKY_I + CKY_R)


def test_derive_phase1_chain() -> None:
    h = hash_by_name("sha256")
    skeyid = skeyid_psk(h, b"psk", NI, NR)
    keys = derive_phase1(h, skeyid, GXY, CKY_I, CKY_R)
    d = prf("sha256", skeyid, GXY + CKY_I + CKY_R + b"\x00")
    a = prf("sha256", skeyid, d + GXY + CKY_I + CKY_R + b"\x01")
    e = prf("sha256", skeyid, a + GXY + CKY_I + CKY_R + b"\x02")
    assert keys == Phase1Keys(skeyid, d, a, e)


def test_phase1_keys_repr_hides_key_bytes() -> None:
    keys = derive_phase1(hash_by_name("sha1"), b"\xab" * 20, GXY, CKY_I, CKY_R)
    text = repr(keys)
    assert "20 bytes" in text
    for value in (keys.skeyid, keys.skeyid_d, keys.skeyid_a, keys.skeyid_e):
        assert value.hex()[:8] not in text
        assert repr(value)[2:10] not in text


# --- appendix B: encryption key expansion --------------------------------------------------------


def test_encryption_key_truncates_long_skeyid_e() -> None:
    skeyid_e = bytes(range(32))  # SHA-256 output, AES-128 key
    assert encryption_key(hash_by_name("sha256"), skeyid_e, 16) == skeyid_e[:16]
    assert encryption_key(hash_by_name("sha256"), skeyid_e, 32) == skeyid_e  # exactly long enough


@pytest.mark.parametrize(
    ("name", "key_size"),
    [("sha1", 32), ("sha1", 24), ("md5", 24), ("md5", 32), ("sha1", 64), ("md5", 17)],
)
def test_encryption_key_expands_short_skeyid_e(name: str, key_size: int) -> None:
    skeyid_e = hashlib.new(name, b"skeyid_e").digest()
    assert len(skeyid_e) < key_size
    k1 = prf(name, skeyid_e, b"\x00")  # K1 = prf(SKEYID_e, 0)
    k2 = prf(name, skeyid_e, k1)  # K2 = prf(SKEYID_e, K1)
    k3 = prf(name, skeyid_e, k2)
    k4 = prf(name, skeyid_e, k3)
    want = (k1 + k2 + k3 + k4)[:key_size]
    assert encryption_key(hash_by_name(name), skeyid_e, key_size) == want


def test_encryption_key_sha1_aes256_is_not_skeyid_e_prefix() -> None:
    # the classic interop trap: 20-byte SKEYID_e, 32-byte key -> K1 | K2, not SKEYID_e | something
    skeyid_e = bytes(range(20))
    key = encryption_key(hash_by_name("sha1"), skeyid_e, 32)
    assert len(key) == 32 and not key.startswith(skeyid_e)


# --- IVs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "block"), [("sha1", 16), ("md5", 8), ("sha256", 16), ("md5", 16)])
def test_phase1_iv(name: str, block: int) -> None:
    assert phase1_iv(hash_by_name(name), GXI, GXR, block) == hashlib.new(name, GXI + GXR).digest()[:block]


@pytest.mark.parametrize("message_id", [1, 0x01020304, 0xFFFFFFFF])
def test_phase2_iv(message_id: int) -> None:
    last = bytes(range(16))
    want = hashlib.sha1(last + message_id.to_bytes(4, "big")).digest()[:16]
    assert phase2_iv(hash_by_name("sha1"), last, message_id, 16) == want


def test_iv_errors() -> None:
    with pytest.raises(CryptoError, match="shorter than the block size"):
        phase1_iv(hash_by_name("md5"), GXI, GXR, 32)
    for bad in (-1, 1 << 32):
        with pytest.raises(CryptoError, match="32 bits"):
            phase2_iv(hash_by_name("sha1"), bytes(16), bad, 16)


# --- phase 1 authentication hashes ---------------------------------------------------------------

SAI_B = b"\x00\x00\x00\x01\x00\x00\x00\x01sa-body"
IDII_B = b"\x01\x00\x00\x00\xc0\x00\x02\x01"
IDIR_B = b"\x01\x00\x00\x00\xc0\x00\x02\x02"


def test_hash_i_and_hash_r() -> None:
    h = hash_by_name("sha256")
    skeyid = b"S" * 32
    want_i = prf("sha256", skeyid, GXI + GXR + CKY_I + CKY_R + SAI_B + IDII_B)
    want_r = prf("sha256", skeyid, GXR + GXI + CKY_R + CKY_I + SAI_B + IDIR_B)
    assert hash_i(h, skeyid, GXI, GXR, CKY_I, CKY_R, SAI_B, IDII_B) == want_i
    assert hash_r(h, skeyid, GXR, GXI, CKY_R, CKY_I, SAI_B, IDIR_B) == want_r
    assert want_i != want_r


# --- Quick Mode and Informational hashes ---------------------------------------------------------

MID = 0xA1B2C3D4
MID_B = bytes.fromhex("a1b2c3d4")
REST = b"\x01\x00\x00\x10sa....\x0a\x00\x00\x14nonce-payload..."


def test_quick_mode_hashes() -> None:
    h = hash_by_name("sha1")
    skeyid_a = b"A" * 20
    assert qm_hash1(h, skeyid_a, MID, REST) == prf("sha1", skeyid_a, MID_B + REST)
    assert qm_hash2(h, skeyid_a, MID, NI, REST) == prf("sha1", skeyid_a, MID_B + NI + REST)
    assert qm_hash3(h, skeyid_a, MID, NI, NR) == prf("sha1", skeyid_a, b"\x00" + MID_B + NI + NR)
    assert informational_hash(h, skeyid_a, MID, REST) == prf("sha1", skeyid_a, MID_B + REST)


def test_small_message_id_is_four_bytes() -> None:
    h = hash_by_name("md5")
    assert qm_hash1(h, b"k", 1, b"x") == prf("md5", b"k", b"\x00\x00\x00\x01x")


# --- KEYMAT --------------------------------------------------------------------------------------

SPI = bytes.fromhex("c0ffee01")
ESP = 3


def independent_keymat(name: str, skeyid_d: bytes, seed: bytes, length: int) -> bytes:
    blocks = [prf(name, skeyid_d, seed)]
    while sum(map(len, blocks)) < length:
        blocks.append(prf(name, skeyid_d, blocks[-1] + seed))
    return b"".join(blocks)[:length]


@pytest.mark.parametrize("length", [0, 16, 20, 36, 52, 64, 100])
def test_keymat_without_pfs(length: int) -> None:
    skeyid_d = b"D" * 20
    seed = bytes([ESP]) + SPI + NI + NR
    got = keymat(hash_by_name("sha1"), skeyid_d, ESP, SPI, NI, NR, length)
    assert got == independent_keymat("sha1", skeyid_d, seed, length)
    assert len(got) == length


def test_keymat_without_pfs_explicit_blocks() -> None:
    skeyid_d = b"D" * 32
    seed = bytes([ESP]) + SPI + NI + NR
    k1 = prf("sha256", skeyid_d, seed)
    k2 = prf("sha256", skeyid_d, k1 + seed)
    k3 = prf("sha256", skeyid_d, k2 + seed)
    assert keymat(hash_by_name("sha256"), skeyid_d, ESP, SPI, NI, NR, 80) == (k1 + k2 + k3)[:80]


@pytest.mark.parametrize("length", [16, 40, 72])
def test_keymat_with_pfs(length: int) -> None:
    skeyid_d = b"D" * 32
    gqm = bytes(range(200, 256)) * 4
    seed = gqm + bytes([ESP]) + SPI + NI + NR
    got = keymat(hash_by_name("sha256"), skeyid_d, ESP, SPI, NI, NR, length, gqm=gqm)
    assert got == independent_keymat("sha256", skeyid_d, seed, length)
    assert got != keymat(hash_by_name("sha256"), skeyid_d, ESP, SPI, NI, NR, length)


def test_keymat_differs_per_direction_and_protocol() -> None:
    h = hash_by_name("sha1")
    a = keymat(h, b"d", ESP, SPI, NI, NR, 40)
    assert a != keymat(h, b"d", ESP, bytes.fromhex("c0ffee02"), NI, NR, 40)
    assert a != keymat(h, b"d", 2, SPI, NI, NR, 40)


def test_keymat_errors() -> None:
    h = hash_by_name("sha1")
    with pytest.raises(CryptoError, match="octet"):
        keymat(h, b"d", 256, SPI, NI, NR, 16)
    with pytest.raises(CryptoError, match="negative"):
        keymat(h, b"d", ESP, SPI, NI, NR, -1)
    with pytest.raises(CryptoError, match="negative"):
        encryption_key(h, b"e" * 20, -1)
