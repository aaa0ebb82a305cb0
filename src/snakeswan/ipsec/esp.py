"""ESP packets (RFC 4303): SPI | sequence number | IV | ciphertext | ICV.

The ciphertext covers payload | padding | pad length | next header (RFC 4303 2). Padding is
1, 2, 3, ... (RFC 4303 2.4) up to the cipher's block size, or to 4 bytes for AEAD and NULL
encryption, the least that aligns pad length and next header to a 4-byte boundary.

Inbound processing is split so that the caller can keep RFC 4303 3.4's order (replay check, ICV,
replay window update, then the contents): :func:`peek` (SPI and sequence number), :func:`open_esp`
(ICV verified first, then decryption; None when the ICV fails), :func:`strip_trailer` (padding
checked). :func:`decapsulate` does the last two at once.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

from snakeswan.ipsec.algorithms import GCM_IV, Aead, AnyAead, CbcCipher, Integrity, esp_transform
from snakeswan.ipsec.packet import Drop

__all__ = ["PADDING", "EspCodec", "decapsulate", "encapsulate", "open_esp", "peek", "strip_trailer"]

_HEADER = struct.Struct("!II")
# PADDING[n]: the n monotonic padding bytes 1, 2, ..., n (RFC 4303 2.4).
PADDING: Final = tuple(bytes(range(1, n + 1)) for n in range(256))
_TRAILERS: Final = tuple(tuple(PADDING[n] + bytes((n, nh)) for nh in range(256)) for n in range(32))


class EspCodec:
    """The ESP crypto of one SA in one direction, preconstructed once (cipher objects, keys)."""

    __slots__ = (
        "_cbc",
        "_cbc_update",
        "_gcm_encrypt",
        "_salt",
        "aead",
        "align",
        "cipher",
        "icv_len",
        "integrity",
        "iv_len",
        "min_len",
        "name",
        "spi",
    )

    def __init__(
        self,
        spi: int,
        transform_id: int,
        key_length: int | None,
        auth: int | None,
        encryption_key: bytes,
        integrity_key: bytes,
    ) -> None:
        self.spi = spi
        aead, cipher, integrity = esp_transform(transform_id, key_length, auth, encryption_key, integrity_key)
        self.aead: AnyAead | None = aead
        self.cipher: CbcCipher | None = cipher
        self.integrity: Integrity | None = integrity
        if aead is not None:
            self.iv_len, self.icv_len, self.align = GCM_IV, aead.icv_len, 4
            self.name = aead.name
        else:
            assert cipher is not None
            self.iv_len = cipher.iv_len
            self.icv_len = integrity.icv_len if integrity is not None else 0
            self.align = max(4, cipher.block_size)
            self.name = cipher.name + (f"-{integrity.name}" if integrity is not None else "")
        # header + IV + at least pad length and next header (one aligned block) + ICV
        self.min_len = 8 + self.iv_len + self.align + self.icv_len
        # the per-packet path's shortcuts: AES-GCM with a full tag, one call; CBC, the running
        # encryptor's update, made by the first packet sent (an inbound SA never needs one)
        self._gcm_encrypt = aead.full_tag_encrypt() if isinstance(aead, Aead) else None
        self._salt = aead.salt if aead is not None else b""
        self._cbc = type(cipher) is CbcCipher
        self._cbc_update: Callable[[bytes], bytes] | None = None

    @property
    def overhead(self) -> int:
        """Bytes ESP adds to a payload at most: header, IV, padding and trailer, ICV."""
        return 8 + self.iv_len + self.align + 1 + self.icv_len

    def __repr__(self) -> str:
        return f"EspCodec(spi={self.spi:#010x}, {self.name})"


def encapsulate(
    codec: EspCodec,
    payload: bytes,
    next_header: int,
    seq: int,
    rng: Callable[[int], bytes],
    *,
    chained_iv: bool = False,
) -> bytes:
    """The ESP packet carrying ``payload`` (an inner IP packet in tunnel mode, the upper-layer
    payload in transport mode) with sequence number ``seq``. The IV is ``rng``'s output, or with
    ``chained_iv`` (the per-packet path) for CBC ciphers the encryption of ``rng``'s block under
    the SA's running encryptor (:meth:`CbcCipher.encrypt_chained`: no cipher context per packet)."""
    pad = -(len(payload) + 2) % codec.align
    trailer = _TRAILERS[pad][next_header] if pad < 32 else PADDING[pad] + bytes((pad, next_header))
    header = _HEADER.pack(codec.spi, seq)
    aead = codec.aead
    if aead is not None:
        iv = rng(GCM_IV)
        # RFC 4106 5: AAD = SPI | sequence number (32-bit, no ESN); nonce = salt | IV.
        encrypt = codec._gcm_encrypt
        if encrypt is not None:
            return b"".join((header, iv, encrypt(codec._salt + iv, payload + trailer, header)))
        return header + iv + aead.seal(iv, payload + trailer, header)
    cipher = codec.cipher
    assert cipher is not None
    if not cipher.iv_len:
        iv_and_ct = payload + trailer
    elif chained_iv and codec._cbc:  # payload | trailer is whole blocks: align is the block size
        update = codec._cbc_update
        if update is None:
            update = codec._cbc_update = cipher.chained_update()
        iv_and_ct = update(b"".join((rng(cipher.iv_len), payload, trailer)))
    elif chained_iv:
        iv_and_ct = cipher.encrypt_chained(rng(cipher.iv_len), payload + trailer)
    else:
        iv = rng(cipher.iv_len)
        iv_and_ct = iv + cipher.encrypt(iv, payload + trailer)
    integrity = codec.integrity
    if integrity is None:
        return header + iv_and_ct
    # RFC 4303 3.3.4: the ICV covers SPI, sequence number, IV and ciphertext (encrypt, then MAC).
    return b"".join((header, iv_and_ct, integrity.mac2(header, iv_and_ct)))


