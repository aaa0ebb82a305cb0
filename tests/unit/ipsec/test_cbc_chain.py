"""CBC with one encryptor and one decryptor per SA (ipsec.algorithms module docstring).

Every packet the running contexts produce or accept is checked against a fresh ``cryptography``
CBC context with the IV on the wire: the wire format is plain RFC 3602/2451 CBC, whatever the
per-SA state did before. The chained IV is checked to be E_K(R xor residue) (RFC 4346 6.2.3.2
(2)(b)) with R the random source's block."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers import BlockCipherAlgorithm, Cipher, algorithms, modes

from snakeswan.errors import CryptoError
from snakeswan.ipsec.esp import EspCodec, decapsulate, encapsulate
from snakeswan.ipsec.packet import Drop
from snakeswan.wire.enums import AuthAlgorithm, EspTransformId
from tests.unit.ipsec.helpers import counter_rng

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover - cryptography 42
    from cryptography.hazmat.primitives.ciphers.algorithms import (  # type: ignore[attr-defined,no-redef,unused-ignore]
        TripleDES,
    )

# name: (transform, key bits, key bytes, block size)
CBC: dict[str, tuple[int, int | None, int, int]] = {
    "aes128": (EspTransformId.AES_CBC, 128, 16, 16),
    "aes192": (EspTransformId.AES_CBC, 192, 24, 16),
    "aes256": (EspTransformId.AES_CBC, 256, 32, 16),
    "3des": (EspTransformId.TRIPLE_DES, None, 24, 8),
    "des": (EspTransformId.DES, None, 8, 8),
}
KEY = bytes(range(7, 7 + 32))
MAC_KEY = bytes(range(100, 132))


def codec(name: str, auth: int | None = AuthAlgorithm.HMAC_SHA2_256) -> EspCodec:
    tid, bits, key_len, _bs = CBC[name]
    return EspCodec(0x4242, tid, bits, auth, KEY[:key_len], MAC_KEY if auth else b"")


def reference(name: str) -> BlockCipherAlgorithm:
    key = KEY[: CBC[name][2]]
    if name.startswith("aes"):
        return algorithms.AES(key)
    return TripleDES(key * 3 if name == "des" else key)


def fresh_decrypt(name: str, iv: bytes, data: bytes) -> bytes:
    dec = Cipher(reference(name), modes.CBC(iv)).decryptor()
    return dec.update(data) + dec.finalize()


def fresh_encrypt(name: str, iv: bytes, data: bytes) -> bytes:
    enc = Cipher(reference(name), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


@pytest.mark.parametrize("name", list(CBC))
def test_chained_packets_are_plain_cbc_with_the_iv_on_the_wire(name: str) -> None:
    c = codec(name)
    bs = CBC[name][3]
    blocks: list[bytes] = []

    def rng(n: int) -> bytes:
        blocks.append(bytes([len(blocks) + 1]) * n)
        return blocks[-1]

    residue = bytes(bs)  # the first mask: zero
    ivs = set()
    for seq, size in enumerate([0, 1, 15, 16, 17, 100, 1400, 1400, 3], start=1):
        payload = bytes((seq + i) & 0xFF for i in range(size))
        packet = encapsulate(c, payload, 4, seq, rng, chained_iv=True)
        iv, ct = packet[8 : 8 + bs], packet[8 + bs : -16]
        # IV = E_K(R xor residue) (RFC 4346 6.2.3.2 (2)(b)), never R itself
        assert iv == fresh_encrypt(name, residue, blocks[-1])
        assert iv != blocks[-1]
        ivs.add(iv)
        plain = fresh_decrypt(name, iv, ct)
        pad = plain[-2]
        assert plain[-1] == 4 and plain[: len(plain) - 2 - pad] == payload
        assert decapsulate(c, packet) == (4, payload)
        residue = ct[-bs:]
    assert len(ivs) == 9


@pytest.mark.parametrize("name", list(CBC))
def test_running_decryptor_matches_fresh_contexts_in_any_order(name: str) -> None:
    sender, receiver = codec(name), codec(name)
    rng = counter_rng()
    packets = [encapsulate(sender, bytes([i]) * (40 + i * 13), 4, i, rng) for i in range(1, 8)]
    # out of order, repeated, and interleaved with a packet of another SA's key: no state leaks
    other = EspCodec(
        0x4242, CBC[name][0], CBC[name][1], AuthAlgorithm.HMAC_SHA2_256, bytes(CBC[name][2]), MAC_KEY
    )
    foreign = encapsulate(other, b"x" * 50, 4, 1, rng)
    for i in (3, 0, 6, 6, 1, 5, 2, 4):
        with pytest.raises(Drop):
            decapsulate(receiver, foreign[:-1] + bytes([foreign[-1] ^ 1]))
        assert decapsulate(receiver, packets[i]) == (4, bytes([i + 1]) * (40 + (i + 1) * 13))


@pytest.mark.parametrize("name", ["aes128", "3des"])
def test_partial_blocks_are_refused_and_leave_no_state(name: str) -> None:
    c = codec(name, auth=None)
    cipher = c.cipher
    assert cipher is not None
    bs = cipher.block_size
    with pytest.raises(CryptoError):
        cipher.encrypt_chained(bytes(bs), bytes(bs + 1))
    with pytest.raises(CryptoError):
        cipher.encrypt_chained(bytes(bs - 1), bytes(bs))
    with pytest.raises(CryptoError):
        cipher.decrypt_joined(bytes(bs * 2 + 3))
    with pytest.raises(CryptoError):
        cipher.decrypt_joined(bytes(bs - 1))
    # both running contexts are still aligned on a block boundary
    iv_ct = cipher.encrypt_chained(b"\x11" * bs, b"\x22" * (bs * 3))
    assert fresh_decrypt(name, iv_ct[:bs], iv_ct[bs:]) == b"\x22" * (bs * 3)
    assert cipher.decrypt_joined(iv_ct) == b"\x22" * (bs * 3)
    assert cipher.decrypt(iv_ct[:bs], iv_ct[bs:]) == b"\x22" * (bs * 3)


def test_only_plain_cbc_hands_out_its_running_encryptor() -> None:
    """The per-packet shortcut (esp.encapsulate) takes CBC's running encryptor; CTR counts its
    IVs and NULL has none, so they refuse and the codec never asks them."""
    cbc = codec("aes256").cipher
    assert cbc is not None and callable(cbc.chained_update())
    ctr = EspCodec(0x4242, EspTransformId.AES_CTR, 128, AuthAlgorithm.HMAC_SHA2_256, KEY[:20], MAC_KEY)
    assert ctr.cipher is not None
    with pytest.raises(CryptoError, match="not a CBC cipher"):
        ctr.cipher.chained_update()
    packet = encapsulate(ctr, b"\x45" + bytes(59), 4, 1, counter_rng(), chained_iv=True)
    assert (
        decapsulate(
            EspCodec(0x4242, EspTransformId.AES_CTR, 128, AuthAlgorithm.HMAC_SHA2_256, KEY[:20], MAC_KEY),
            packet,
        )[0]
        == 4
    )
