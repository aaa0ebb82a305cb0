"""ESP/AH transforms -> preconstructed primitives from ``cryptography`` (never hand-written).

- :class:`Aead`: AES-GCM for ESP (RFC 4106) with an 8, 12 or 16-byte ICV. The keying material is
  the AES key followed by a 4-byte salt (RFC 4106 8.1); nonce = salt | 8-byte explicit IV; the AAD
  is SPI | sequence number (no ESN, RFC 4106 5). The ``AESGCM`` object is built once per SA.
- :class:`ChaChaAead`: ChaCha20-Poly1305 (RFC 7634): key | 4-byte salt, nonce = salt | 8-byte IV,
  the same AAD as GCM, a 16-byte tag.
- :class:`CbcCipher`: AES-CBC 128/192/256 (RFC 3602), 3DES-CBC (RFC 2451), DES-CBC (RFC 2405); the
  IV is explicit, one block. :data:`NULL_CIPHER` is ESP_NULL (RFC 2410). One CBC encryptor and one
  decryptor live as long as the SA (building a ``Cipher(...).encryptor()`` costs ~4x the encryption
  of a 1400-byte packet, and ``cryptography`` cannot re-IV a CBC context; :class:`CtrCipher`
  re-IVs its one context with ``reset_nonce``):

  * decryption feeds IV | ciphertext to the running decryptor and drops the first output block:
    CBC decrypts block i as D_K(C_i) xor C_(i-1), so the blocks after the IV come out exactly as
    from a fresh context with that IV;
  * encryption (:meth:`CbcCipher.encrypt_chained`) is RFC 4346 6.2.3.2 (2)(b): a fresh random
    block R is prepended to the plaintext and the running encryptor (mask: the previous packet's
    CBC residue) encrypts R | plaintext; E_K(R xor residue), random and unpredictable, is the IV
    on the wire. :meth:`CbcCipher.encrypt` takes an imposed IV (known-answer tests) the slow way.
- :class:`Integrity`: HMAC-MD5-96 (RFC 2403), HMAC-SHA1-96 (RFC 2404), HMAC-SHA2-256-128,
  -384-192, -512-256 (RFC 4868): the HMAC truncated to its leftmost ``icv_len`` bytes. A keyed HMAC
  context is made once per SA and copied per packet (measured, 1400 bytes: copy 1.2 us, a new
  ``HMAC`` 1.9 us, ``hmac.digest`` 2.1 us); ICVs are compared with ``hmac.compare_digest``.
"""

from __future__ import annotations

import hmac as std_hmac
from collections.abc import Callable
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import (
    BlockCipherAlgorithm,
    Cipher,
    CipherContext,
    algorithms,
    modes,
)
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

from snakeswan.crypto.algorithms import UnsupportedAlgorithm, ah_auth_algorithm
from snakeswan.errors import CryptoError
from snakeswan.wire.enums import AuthAlgorithm, EspTransformId, name_of

try:  # cryptography >= 43 keeps (3)DES under "decrepit" (as snakeswan.crypto.algorithms does)
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES as _TripleDES
except ImportError:  # pragma: no cover - cryptography 42
    from cryptography.hazmat.primitives.ciphers.algorithms import (  # type: ignore[attr-defined,no-redef,unused-ignore]
        TripleDES as _TripleDES,
    )

__all__ = [
    "NULL_CIPHER",
    "Aead",
    "AnyAead",
    "CbcCipher",
    "CcmAead",
    "ChaChaAead",
    "CtrCipher",
    "GmacAead",
    "Integrity",
    "UnsupportedAlgorithm",
    "ah_integrity",
    "esp_transform",
]

GCM_SALT: Final = 4
GCM_IV: Final = 8
_GCM_ICV: Final[dict[int, int]] = {
    EspTransformId.AES_GCM_8: 8,
    EspTransformId.AES_GCM_12: 12,
    EspTransformId.AES_GCM_16: 16,
}
_AES_BITS: Final = (128, 192, 256)
_GCM_FIRST: Final = b"\x00\x00\x00\x02"  # GCM's first data block counter with a 96-bit nonce


