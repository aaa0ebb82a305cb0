"""AES-CTR (RFC 3686), AES-CCM (RFC 4309) and AES-GMAC (RFC 4543) in the ESP codec: a known answer
for CTR, and what each must refuse (the round trips, tampering and replay of every ESP suite run
in the parametrized data plane tests)."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import given
from hypothesis import strategies as st

from snakeswan.crypto.algorithms import esp_encryption_key_size
from snakeswan.errors import CryptoError
from snakeswan.ipsec.algorithms import (
    Aead,
    ChaChaAead,
    CtrCipher,
    GmacAead,
    UnsupportedAlgorithm,
    esp_transform,
)
from snakeswan.wire.enums import EspTransformId


def test_rfc3686_test_vector_1() -> None:
    key = bytes.fromhex("AE6852F8121067CC4BF7A5765577F39E") + bytes.fromhex("00000030")  # key | nonce
    ctr = CtrCipher(key)
    got = ctr.encrypt(bytes(8), b"Single block msg")
    assert got == bytes.fromhex("E4095D4FB7A7B3792D6175A3261311B8")


def test_rfc3686_test_vector_3_after_other_packets() -> None:
    """The SA's one CTR context is re-IVed per packet: a 36-byte message (a partial last block)
    comes out as RFC 3686's vector #3 even after packets of odd lengths went through it."""
    key = bytes.fromhex("7691BE035E5020A8AC6E618529F9A0DC") + bytes.fromhex("00E0017B")
    plain = bytes(range(0x24))
    want = bytes.fromhex("C1CF48A89F2FFDD9CF4652E9EFDB72D74540A42BDE6D7836D59A5CEAAEF3105325B2072F")
    ctr = CtrCipher(key)
    for n in (1, 15, 17, 1399):
        ctr.encrypt(bytes(8), bytes(n))
    assert ctr.encrypt(bytes.fromhex("27777F3F4A1786F0"), plain) == want
    assert ctr.decrypt(bytes.fromhex("27777F3F4A1786F0"), want[:5]) == plain[:5]
    assert ctr.decrypt(bytes.fromhex("27777F3F4A1786F0"), want) == plain


@given(st.lists(st.tuples(st.binary(min_size=8, max_size=8), st.binary(max_size=300)), max_size=8))
def test_ctr_reused_context_equals_a_fresh_one_per_packet(packets: list[tuple[bytes, bytes]]) -> None:
    key = bytes(range(36))
    ctr = CtrCipher(key)
    for iv, data in packets:
        fresh = Cipher(algorithms.AES(key[:32]), modes.CTR(key[32:] + iv + b"\0\0\0\1")).encryptor()
        assert ctr.encrypt(iv, data) == fresh.update(data) + fresh.finalize()


def test_ctr_never_repeats_an_iv_and_needs_integrity() -> None:
    ctr = CtrCipher(bytes(20))
    ivs = {ctr.encrypt_chained(b"\0" * 8, b"abcd")[:8] for _ in range(1000)}
    assert len(ivs) == 1000
    with pytest.raises(UnsupportedAlgorithm, match="without an integrity"):
        esp_transform(EspTransformId.AES_CTR, 128, None, bytes(20), b"")


def test_gmac_authenticates_without_encrypting() -> None:
    g = GmacAead(bytes(range(20)))
    sealed = g.seal(b"\1" * 8, b"plain text!!", b"\0" * 8)
    assert sealed[:12] == b"plain text!!" and len(sealed) == 12 + 16
    assert g.open(b"\1" * 8, sealed, b"\0" * 8) == b"plain text!!"
    assert g.open(b"\1" * 8, sealed[:-1] + bytes([sealed[-1] ^ 1]), b"\0" * 8) is None
    assert g.open(b"\2" * 8, sealed, b"\0" * 8) is None  # the IV is authenticated


def test_wrong_keying_material_sizes_are_refused() -> None:
    with pytest.raises(CryptoError):
        esp_transform(EspTransformId.AES_CCM_16, 128, None, bytes(20), b"")  # CCM salt is 3 bytes


