"""Diffie-Hellman groups for IKEv1: MODP (RFC 2409, RFC 3526), ECP (RFC 5903), Curve25519 (RFC 8031).

Encodings (the KE payload data and the g^xy that goes into SKEYID):

- MODP: y = g^x mod p, big endian, left-padded to the byte length of p (RFC 2409 section 5);
  g^xy likewise.
- ECP: x | y, each coordinate padded to the field size, no 0x04 prefix (RFC 5903 section 7);
  g^xy is the x coordinate of the shared point only, padded (RFC 5903 section 7).
- Curve25519: 32-byte u-coordinates; an all-zero shared secret is refused (RFC 8031 section 2.3).

Private values come from the caller's ``rng``; nothing here reads the system random source.

MODP private exponents are short, not full length: ``max(256, L)`` bits where L is OpenSSL's
private key length for the named group (crypto/ffc/ffc_dh.c: 200 bits for 1536, 225 for 2048, 275
for 3072, 325 for 4096, 375 for 6144, 400 for 8192; taken from RFC 7919 appendix A, about twice the
group's security strength), rounded up to whole bytes. strongSwan uses full-length exponents by
default (``dh_exponent_ansi_x9_42 = yes``) and RFC 3526-sized ones (32..64 bytes) otherwise.

Exponentiation backends, chosen per group from ``bench/dh.py`` (both constant time in the secret
exponent): ``gmpy2.powmod_sec`` for groups 1 and 2, whose primes OpenSSL does not know and so
re-checks on every key load (tens of ms); OpenSSL through ``cryptography`` for the RFC 3526 groups,
where it is 1.4 to 2 times as fast as ``powmod_sec``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import gmpy2
from cryptography.hazmat.primitives.asymmetric import dh, ec, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from snakeswan.crypto.algorithms import UnsupportedAlgorithm
from snakeswan.crypto.dh_primes import MODP_PRIMES
from snakeswan.errors import CryptoError
from snakeswan.wire.enums import DhGroup, name_of

__all__ = [
    "SUPPORTED_GROUPS",
    "DhGroupImpl",
    "DhKeyPair",
    "EcpGroup",
    "ModpGroup",
    "Rng",
    "X25519Group",
    "dh_group",
]

Rng = Callable[[int], bytes]

# How often a private value is redrawn when the rng's bytes fall outside the valid range before
# giving up. With a working rng a single redraw is already rarer than 2^-32.
_MAX_DRAWS = 8


class DhKeyPair(Protocol):
    """One side's ephemeral key pair."""

    @property
    def group_id(self) -> int: ...

    @property
    def public(self) -> bytes:
        """Exactly the KE payload data."""
        ...

    def shared_secret(self, peer_public: bytes) -> bytes:
        """g^xy; an invalid peer value raises :class:`CryptoError` saying why."""
        ...


class DhGroupImpl(Protocol):
    """A group: makes key pairs from the caller's randomness."""

    @property
    def group_id(self) -> int: ...

    @property
    def name(self) -> str:
        """strongSwan's proposal keyword, e.g. "modp2048", "ecp256", "curve25519"."""
        ...

    @property
    def public_size(self) -> int: ...

    def generate(self, rng: Rng) -> DhKeyPair: ...


def _draw(rng: Rng, nbytes: int) -> bytes:
    data = rng(nbytes)
    if len(data) != nbytes:
        raise CryptoError(f"rng returned {len(data)} bytes, asked for {nbytes}")
    return data


def _draw_int(rng: Rng, nbits: int, low: int, high: int, what: str) -> int:
    """Uniform integer in [low, high) by rejection from nbits-bit rng output."""
    nbytes = (nbits + 7) // 8
    mask = (1 << nbits) - 1
    for _ in range(_MAX_DRAWS):
        value = int.from_bytes(_draw(rng, nbytes), "big") & mask
        if low <= value < high:
            return value
    raise CryptoError(f"{what}: rng gave no value in range after {_MAX_DRAWS} draws")


# --------------------------------------------------------------------------------------------------
# MODP


class _ModExp(Protocol):
    def __call__(self, base: int, exponent: int) -> int: ...


def _gmpy2_modexp(prime: int) -> _ModExp:
    p = gmpy2.mpz(prime)

    def modexp(base: int, exponent: int) -> int:
        return int(gmpy2.powmod_sec(base, exponent, p))  # base^exponent mod p, constant time

    return modexp


def _openssl_modexp(prime: int, generator: int) -> _ModExp:
    params = dh.DHParameterNumbers(prime, generator)
    size = (prime.bit_length() + 7) // 8

    def modexp(base: int, exponent: int) -> int:
        # OpenSSL's DH_compute_key(peer = base, priv = exponent) is base^exponent mod p. Our own
        # public value is not used by it, so the key is built with g as a placeholder; this lets the
        # same call compute g^x (keygen, base = g) and g^xy (base = peer's y).
        try:
            own = dh.DHPrivateNumbers(exponent, dh.DHPublicNumbers(generator, params)).private_key()
            peer = dh.DHPublicNumbers(base, params).public_key()
            result = own.exchange(peer)
        except ValueError as exc:  # pragma: no cover - values are validated before
            raise CryptoError(f"OpenSSL DH failed: {exc}") from exc
        return int.from_bytes(result.rjust(size, b"\0"), "big")

    return modexp


