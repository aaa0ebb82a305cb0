"""Negotiated algorithm numbers -> hashes, PRFs, CBC ciphers and key sizes.

Every primitive comes from ``cryptography`` (OpenSSL); nothing here implements a cipher, a hash or
an HMAC. The IKEv1 prf is always HMAC with the negotiated hash (RFC 2409 section 4: "the HMAC
version of the negotiated hash algorithm"); no IKEv1 PRF attribute value is defined otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import BlockCipherAlgorithm, Cipher, algorithms, modes

from snakeswan.errors import CryptoError
from snakeswan.wire.enums import AhTransformId, AuthAlgorithm, EspTransformId, IkeEncryption, IkeHash, name_of

try:  # cryptography >= 43 keeps (3)DES under "decrepit"; 48 removed the old location.
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES as _TripleDES
except ImportError:  # pragma: no cover - cryptography 42
    from cryptography.hazmat.primitives.ciphers.algorithms import (  # type: ignore[attr-defined,no-redef,unused-ignore]
        TripleDES as _TripleDES,
    )

__all__ = [
    "CbcCipher",
    "HashAlg",
    "UnsupportedAlgorithm",
    "ah_auth_algorithm",
    "auth_key_size",
    "esp_encryption_key_size",
    "hash_by_name",
    "ike_cipher",
    "ike_hash",
]


class UnsupportedAlgorithm(CryptoError):
    """An algorithm number (or name, or key length) snakeswan does not implement."""


# --------------------------------------------------------------------------------------------------
# Hashes and the IKEv1 prf


@dataclass(frozen=True)
class HashAlg:
    """A hash function and its HMAC, the IKEv1 prf."""

    name: str
    digest_size: int
    _factory: Callable[[], hashes.HashAlgorithm] = field(repr=False, compare=False)

    def digest(self, data: bytes) -> bytes:
        """hash(data)."""
        ctx = hashes.Hash(self._factory())
        ctx.update(data)
        return ctx.finalize()

    def prf(self, key: bytes, data: bytes) -> bytes:
        """prf(key, data) = HMAC-<hash>(key, data) (RFC 2104, RFC 2409 section 4)."""
        mac = crypto_hmac.HMAC(key, self._factory())
        mac.update(data)
        return mac.finalize()


_HASHES: dict[str, HashAlg] = {
    h.name: h
    for h in (
        HashAlg("md5", 16, hashes.MD5),
        HashAlg("sha1", 20, hashes.SHA1),
        HashAlg("sha256", 32, hashes.SHA256),
        HashAlg("sha384", 48, hashes.SHA384),
        HashAlg("sha512", 64, hashes.SHA512),
    )
}

_IKE_HASH_NAMES: dict[int, str] = {
    IkeHash.MD5: "md5",
    IkeHash.SHA: "sha1",
    IkeHash.SHA2_256: "sha256",
    IkeHash.SHA2_384: "sha384",
    IkeHash.SHA2_512: "sha512",
}


def hash_by_name(name: str) -> HashAlg:
    """Hash name ("md5", "sha1", "sha256", "sha384" or "sha512") -> :class:`HashAlg`."""
    try:
        return _HASHES[name]
    except KeyError:
        raise UnsupportedAlgorithm(f"unsupported hash algorithm {name!r}") from None


def ike_hash(hash_id: int) -> HashAlg:
    """Phase 1 HASH_ALGORITHM attribute value (:class:`IkeHash`) -> :class:`HashAlg`."""
    try:
        return _HASHES[_IKE_HASH_NAMES[hash_id]]
    except KeyError:
        raise UnsupportedAlgorithm(f"unsupported IKE hash algorithm {name_of(IkeHash, hash_id)}") from None


# --------------------------------------------------------------------------------------------------
# CBC ciphers (phase 1 encryption)


def _des(key: bytes) -> BlockCipherAlgorithm:
    # Single DES is 3DES-EDE with K1 = K2 = K3: E_K(D_K(E_K(x))) = E_K(x).
    return _TripleDES(key * 3)


def _tdes(key: bytes) -> BlockCipherAlgorithm:
    return _TripleDES(key)


def _aes(key: bytes) -> BlockCipherAlgorithm:
    return algorithms.AES(key)


@dataclass(frozen=True)
class CbcCipher:
    """A block cipher in CBC mode without padding (IKEv1 pads the plaintext itself)."""

    name: str
    block_size: int
    key_size: int
    _factory: Callable[[bytes], BlockCipherAlgorithm] = field(repr=False, compare=False)

    def _cipher(self, key: bytes, iv: bytes, data: bytes) -> Cipher[modes.CBC]:
        if len(key) != self.key_size:
            raise CryptoError(f"{self.name}: key is {len(key)} bytes, expected {self.key_size}")
        if len(iv) != self.block_size:
            raise CryptoError(f"{self.name}: IV is {len(iv)} bytes, expected {self.block_size}")
        if len(data) % self.block_size:
            raise CryptoError(
                f"{self.name}: data length {len(data)} is not a multiple of the block size {self.block_size}"
            )
        return Cipher(self._factory(key), modes.CBC(iv))

    def encrypt(self, key: bytes, iv: bytes, data: bytes) -> bytes:
        """C_i = E_K(P_i xor C_(i-1)), C_0 = IV."""
        enc = self._cipher(key, iv, data).encryptor()
        return enc.update(data) + enc.finalize()

    def decrypt(self, key: bytes, iv: bytes, data: bytes) -> bytes:
        """P_i = D_K(C_i) xor C_(i-1), C_0 = IV."""
        dec = self._cipher(key, iv, data).decryptor()
        return dec.update(data) + dec.finalize()


_DES = CbcCipher("des", 8, 8, _des)
_3DES = CbcCipher("3des", 8, 24, _tdes)
_AES = {bits: CbcCipher(f"aes{bits}", 16, bits // 8, _aes) for bits in (128, 192, 256)}


def ike_cipher(encr_id: int, key_length_bits: int | None) -> CbcCipher:
    """Phase 1 ENCRYPTION_ALGORITHM (+ KEY_LENGTH attribute, in bits) -> :class:`CbcCipher`.

    DES and 3DES have a fixed key size, so a KEY_LENGTH attribute is refused unless it states that
    size. AES-CBC without KEY_LENGTH means 128 bits (RFC 3602 section 5.3).
    """
    if encr_id == IkeEncryption.DES_CBC and key_length_bits in (None, 64):
        return _DES
    if encr_id == IkeEncryption.TRIPLE_DES_CBC and key_length_bits in (None, 192):
        return _3DES
    if encr_id == IkeEncryption.AES_CBC:
        bits = 128 if key_length_bits is None else key_length_bits
        if bits in _AES:
            return _AES[bits]
    suffix = "" if key_length_bits is None else f" with key length {key_length_bits}"
    raise UnsupportedAlgorithm(
        f"unsupported IKE encryption algorithm {name_of(IkeEncryption, encr_id)}{suffix}"
    )


# --------------------------------------------------------------------------------------------------
# Phase 2 key sizes (how much KEYMAT each SA needs)

_AES_KEY_BITS = (128, 192, 256)

# Extra bytes taken from KEYMAT after the AES key: the nonce/salt of the counter-based modes.
_ESP_AES_SALT: dict[int, int] = {
    EspTransformId.AES_CBC: 0,  # RFC 3602
    EspTransformId.AES_CTR: 4,  # RFC 3686 section 5.1: key | 4-byte nonce
    EspTransformId.AES_CCM_8: 3,  # RFC 4309 section 7.1: key | 3-byte salt
    EspTransformId.AES_CCM_12: 3,
    EspTransformId.AES_CCM_16: 3,
    EspTransformId.AES_GCM_8: 4,  # RFC 4106 section 8.1: key | 4-byte salt
    EspTransformId.AES_GCM_12: 4,
    EspTransformId.AES_GCM_16: 4,
    EspTransformId.NULL_AUTH_AES_GMAC: 4,  # RFC 4543 section 6.1: key | 4-byte salt
}

_ESP_FIXED_KEY: dict[int, int] = {
    EspTransformId.DES: 8,  # RFC 2405
    EspTransformId.TRIPLE_DES: 24,  # RFC 2451
    EspTransformId.NULL: 0,  # RFC 2410
}


def esp_encryption_key_size(transform_id: int, key_length_bits: int | None) -> int:
    """Bytes of KEYMAT for an ESP transform's encryption key, salt/nonce included.

    AES modes without a KEY_LENGTH attribute mean 128 bits, as for AES-CBC (RFC 3602). Fixed-size
    ciphers accept no KEY_LENGTH attribute, or one that states their size.
    """
    fixed = _ESP_FIXED_KEY.get(transform_id)
    if fixed is not None and key_length_bits in (None, fixed * 8):
        return fixed
    if transform_id == EspTransformId.CHACHA20_POLY1305 and key_length_bits in (None, 256):
        return 32 + 4  # RFC 7634 section 2: a 256-bit key | 4-byte salt
    if transform_id in _ESP_AES_SALT:
        bits = 128 if key_length_bits is None else key_length_bits
        if bits in _AES_KEY_BITS:
            return bits // 8 + _ESP_AES_SALT[transform_id]
    suffix = "" if key_length_bits is None else f" with key length {key_length_bits}"
    raise UnsupportedAlgorithm(f"unsupported ESP transform {name_of(EspTransformId, transform_id)}{suffix}")


_AUTH_KEY_SIZE: dict[int, int] = {
    AuthAlgorithm.HMAC_MD5: 16,  # RFC 2403
    AuthAlgorithm.HMAC_SHA: 20,  # RFC 2404
    AuthAlgorithm.HMAC_SHA2_256: 32,  # RFC 4868
    AuthAlgorithm.HMAC_SHA2_384: 48,
    AuthAlgorithm.HMAC_SHA2_512: 64,
    AuthAlgorithm.AES_XCBC_MAC: 16,  # RFC 3566
}


def auth_key_size(auth_alg: int) -> int:
    """Bytes of KEYMAT for an IPsec AUTHENTICATION_ALGORITHM (:class:`AuthAlgorithm`) key."""
    try:
        return _AUTH_KEY_SIZE[auth_alg]
    except KeyError:
        raise UnsupportedAlgorithm(
            f"unsupported IPsec authentication algorithm {name_of(AuthAlgorithm, auth_alg)}"
        ) from None


_AH_AUTH: dict[int, int] = {
    AhTransformId.MD5: AuthAlgorithm.HMAC_MD5,  # RFC 2407 section 4.4.3.2
    AhTransformId.SHA: AuthAlgorithm.HMAC_SHA,  # RFC 2407 section 4.4.3.3
    AhTransformId.SHA2_256: AuthAlgorithm.HMAC_SHA2_256,  # RFC 4868 section 2
    AhTransformId.SHA2_384: AuthAlgorithm.HMAC_SHA2_384,
    AhTransformId.SHA2_512: AuthAlgorithm.HMAC_SHA2_512,
}


def ah_auth_algorithm(ah_transform_id: int) -> int:
    """AH transform ID (:class:`AhTransformId`) -> the :class:`AuthAlgorithm` it implies."""
    try:
        return _AH_AUTH[ah_transform_id]
    except KeyError:
        raise UnsupportedAlgorithm(
            f"unsupported AH transform {name_of(AhTransformId, ah_transform_id)}"
        ) from None