class Aead:
    """AES-GCM as ESP uses it (RFC 4106). ``key`` is the keying material: key | 4-byte salt.

    ``AESGCM`` (built once per SA) only checks full 16-byte tags. With an 8 or 12-byte ICV, a
    packet is opened without a context of its own: GCM encrypts with AES-CTR from the counter
    block nonce | 2 (NIST SP 800-38D 7.1), so the SA's one CTR context, re-IVed with
    ``reset_nonce``, gives the candidate plaintext; sealing that plaintext again under the same
    nonce and AAD gives back the same ciphertext and its full tag, whose leftmost bytes must equal
    the ICV (``hmac.compare_digest``) before the plaintext is returned. 1.6 us for 1400 bytes
    against 7.3 us with a ``Cipher(..., GCM(...)).decryptor()`` per packet."""

    __slots__ = ("_aesgcm", "_ctr", "_key", "icv_len", "name", "salt")

    def __init__(self, key: bytes, icv_len: int) -> None:
        if len(key) - GCM_SALT not in (16, 24, 32):
            raise CryptoError(f"AES-GCM keying material is {len(key)} bytes, expected 20, 28 or 36")
        self._key = key[:-GCM_SALT]
        self.salt = key[-GCM_SALT:]  # RFC 4106 8.1: the last 4 octets of the keying material
        self.icv_len = icv_len
        self.name = f"aes{len(self._key) * 8}gcm{icv_len}"
        self._aesgcm = AESGCM(self._key)
        self._ctr: CipherContext | None = None  # truncated ICVs only, made on first use

    def full_tag_encrypt(self) -> Callable[[bytes, bytes, bytes], bytes] | None:
        """``encrypt(salt | IV, plaintext, aad)`` giving what :meth:`seal` gives, for the
        per-packet path (one call less); None with a truncated ICV (then :meth:`seal`)."""
        return self._aesgcm.encrypt if self.icv_len == 16 else None

    def seal(self, iv: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """ciphertext | ICV; nonce = salt | IV (RFC 4106 4)."""
        sealed = self._aesgcm.encrypt(self.salt + iv, plaintext, aad)
        if self.icv_len == 16:
            return sealed
        # A truncated GCM tag is the leftmost bytes of the full tag (NIST SP 800-38D 5.2.1.2).
        return sealed[: len(sealed) - 16 + self.icv_len]

    def open(self, iv: bytes, sealed: bytes | memoryview, aad: bytes) -> bytes | None:
        """The plaintext, or None when the ICV does not verify."""
        nonce = self.salt + iv
        if self.icv_len == 16:
            try:
                return self._aesgcm.decrypt(nonce, sealed, aad)
            except (InvalidTag, ValueError):
                return None
        body = len(sealed) - self.icv_len
        if body < 0:
            return None
        ctr = self._ctr
        if ctr is None:
            ctr = self._ctr = Cipher(algorithms.AES(self._key), modes.CTR(nonce + _GCM_FIRST)).encryptor()
        else:
            ctr.reset_nonce(nonce + _GCM_FIRST)
        plaintext = ctr.update(sealed[:body])
        tag = self._aesgcm.encrypt(nonce, plaintext, aad)[body : body + self.icv_len]
        return plaintext if std_hmac.compare_digest(tag, bytes(sealed[body:])) else None


class CcmAead:
    """AES-CCM as ESP uses it (RFC 4309): keying material = key | 3-byte salt, nonce = salt | 8-byte
    explicit IV, AAD = SPI | sequence number, an 8, 12 or 16-byte ICV."""

    __slots__ = ("_ccm", "icv_len", "name", "salt")

    def __init__(self, key: bytes, icv_len: int) -> None:
        if len(key) - 3 not in (16, 24, 32):
            raise CryptoError(f"AES-CCM keying material is {len(key)} bytes, expected 19, 27 or 35")
        self.salt = key[-3:]  # RFC 4309 7.1
        self.icv_len = icv_len
        self.name = f"aes{(len(key) - 3) * 8}ccm{icv_len}"
        self._ccm = AESCCM(key[:-3], tag_length=icv_len)

    def seal(self, iv: bytes, plaintext: bytes, aad: bytes) -> bytes:
        return self._ccm.encrypt(self.salt + iv, plaintext, aad)

    def open(self, iv: bytes, sealed: bytes, aad: bytes) -> bytes | None:
        try:
            return self._ccm.decrypt(self.salt + iv, sealed, aad)
        except (InvalidTag, ValueError):
            return None


class ChaChaAead:
    """ChaCha20-Poly1305 as ESP uses it (RFC 7634): keying material = 256-bit key | 4-byte salt,
    nonce = salt | 8-byte explicit IV, AAD = SPI | sequence number (no ESN), a 16-byte tag."""

    __slots__ = ("_aead", "icv_len", "name", "salt")

    def __init__(self, key: bytes) -> None:
        if len(key) != 36:
            raise CryptoError(f"ChaCha20-Poly1305 keying material is {len(key)} bytes, expected 36")
        self.salt = key[32:]  # RFC 7634 section 2: the last 4 octets of the keying material
        self.icv_len = 16
        self.name = "chacha20poly1305"
        self._aead = ChaCha20Poly1305(key[:32])

    def seal(self, iv: bytes, plaintext: bytes, aad: bytes) -> bytes:
        return self._aead.encrypt(self.salt + iv, plaintext, aad)

    def open(self, iv: bytes, sealed: bytes, aad: bytes) -> bytes | None:
        try:
            return self._aead.decrypt(self.salt + iv, sealed, aad)
        except (InvalidTag, ValueError):
            return None


class GmacAead:
    """ENCR_NULL_AUTH_AES_GMAC (RFC 4543): no encryption, a 16-byte GMAC ICV over SPI | sequence
    number | IV | the plaintext payload (GCM with empty plaintext and all of that as AAD);
    keying material = key | 4-byte salt, nonce = salt | IV."""

    __slots__ = ("_gcm", "icv_len", "name", "salt")

    def __init__(self, key: bytes) -> None:
        if len(key) - GCM_SALT not in (16, 24, 32):
            raise CryptoError(f"AES-GMAC keying material is {len(key)} bytes, expected 20, 28 or 36")
        self.salt = key[-GCM_SALT:]
        self.icv_len = 16
        self.name = f"aes{(len(key) - GCM_SALT) * 8}gmac"
        self._gcm = AESGCM(key[:-GCM_SALT])

    def seal(self, iv: bytes, plaintext: bytes, aad: bytes) -> bytes:
        return plaintext + self._gcm.encrypt(self.salt + iv, b"", aad + iv + plaintext)

    def open(self, iv: bytes, sealed: bytes, aad: bytes) -> bytes | None:
        if len(sealed) < 16:
            return None
        plaintext, tag = sealed[:-16], sealed[-16:]
        try:
            self._gcm.decrypt(self.salt + iv, tag, aad + iv + plaintext)
        except (InvalidTag, ValueError):
            return None
        return plaintext


class CbcCipher:
    """A block cipher in CBC mode with an explicit IV; ESP does its own padding. Not thread-safe:
    the encryptor and decryptor carry their chaining state from one call to the next."""

    __slots__ = ("_algorithm", "_dec", "_enc", "block_size", "iv_len", "name")

    def __init__(self, name: str, algorithm: BlockCipherAlgorithm, block_size: int) -> None:
        self.name = name
        self._algorithm = algorithm  # key schedule validated once per SA
        self.block_size = block_size
        self.iv_len = block_size
        # Made on first use (an SA direction only ever needs one: ~0.8 KB each); the first mask
        # is zero, every packet brings its own IV.
        self._enc: CipherContext | None = None
        self._dec: CipherContext | None = None

    def _check(self, what: str, length: int) -> None:
        # A partial block would stay buffered in the running context and garble later packets.
        if length % self.block_size:
            raise CryptoError(f"{self.name}: {what} of {length} bytes is not a multiple of the block size")

    def encrypt(self, iv: bytes, data: bytes) -> bytes:
        """C_i = E_K(P_i xor C_(i-1)), C_0 = IV: with an imposed IV, a context of its own."""
        enc = Cipher(self._algorithm, modes.CBC(iv)).encryptor()
        return enc.update(data) + enc.finalize()

    def encrypt_chained(self, random_block: bytes, data: bytes) -> bytes:
        """IV | ciphertext of ``data``, IV = E_K(R xor residue) with R = ``random_block`` (fresh
        from the random source, one block) and residue the last ciphertext block this SA sent
        (RFC 4346 6.2.3.2 (2)(b)): C_0 = IV, C_i = E_K(P_i xor C_(i-1)) as with a fresh context."""
        if len(random_block) != self.block_size:
            raise CryptoError(f"{self.name}: the random block must be {self.block_size} bytes")
        self._check("plaintext", len(data))
        enc = self._enc
        if enc is None:
            enc = self._enc = Cipher(self._algorithm, modes.CBC(bytes(self.block_size))).encryptor()
        return enc.update(random_block + data)

    def chained_update(self) -> Callable[[bytes], bytes]:
        """The running encryptor's ``update`` for callers that pad to whole blocks themselves:
        ``update(R | plaintext)`` is :meth:`encrypt_chained` without its checks (one call less
        per packet). Plain CBC only: CTR and NULL chain otherwise."""
        if type(self) is not CbcCipher:
            raise CryptoError(f"{self.name}: not a CBC cipher")
        if self._enc is None:
            self._enc = Cipher(self._algorithm, modes.CBC(bytes(self.block_size))).encryptor()
        return self._enc.update

    def decrypt(self, iv: bytes, data: bytes) -> bytes:
        """P_i = D_K(C_i) xor C_(i-1), C_0 = IV."""
        return self.decrypt_joined(iv + data)

    def decrypt_joined(self, iv_and_data: bytes | memoryview) -> bytes:
        """:meth:`decrypt` of IV | ciphertext given as one buffer: the running decryptor's output
        for the IV block (D_K(IV) xor the previous residue) is dropped, the rest is P_1..P_n."""
        if len(iv_and_data) < self.block_size:
            raise CryptoError(f"{self.name}: no IV")
        self._check("ciphertext", len(iv_and_data))
        dec = self._dec
        if dec is None:
            dec = self._dec = Cipher(self._algorithm, modes.CBC(bytes(self.block_size))).decryptor()
        return dec.update(iv_and_data)[self.block_size :]


class _NullCipher(CbcCipher):
    """ESP_NULL (RFC 2410): no IV, identity; the payload is aligned to 4 bytes."""

    def __init__(self) -> None:
        self.name = "null"
        self.block_size = 4
        self.iv_len = 0

    def encrypt(self, iv: bytes, data: bytes) -> bytes:
        return data

    def encrypt_chained(self, random_block: bytes, data: bytes) -> bytes:
        return data

    def decrypt(self, iv: bytes, data: bytes) -> bytes:
        return data

    def decrypt_joined(self, iv_and_data: bytes | memoryview) -> bytes:
        return bytes(iv_and_data)


NULL_CIPHER: Final[CbcCipher] = _NullCipher()


class CtrCipher(CbcCipher):
    """AES-CTR for ESP (RFC 3686): keying material = key | 4-byte nonce; counter block = nonce |
    8-byte IV | block counter from 1; padding to 4 bytes. The IV must never repeat under one key
    (RFC 3686 3.1), so the sender counts (a per-SA 64-bit counter) instead of drawing it.

    One CTR context lives as long as the SA and ``reset_nonce`` gives it each packet's counter
    block (and drops any keystream left from a partial block): a fresh ``Cipher(...).encryptor()``
    per packet cost 6.6 us against 0.7 us for a 1400-byte packet. Not thread-safe."""

    __slots__ = ("_aes", "_ctx", "_nonce", "_sent")

    def __init__(self, key: bytes) -> None:
        if len(key) - 4 not in (16, 24, 32):
            raise CryptoError(f"AES-CTR keying material is {len(key)} bytes, expected 20, 28 or 36")
        self.name = f"aes{(len(key) - 4) * 8}ctr"
        self.block_size = 4
        self.iv_len = 8
        self._aes = algorithms.AES(key[:-4])
        self._nonce = key[-4:]
        self._sent = 0
        self._ctx: CipherContext | None = None  # made on first use

    def _crypt(self, iv: bytes, data: bytes | memoryview) -> bytes:
        block = self._nonce + iv + b"\x00\x00\x00\x01"
        ctx = self._ctx
        if ctx is None:
            ctx = self._ctx = Cipher(self._aes, modes.CTR(block)).encryptor()
        else:
            ctx.reset_nonce(block)
        return ctx.update(data)

    def encrypt(self, iv: bytes, data: bytes) -> bytes:
        return self._crypt(iv, data)

    def encrypt_chained(self, random_block: bytes, data: bytes) -> bytes:
        self._sent += 1
        iv = self._sent.to_bytes(8, "big")
        return iv + self._crypt(iv, data)

    def decrypt(self, iv: bytes, data: bytes) -> bytes:
        return self._crypt(iv, data)

    def decrypt_joined(self, iv_and_data: bytes | memoryview) -> bytes:
        if len(iv_and_data) < 8:
            raise CryptoError(f"{self.name}: no IV")
        return self._crypt(bytes(iv_and_data[:8]), iv_and_data[8:])


_HMACS: Final[dict[int, tuple[str, Callable[[], hashes.HashAlgorithm], int, int]]] = {
    # AuthAlgorithm: (name, hash, key bytes, ICV bytes)
    AuthAlgorithm.HMAC_MD5: ("md5_96", hashes.MD5, 16, 12),  # RFC 2403
    AuthAlgorithm.HMAC_SHA: ("sha1_96", hashes.SHA1, 20, 12),  # RFC 2404
    AuthAlgorithm.HMAC_SHA2_256: ("sha256_128", hashes.SHA256, 32, 16),  # RFC 4868 2.3
    AuthAlgorithm.HMAC_SHA2_384: ("sha384_192", hashes.SHA384, 48, 24),
    AuthAlgorithm.HMAC_SHA2_512: ("sha512_256", hashes.SHA512, 64, 32),
}


class Integrity:
    """HMAC-<hash> truncated to ``icv_len`` bytes (RFC 2104, RFC 4868 2.3)."""

    __slots__ = ("_base", "icv_len", "name")

    def __init__(self, auth: int, key: bytes) -> None:
        try:
            name, factory, key_len, icv_len = _HMACS[auth]
        except KeyError:
            raise UnsupportedAlgorithm(
                f"unsupported IPsec integrity algorithm {name_of(AuthAlgorithm, auth)}"
            ) from None
        if len(key) != key_len:
            raise CryptoError(f"hmac_{name}: key is {len(key)} bytes, expected {key_len}")
        self.name = f"hmac_{name}"
        self.icv_len = icv_len
        self._base = crypto_hmac.HMAC(key, factory())

    def mac(self, *parts: bytes | memoryview) -> bytes:
        """ICV = leftmost icv_len bytes of HMAC(K, parts...)."""
        ctx = self._base.copy()
        for part in parts:
            ctx.update(part)
        return ctx.finalize()[: self.icv_len]

    def mac2(self, first: bytes, second: bytes) -> bytes:
        """:meth:`mac` of two parts (ESP's header and IV | ciphertext), without a tuple."""
        ctx = self._base.copy()
        ctx.update(first)
        ctx.update(second)
        return ctx.finalize()[: self.icv_len]

    def verify(self, icv: bytes, *parts: bytes | memoryview) -> bool:
        return std_hmac.compare_digest(self.mac(*parts), icv)


def _cbc(transform_id: int, key_length: int | None, key: bytes) -> CbcCipher:
    if transform_id == EspTransformId.AES_CBC:
        bits = key_length or 128
        if bits in _AES_BITS and len(key) == bits // 8:
            return CbcCipher(f"aes{bits}", algorithms.AES(key), 16)
    elif transform_id == EspTransformId.TRIPLE_DES and key_length in (None, 192) and len(key) == 24:
        return CbcCipher("3des", _TripleDES(key), 8)
    elif transform_id == EspTransformId.DES and key_length in (None, 64) and len(key) == 8:
        # Single DES is 3DES-EDE with K1 = K2 = K3: E_K(D_K(E_K(x))) = E_K(x).
        return CbcCipher("des", _TripleDES(key * 3), 8)
    elif transform_id == EspTransformId.NULL and not key:
        return NULL_CIPHER
    suffix = "" if key_length is None else f" with key length {key_length}"
    raise UnsupportedAlgorithm(
        f"unsupported ESP transform {name_of(EspTransformId, transform_id)}{suffix} or a {len(key)}-byte key"
    )


_CCM_ICV: Final[dict[int, int]] = {
    EspTransformId.AES_CCM_8: 8,
    EspTransformId.AES_CCM_12: 12,
    EspTransformId.AES_CCM_16: 16,
}
AnyAead = Aead | CcmAead | GmacAead | ChaChaAead


def _aead(transform_id: int, key_length: int | None, auth: int | None, enc_key: bytes) -> AnyAead | None:
    if transform_id == EspTransformId.CHACHA20_POLY1305:
        if auth is not None:
            raise UnsupportedAlgorithm("CHACHA20_POLY1305 takes no separate integrity")
        if key_length not in (None, 256):
            raise CryptoError(f"CHACHA20_POLY1305 with key length {key_length}")
        return ChaChaAead(enc_key)
    gcm, ccm = _GCM_ICV.get(transform_id), _CCM_ICV.get(transform_id)
    if gcm is None and ccm is None and transform_id != EspTransformId.NULL_AUTH_AES_GMAC:
        return None
    if auth is not None:
        raise UnsupportedAlgorithm(f"{name_of(EspTransformId, transform_id)} takes no separate integrity")
    bits = key_length or 128
    salt = 3 if ccm is not None else GCM_SALT
    if bits not in _AES_BITS or len(enc_key) != bits // 8 + salt:
        raise CryptoError(
            f"{name_of(EspTransformId, transform_id)}-{bits}: keying material is {len(enc_key)} bytes"
        )
    if gcm is not None:
        return Aead(enc_key, gcm)
    if ccm is not None:
        return CcmAead(enc_key, ccm)
    return GmacAead(enc_key)


def esp_transform(
    transform_id: int, key_length: int | None, auth: int | None, enc_key: bytes, int_key: bytes
) -> tuple[AnyAead | None, CbcCipher | None, Integrity | None]:
    """(AEAD, None, None) for AES-GCM, AES-CCM, AES-GMAC and ChaCha20-Poly1305, else (None, cipher,
    integrity or None: no integrity)."""
    aead = _aead(transform_id, key_length, auth, enc_key)
    if aead is not None:
        return aead, None, None
    if transform_id == EspTransformId.AES_CTR:
        if auth is None:
            raise UnsupportedAlgorithm("AES-CTR without an integrity algorithm")
        bits = key_length or 128
        if bits not in _AES_BITS or len(enc_key) != bits // 8 + 4:
            raise CryptoError(f"AES-CTR-{bits}: keying material is {len(enc_key)} bytes")
        return None, CtrCipher(enc_key), Integrity(auth, int_key)
    cipher = _cbc(transform_id, key_length, enc_key)
    integrity = Integrity(auth, int_key) if auth is not None else None
    if cipher is NULL_CIPHER and integrity is None:
        raise UnsupportedAlgorithm("ESP with neither encryption nor integrity (RFC 4303 3.2)")
    return None, cipher, integrity


def ah_integrity(transform_id: int, auth: int | None, key: bytes) -> Integrity:
    """AH transform (AhTransformId) -> its HMAC; ``auth`` if given must agree with the transform."""
    implied = ah_auth_algorithm(transform_id)
    if auth is not None and auth != implied:
        raise UnsupportedAlgorithm(
            f"AH transform {transform_id} with authentication algorithm {name_of(AuthAlgorithm, auth)}"
        )
    return Integrity(implied, key)