@dataclass(frozen=True)
class ModpGroup:
    """A MODP group with generator 2 over a safe prime."""

    group_id: int
    name: str
    prime: int
    exponent_bits: int
    backend: str  # "gmpy2" or "openssl"
    generator: int = 2
    _modexp: _ModExp = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.backend == "gmpy2":
            modexp = _gmpy2_modexp(self.prime)
        elif self.backend == "openssl":
            modexp = _openssl_modexp(self.prime, self.generator)
        else:
            raise ValueError(f"unknown MODP backend {self.backend!r}")
        object.__setattr__(self, "_modexp", modexp)

    @property
    def public_size(self) -> int:
        return (self.prime.bit_length() + 7) // 8

    def with_backend(self, backend: str) -> ModpGroup:
        """The same group computed by another backend ("gmpy2" or "openssl"); for tests and bench."""
        return ModpGroup(self.group_id, self.name, self.prime, self.exponent_bits, backend, self.generator)

    def generate(self, rng: Rng) -> ModpKeyPair:
        return self.pair(*self.generate_numbers(rng))

    def generate_numbers(self, rng: Rng) -> tuple[int, bytes]:
        """A fresh private exponent x and g^x, encoded (a key pair made in another process)."""
        x = _draw_int(rng, self.exponent_bits, 2, 1 << self.exponent_bits, self.name)
        return x, self.encode(self._modexp(self.generator, x))  # g^x mod p (RFC 2409 section 5)

    def pair(self, x: int, public: bytes) -> ModpKeyPair:
        """The key pair of :meth:`generate_numbers`' x and g^x, which are trusted to match (one
        more exponentiation to check them would cost what making them elsewhere saved)."""
        if not 2 <= x < 1 << self.exponent_bits or len(public) != self.public_size:
            raise CryptoError(f"{self.name}: not a private exponent and public value of this group")
        return ModpKeyPair(self, x, public)

    def encode(self, value: int) -> bytes:
        return value.to_bytes(self.public_size, "big")  # big endian, padded to the prime's length

    def validate(self, peer_public: bytes) -> int:
        """The peer's y as an integer, checked 1 < y < p-1 (RFC 6989 section 2.1 for safe primes)."""
        if len(peer_public) != self.public_size:
            raise CryptoError(
                f"{self.name}: public value is {len(peer_public)} bytes, expected {self.public_size}"
            )
        y = int.from_bytes(peer_public, "big")
        if not 1 < y < self.prime - 1:
            raise CryptoError(f"{self.name}: public value is not in the range 1 < y < p-1")
        return y

    def modexp(self, base: int, exponent: int) -> int:
        return self._modexp(base, exponent)


class ModpKeyPair:
    """x and g^x in a MODP group; the repr never shows x."""

    __slots__ = ("_group", "_x", "public")

    def __init__(self, group: ModpGroup, x: int, public: bytes) -> None:
        self._group = group
        self._x = x
        self.public = public

    @property
    def group_id(self) -> int:
        return self._group.group_id

    def shared_secret(self, peer_public: bytes) -> bytes:
        y = self._group.validate(peer_public)
        z = self._group.modexp(y, self._x)  # g^xy = (g^y)^x mod p
        return self._group.encode(z)  # padded to the prime's length

    def __repr__(self) -> str:
        return f"ModpKeyPair(group={self._group.name}, public={self.public[:8].hex()}...)"


# --------------------------------------------------------------------------------------------------
# ECP (RFC 5903)


@dataclass(frozen=True)
class EcpGroup:
    """A NIST prime curve group (RFC 5903)."""

    group_id: int
    name: str
    curve: ec.EllipticCurve = field(compare=False)
    coordinate_size: int
    order: int = field(repr=False)

    @property
    def public_size(self) -> int:
        return 2 * self.coordinate_size  # x | y

    def generate(self, rng: Rng) -> EcpKeyPair:
        # private scalar d in [1, n-1] (FIPS 186-4 B.4.2, testing candidates)
        d = _draw_int(rng, self.order.bit_length(), 1, self.order, self.name)
        private = ec.derive_private_key(d, self.curve)
        point = private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return EcpKeyPair(self, private, point[1:])  # x | y, RFC 5903 section 7 (no 0x04 octet)

    def load_peer(self, peer_public: bytes) -> ec.EllipticCurvePublicKey:
        if len(peer_public) != self.public_size:
            raise CryptoError(
                f"{self.name}: public value is {len(peer_public)} bytes, expected {self.public_size}"
            )
        try:  # OpenSSL checks 0 <= x, y < p and that the point is on the curve
            return ec.EllipticCurvePublicKey.from_encoded_point(self.curve, b"\x04" + peer_public)
        except ValueError as exc:
            raise CryptoError(f"{self.name}: public value is not a point on the curve") from exc


