"""ESP encapsulation/decapsulation at the codec level: padding, tampering, lengths, algorithms."""

from __future__ import annotations

import pytest

from snakeswan.crypto.algorithms import UnsupportedAlgorithm
from snakeswan.errors import CryptoError
from snakeswan.ipsec.algorithms import Integrity
from snakeswan.ipsec.esp import EspCodec, decapsulate, encapsulate, open_esp, peek, strip_trailer
from snakeswan.ipsec.packet import Drop
from snakeswan.wire.enums import AuthAlgorithm, EspTransformId
from tests.unit.ipsec.helpers import ALGORITHMS, ESP_ALGORITHMS, counter_rng


def codec(alg: str, spi: int = 0x1234) -> EspCodec:
    _proto, tid, klen, auth, enc_len, int_len = ALGORITHMS[alg]
    return EspCodec(spi, tid, klen, auth, bytes(range(enc_len)), bytes(range(100, 100 + int_len)))


@pytest.mark.parametrize("alg", ESP_ALGORITHMS)
@pytest.mark.parametrize("size", [0, 1, 2, 3, 14, 15, 16, 17, 1400])
def test_round_trip_and_alignment(alg: str, size: int) -> None:
    c = codec(alg)
    payload = bytes(range(256)) * 6
    payload = payload[:size]
    packet = encapsulate(c, payload, 4, 7, counter_rng())
    assert peek(packet) == (0x1234, 7)
    body = len(packet) - 8 - c.iv_len - c.icv_len
    assert body % c.align == 0
    assert body - size - 2 < c.align  # minimal padding
    assert decapsulate(c, packet) == (4, payload)


@pytest.mark.parametrize("alg", ESP_ALGORITHMS)
def test_tampering_fails_icv(alg: str) -> None:
    c = codec(alg)
    packet = encapsulate(c, b"x" * 100, 4, 1, counter_rng())
    for index in (0, 5, 9, len(packet) // 2, len(packet) - 1):
        bad = bytearray(packet)
        bad[index] ^= 0x01
        with pytest.raises(Drop) as exc:
            decapsulate(c, bytes(bad))
        assert exc.value.reason == "icv", index


def test_wrong_key_fails_icv() -> None:
    packet = encapsulate(codec("aes128-sha256"), b"payload", 4, 1, counter_rng())
    other = EspCodec(0x1234, EspTransformId.AES_CBC, 128, AuthAlgorithm.HMAC_SHA2_256, bytes(16), bytes(32))
    assert open_esp(other, packet) is None


@pytest.mark.parametrize("alg", ["aes128gcm16", "aes128-sha1", "null-sha256"])
def test_strip_trailer(alg: str) -> None:
    c = codec(alg)
    plaintext = open_esp(c, encapsulate(c, b"A" * 9, 4, 1, counter_rng()))
    assert plaintext is not None
    pad = plaintext[-2]
    assert plaintext[9:-2] == bytes(range(1, pad + 1))
    assert strip_trailer(plaintext) == (4, b"A" * 9)


@pytest.mark.parametrize(
    "plaintext",
    [
        b"\x01\x02\x03\x04\x05\x04",  # pad length 5 > the 4 bytes before it
        b"\x01\x03\x02\x04",  # padding 1, 3
        b"xy\x00\x02\x02\x04",  # padding 0, 2
        b"\x04",  # no room for the trailer
    ],
)
def test_bad_padding(plaintext: bytes) -> None:
    with pytest.raises(Drop) as exc:
        strip_trailer(plaintext)
    assert exc.value.reason == "padding"
    assert strip_trailer(b"xy\x01\x02\x02\x04") == (4, b"xy")


def test_padding_error_reported_after_icv() -> None:
    """An authentic packet (NULL encryption, valid ICV) whose padding is 7, 7: dropped "padding"."""
    c = codec("null-sha256")
    integrity = Integrity(AuthAlgorithm.HMAC_SHA2_256, bytes(range(100, 132)))
    body = (0x1234).to_bytes(4, "big") + (1).to_bytes(4, "big") + b"ABCD" + b"\x07\x07\x02\x04"
    packet = body + integrity.mac(body)
    with pytest.raises(Drop) as exc:
        decapsulate(c, packet)
    assert exc.value.reason == "padding"


@pytest.mark.parametrize("alg", ["aes128gcm16", "aes128-sha1", "3des-sha1"])
def test_short_and_misaligned_are_malformed(alg: str) -> None:
    c = codec(alg)
    packet = encapsulate(c, b"x" * 40, 4, 1, counter_rng())
    with pytest.raises(Drop) as exc:
        decapsulate(c, packet[: c.min_len - 1])
    assert exc.value.reason == "malformed"
    with pytest.raises(Drop) as exc:
        peek(b"\0\0\0")
    assert exc.value.reason == "malformed"
    if c.aead is None:
        with pytest.raises(Drop) as exc:
            decapsulate(c, packet[: -c.icv_len] + b"\0" + packet[-c.icv_len :])
        assert exc.value.reason == "malformed"


def test_iv_comes_from_rng_and_differs() -> None:
    c = codec("aes128-sha256")
    ivs: list[bytes] = []

    def rng(n: int) -> bytes:
        ivs.append(bytes([len(ivs)]) * n)
        return ivs[-1]

    p1 = encapsulate(c, b"same", 4, 1, rng)
    p2 = encapsulate(c, b"same", 4, 2, rng)
    assert p1[8:24] == ivs[0] and p2[8:24] == ivs[1]
    assert p1[24:40] != p2[24:40]


def test_unsupported_and_bad_keys() -> None:
    with pytest.raises(UnsupportedAlgorithm):
        EspCodec(1000, EspTransformId.AES_CTR, 128, None, bytes(20), b"")
    with pytest.raises(UnsupportedAlgorithm):
        EspCodec(1000, EspTransformId.NULL, None, None, b"", b"")
    with pytest.raises(CryptoError):
        EspCodec(1000, EspTransformId.AES_GCM_16, 256, None, bytes(20), b"")
    with pytest.raises(UnsupportedAlgorithm):
        EspCodec(1000, EspTransformId.AES_CBC, 128, None, bytes(17), b"")
    with pytest.raises(CryptoError):
        EspCodec(1000, EspTransformId.AES_CBC, 128, AuthAlgorithm.HMAC_SHA, bytes(16), bytes(16))
    with pytest.raises(UnsupportedAlgorithm):
        EspCodec(1000, EspTransformId.AES_CBC, 128, AuthAlgorithm.AES_XCBC_MAC, bytes(16), bytes(16))


def test_gcm_truncated_icv_lengths() -> None:
    for alg, icv in (("aes128gcm8", 8), ("aes192gcm12", 12), ("aes128gcm16", 16)):
        c = codec(alg)
        packet = encapsulate(c, b"z" * 33, 41, 3, counter_rng())
        assert len(packet) == 8 + 8 + 36 + icv
        assert decapsulate(c, packet) == (41, b"z" * 33)
        bad = packet[:-1] + bytes([packet[-1] ^ 0x80])
        assert open_esp(c, bad) is None