def peek(data: bytes) -> tuple[int, int]:
    """(SPI, sequence number) of an ESP packet; :class:`Drop` ``malformed`` if it is too short."""
    if len(data) < 8:
        raise Drop("malformed", f"ESP packet of {len(data)} bytes")
    spi, seq = _HEADER.unpack_from(data)
    return spi, seq


def open_esp(codec: EspCodec, data: bytes) -> bytes | None:
    """Verify the ICV, then decrypt: the plaintext (payload | padding | pad length | next header),
    or None when the ICV does not verify. :class:`Drop` ``malformed`` for impossible lengths."""
    if len(data) < codec.min_len:
        raise Drop("malformed", f"ESP packet of {len(data)} bytes is too short for {codec.name}")
    iv_end = 8 + codec.iv_len
    aead = codec.aead
    if aead is not None:
        return aead.open(data[8:iv_end], data[iv_end:], data[:8])
    cipher = codec.cipher
    assert cipher is not None
    icv_len = codec.icv_len
    body_end = len(data) - icv_len
    if (body_end - iv_end) % cipher.block_size:
        raise Drop("malformed", "ESP ciphertext is not a multiple of the block size")
    view = memoryview(data)
    integrity = codec.integrity
    if integrity is not None and not integrity.verify(data[body_end:], view[:body_end]):
        return None
    return cipher.decrypt_joined(view[8:body_end])


def strip_trailer(plaintext: bytes) -> tuple[int, bytes]:
    """(next header, payload) of a decrypted ESP plaintext; :class:`Drop` ``padding`` when the pad
    length is impossible or the padding is not 1, 2, 3, ... (RFC 4303 2.4)."""
    if len(plaintext) < 2:
        raise Drop("padding", "no ESP trailer")
    pad = plaintext[-2]
    end = len(plaintext) - 2 - pad
    if end < 0:
        raise Drop("padding", f"pad length {pad} exceeds the plaintext")
    if pad and plaintext[end : end + pad] != PADDING[pad]:
        raise Drop("padding", "padding bytes are not 1, 2, 3, ...")
    return plaintext[-1], plaintext[:end]


def decapsulate(codec: EspCodec, data: bytes) -> tuple[int, bytes]:
    """(next header, payload) of an ESP packet: ICV verified (:class:`Drop` ``icv``), padding
    checked (:class:`Drop` ``padding``). Replay protection is the caller's (see module docstring)."""
    plaintext = open_esp(codec, data)
    if plaintext is None:
        raise Drop("icv", f"ESP ICV mismatch on SPI {codec.spi:#010x}")
    return strip_trailer(plaintext)