class EcpKeyPair:
    __slots__ = ("_group", "_private", "public")

    def __init__(self, group: EcpGroup, private: ec.EllipticCurvePrivateKey, public: bytes) -> None:
        self._group = group
        self._private = private
        self.public = public

    @property
    def group_id(self) -> int:
        return self._group.group_id

    def shared_secret(self, peer_public: bytes) -> bytes:
        peer = self._group.load_peer(peer_public)
        try:
            x = self._private.exchange(ec.ECDH(), peer)  # x coordinate of d * Q (RFC 5903 section 7)
        except ValueError as exc:  # pragma: no cover - a valid point on a prime-order curve
            raise CryptoError(f"{self._group.name}: ECDH failed: {exc}") from exc
        return x.rjust(self._group.coordinate_size, b"\0")

    def __repr__(self) -> str:
        return f"EcpKeyPair(group={self._group.name}, public={self.public[:8].hex()}...)"


# --------------------------------------------------------------------------------------------------
# Curve25519 (RFC 8031, RFC 7748)


@dataclass(frozen=True)
class X25519Group:
    group_id: int = DhGroup.CURVE25519
    name: str = "curve25519"
    public_size: int = 32

    def generate(self, rng: Rng) -> X25519KeyPair:
        # 32 random bytes; X25519 clamps them itself (RFC 7748 section 5, decodeScalar25519)
        private = x25519.X25519PrivateKey.from_private_bytes(_draw(rng, 32))
        return X25519KeyPair(private, private.public_key().public_bytes_raw())


class X25519KeyPair:
    __slots__ = ("_private", "public")

    group_id = DhGroup.CURVE25519

    def __init__(self, private: x25519.X25519PrivateKey, public: bytes) -> None:
        self._private = private
        self.public = public

    def shared_secret(self, peer_public: bytes) -> bytes:
        if len(peer_public) != 32:
            raise CryptoError(f"curve25519: public value is {len(peer_public)} bytes, expected 32")
        peer = x25519.X25519PublicKey.from_public_bytes(peer_public)
        try:
            secret = self._private.exchange(peer)  # X25519(k, u) (RFC 7748 section 5)
        except ValueError as exc:  # OpenSSL refuses the all-zero result itself
            raise CryptoError("curve25519: shared secret is all zero (low-order peer value)") from exc
        if not any(secret):  # RFC 8031 section 2.3: MUST check for the all-zero value
            raise CryptoError("curve25519: shared secret is all zero (low-order peer value)")
        return secret

    def __repr__(self) -> str:
        return f"X25519KeyPair(public={self.public[:8].hex()}...)"


# --------------------------------------------------------------------------------------------------
# The registry

_P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)
_P384_ORDER = int(
    "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16
)
_P521_ORDER = int(
    "01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA51868783BF2F966B7FCC0148F709A5D"
    "03BB5C9B8899C47AEBB6FB71E91386409",
    16,
)


def _modp(group_id: int, name: str, openssl_bits: int, backend: str) -> ModpGroup:
    exponent_bits = (max(256, openssl_bits) + 7) // 8 * 8  # see the module docstring
    return ModpGroup(group_id, name, MODP_PRIMES[group_id], exponent_bits, backend)


_GROUPS: dict[int, DhGroupImpl] = {
    g.group_id: g
    for g in (
        _modp(DhGroup.MODP_768, "modp768", 0, "gmpy2"),
        _modp(DhGroup.MODP_1024, "modp1024", 0, "gmpy2"),
        _modp(DhGroup.MODP_1536, "modp1536", 200, "openssl"),
        _modp(DhGroup.MODP_2048, "modp2048", 225, "openssl"),
        _modp(DhGroup.MODP_3072, "modp3072", 275, "openssl"),
        _modp(DhGroup.MODP_4096, "modp4096", 325, "openssl"),
        _modp(DhGroup.MODP_6144, "modp6144", 375, "openssl"),
        _modp(DhGroup.MODP_8192, "modp8192", 400, "openssl"),
        EcpGroup(DhGroup.ECP_256, "ecp256", ec.SECP256R1(), 32, _P256_ORDER),
        EcpGroup(DhGroup.ECP_384, "ecp384", ec.SECP384R1(), 48, _P384_ORDER),
        EcpGroup(DhGroup.ECP_521, "ecp521", ec.SECP521R1(), 66, _P521_ORDER),
        X25519Group(),
    )
}

SUPPORTED_GROUPS: tuple[int, ...] = tuple(_GROUPS)


def dh_group(group_id: int) -> DhGroupImpl:
    """GROUP_DESCRIPTION attribute value (:class:`DhGroup`) -> the group."""
    try:
        return _GROUPS[group_id]
    except KeyError:
        raise UnsupportedAlgorithm(f"unsupported Diffie-Hellman group {name_of(DhGroup, group_id)}") from None