def test_chacha20_poly1305_is_rfc7634() -> None:
    """Keying material = key | salt; nonce = salt | IV; AAD = SPI | sequence; 16-byte tag."""
    assert esp_encryption_key_size(EspTransformId.CHACHA20_POLY1305, None) == 36
    assert esp_encryption_key_size(EspTransformId.CHACHA20_POLY1305, 256) == 36
    with pytest.raises(UnsupportedAlgorithm):
        esp_encryption_key_size(EspTransformId.CHACHA20_POLY1305, 128)
    key, salt, iv, aad = bytes(range(0x80, 0xA0)), bytes.fromhex("a0a1a2a3"), bytes(range(8)), bytes(8)
    aead, cipher, integrity = esp_transform(EspTransformId.CHACHA20_POLY1305, None, None, key + salt, b"")
    assert isinstance(aead, ChaChaAead) and cipher is None and integrity is None
    sealed = aead.seal(iv, b"payload", aad)
    assert sealed == ChaCha20Poly1305(key).encrypt(salt + iv, b"payload", aad)
    assert len(sealed) == len(b"payload") + 16
    assert aead.open(iv, sealed, aad) == b"payload"
    assert aead.open(iv, sealed, b"\1" + aad[1:]) is None  # the SPI is authenticated
    assert aead.open(b"\1" + iv[1:], sealed, aad) is None
    with pytest.raises(UnsupportedAlgorithm, match="no separate integrity"):
        esp_transform(EspTransformId.CHACHA20_POLY1305, None, 12, key + salt, bytes(32))
    with pytest.raises(CryptoError):
        esp_transform(EspTransformId.CHACHA20_POLY1305, None, None, key, b"")


@given(
    icv=st.sampled_from([8, 12, 16]),
    bits=st.sampled_from([128, 192, 256]),
    packets=st.lists(
        st.tuples(st.binary(min_size=8, max_size=8), st.binary(max_size=200)), min_size=1, max_size=6
    ),
    flip=st.integers(min_value=0, max_value=10_000),
)
def test_truncated_gcm_opens_as_a_gcm_decryptor_does(
    icv: int, bits: int, packets: list[tuple[bytes, bytes]], flip: int
) -> None:
    """An 8/12-byte ICV is checked without a GCM context per packet (CTR, then the tag of the
    plaintext sealed again): what opens and what is refused must be what a ``Cipher(AES, GCM(nonce,
    tag, min_tag_length))`` decryptor says, packet after packet on one SA, for sealed packets and
    for each with one bit flipped in the ciphertext, the ICV, the IV or the AAD."""
    key = bytes(range(bits // 8 + 4))
    aead = Aead(key, icv)
    aes, salt = key[:-4], key[-4:]

    def reference(iv: bytes, sealed: bytes, aad: bytes) -> bytes | None:
        if len(sealed) < icv:
            return None
        dec = Cipher(algorithms.AES(aes), modes.GCM(salt + iv, sealed[-icv:], min_tag_length=icv)).decryptor()
        dec.authenticate_additional_data(aad)
        try:
            return dec.update(sealed[:-icv]) + dec.finalize()
        except InvalidTag:
            return None

    for n, (iv, data) in enumerate(packets):
        aad = n.to_bytes(8, "big")
        sealed = aead.seal(iv, data, aad)
        assert len(sealed) == len(data) + icv
        assert aead.open(iv, sealed, aad) == data == reference(iv, sealed, aad)
        bit = flip % ((len(sealed) + 16) * 8)
        byte, mask = divmod(bit, 8)
        if byte < len(sealed):
            bad = bytearray(sealed)
            bad[byte] ^= 1 << mask
            assert aead.open(iv, bytes(bad), aad) is None is reference(iv, bytes(bad), aad)
        elif byte < len(sealed) + 8:
            bad_iv = bytearray(iv)
            bad_iv[byte - len(sealed)] ^= 1 << mask
            assert aead.open(bytes(bad_iv), sealed, aad) is None
        else:
            bad_aad = bytearray(aad)
            bad_aad[byte - len(sealed) - 8] ^= 1 << mask
            assert aead.open(iv, sealed, bytes(bad_aad)) is None
    assert aead.open(b"\0" * 8, b"\0" * (icv - 1), bytes(8)) is None  # shorter than its ICV
