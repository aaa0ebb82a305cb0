"""IKEv1 key derivation and authentication hashes (RFC 2409 sections 5, 5.5, 5.7 and appendix B).

``|`` is concatenation, ``prf`` is HMAC with the negotiated hash (:meth:`HashAlg.prf`), M-ID is the
4-byte ISAKMP message ID in network order, and ``0``, ``1``, ``2`` are single octets.
"""

from __future__ import annotations

from dataclasses import dataclass

from snakeswan.crypto.algorithms import HashAlg
from snakeswan.errors import CryptoError

__all__ = [
    "Phase1Keys",
    "derive_phase1",
    "encryption_key",
    "hash_i",
    "hash_r",
    "informational_hash",
    "keymat",
    "phase1_iv",
    "phase2_iv",
    "qm_hash1",
    "qm_hash2",
    "qm_hash3",
    "skeyid_pke",
    "skeyid_psk",
    "skeyid_sig",
]


def _mid(message_id: int) -> bytes:
    if not 0 <= message_id <= 0xFFFFFFFF:
        raise CryptoError(f"message ID {message_id} does not fit 32 bits")
    return message_id.to_bytes(4, "big")


# --------------------------------------------------------------------------------------------------
# Phase 1: SKEYID and the keys derived from it (RFC 2409 section 5)


def skeyid_psk(h: HashAlg, psk: bytes, ni_b: bytes, nr_b: bytes) -> bytes:
    """For pre-shared keys."""
    return h.prf(psk, ni_b + nr_b)  # SKEYID = prf(pre-shared-key, Ni_b | Nr_b)


def skeyid_sig(h: HashAlg, ni_b: bytes, nr_b: bytes, gxy: bytes) -> bytes:
    """For signatures."""
    return h.prf(ni_b + nr_b, gxy)  # SKEYID = prf(Ni_b | Nr_b, g^xy)


def skeyid_pke(h: HashAlg, ni_b: bytes, nr_b: bytes, cky_i: bytes, cky_r: bytes) -> bytes:
    """For public key encryption."""
    return h.prf(h.digest(ni_b + nr_b), cky_i + cky_r)  # SKEYID = prf(hash(Ni_b | Nr_b), CKY-I | CKY-R)


@dataclass(frozen=True, repr=False)
class Phase1Keys:
    """SKEYID and its three derivatives. The repr shows only lengths."""

    skeyid: bytes
    skeyid_d: bytes
    skeyid_a: bytes
    skeyid_e: bytes

    def __repr__(self) -> str:
        return (
            f"Phase1Keys(skeyid=<{len(self.skeyid)} bytes>, skeyid_d=<{len(self.skeyid_d)} bytes>, "
            f"skeyid_a=<{len(self.skeyid_a)} bytes>, skeyid_e=<{len(self.skeyid_e)} bytes>)"
        )


def derive_phase1(h: HashAlg, skeyid: bytes, gxy: bytes, cky_i: bytes, cky_r: bytes) -> Phase1Keys:
    """SKEYID_d, SKEYID_a and SKEYID_e from SKEYID."""
    # SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0)
    skeyid_d = h.prf(skeyid, gxy + cky_i + cky_r + b"\x00")
    # SKEYID_a = prf(SKEYID, SKEYID_d | g^xy | CKY-I | CKY-R | 1)
    skeyid_a = h.prf(skeyid, skeyid_d + gxy + cky_i + cky_r + b"\x01")
    # SKEYID_e = prf(SKEYID, SKEYID_a | g^xy | CKY-I | CKY-R | 2)
    skeyid_e = h.prf(skeyid, skeyid_a + gxy + cky_i + cky_r + b"\x02")
    return Phase1Keys(skeyid, skeyid_d, skeyid_a, skeyid_e)


def encryption_key(h: HashAlg, skeyid_e: bytes, key_size: int) -> bytes:
    """The phase 1 cipher key from SKEYID_e (RFC 2409 appendix B).

    The first ``key_size`` bytes of SKEYID_e when it is long enough, else of K = K1 | K2 | K3 ...
    """
    if key_size < 0:
        raise CryptoError(f"negative key size {key_size}")
    if len(skeyid_e) >= key_size:
        return skeyid_e[:key_size]  # SKEYID_e truncated
    blocks = [h.prf(skeyid_e, b"\x00")]  # K1 = prf(SKEYID_e, 0)
    while sum(map(len, blocks)) < key_size:
        blocks.append(h.prf(skeyid_e, blocks[-1]))  # Kn = prf(SKEYID_e, Kn-1)
    return b"".join(blocks)[:key_size]  # K = K1 | K2 | K3 ..., truncated


def _truncated_iv(digest: bytes, block_size: int) -> bytes:
    if len(digest) < block_size:
        raise CryptoError(f"hash output ({len(digest)} bytes) is shorter than the block size {block_size}")
    return digest[:block_size]


def phase1_iv(h: HashAlg, gxi: bytes, gxr: bytes, block_size: int) -> bytes:
    """IV of the first encrypted phase 1 message (RFC 2409 appendix B)."""
    return _truncated_iv(h.digest(gxi + gxr), block_size)  # IV = hash(g^xi | g^xr), truncated


def phase2_iv(h: HashAlg, last_phase1_block: bytes, message_id: int, block_size: int) -> bytes:
    """IV of the first message of a Quick Mode / Informational exchange (RFC 2409 appendix B)."""
    # IV = hash(last phase 1 CBC output block | M-ID), truncated
    return _truncated_iv(h.digest(last_phase1_block + _mid(message_id)), block_size)


# --------------------------------------------------------------------------------------------------
# Phase 1 authentication (RFC 2409 section 5)


def hash_i(
    h: HashAlg,
    skeyid: bytes,
    gxi: bytes,
    gxr: bytes,
    cky_i: bytes,
    cky_r: bytes,
    sai_b: bytes,
    idii_b: bytes,
) -> bytes:
    """HASH_I; ``sai_b`` is the initiator's whole SA payload body, ``idii_b`` the ID payload body."""
    # HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b)
    return h.prf(skeyid, gxi + gxr + cky_i + cky_r + sai_b + idii_b)


def hash_r(
    h: HashAlg,
    skeyid: bytes,
    gxr: bytes,
    gxi: bytes,
    cky_r: bytes,
    cky_i: bytes,
    sai_b: bytes,
    idir_b: bytes,
) -> bytes:
    """HASH_R; note the order: the responder's values first, and the initiator's SAi_b."""
    # HASH_R = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b)
    return h.prf(skeyid, gxr + gxi + cky_r + cky_i + sai_b + idir_b)


# --------------------------------------------------------------------------------------------------
# Phase 2 hashes (RFC 2409 section 5.5, 5.7) and KEYMAT (section 5.5)


def qm_hash1(h: HashAlg, skeyid_a: bytes, message_id: int, rest: bytes) -> bytes:
    """HASH(1); ``rest`` is every payload after the HASH payload, headers included."""
    # HASH(1) = prf(SKEYID_a, M-ID | SA | Ni [ | KE ] [ | IDci | IDcr ])
    return h.prf(skeyid_a, _mid(message_id) + rest)


def qm_hash2(h: HashAlg, skeyid_a: bytes, message_id: int, ni_b: bytes, rest: bytes) -> bytes:
    """HASH(2); ``rest`` is every payload after the HASH payload of the responder's message."""
    # HASH(2) = prf(SKEYID_a, M-ID | Ni_b | SA | Nr [ | KE ] [ | IDci | IDcr ])
    return h.prf(skeyid_a, _mid(message_id) + ni_b + rest)


def qm_hash3(h: HashAlg, skeyid_a: bytes, message_id: int, ni_b: bytes, nr_b: bytes) -> bytes:
    """HASH(3)."""
    return h.prf(
        skeyid_a, b"\x00" + _mid(message_id) + ni_b + nr_b
    )  # HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b)


def informational_hash(h: HashAlg, skeyid_a: bytes, message_id: int, rest: bytes) -> bytes:
    """HASH(1) of an Informational exchange (section 5.7); ``rest`` is the Notify or Delete payload."""
    return h.prf(skeyid_a, _mid(message_id) + rest)  # HASH(1) = prf(SKEYID_a, M-ID | N/D)


def transaction_hash(h: HashAlg, skeyid_a: bytes, message_id: int, attributes: bytes) -> bytes:
    """HASH of a Transaction exchange message (draft-dukes-ike-mode-cfg-02 3.2), request and reply
    alike; ``attributes`` is the Attribute payload as sent."""
    return h.prf(skeyid_a, _mid(message_id) + attributes)  # HASH = prf(SKEYID_a, M-ID | ATTR)


def keymat(
    h: HashAlg,
    skeyid_d: bytes,
    protocol: int,
    spi: bytes,
    ni_b: bytes,
    nr_b: bytes,
    length: int,
    gqm: bytes | None = None,
) -> bytes:
    """``length`` bytes of KEYMAT for one direction of one IPsec SA.

    ``spi`` is that SA's SPI as sent (4 bytes for ESP and AH); ``gqm`` the Quick Mode g(qm)^xy
    when PFS was negotiated.
    """
    if not 0 <= protocol <= 0xFF:
        raise CryptoError(f"protocol {protocol} does not fit one octet")
    if length < 0:
        raise CryptoError(f"negative KEYMAT length {length}")
    seed = (gqm or b"") + bytes([protocol]) + spi + ni_b + nr_b  # [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b
    blocks = [h.prf(skeyid_d, seed)]  # K1 = prf(SKEYID_d, [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b)
    while sum(map(len, blocks)) < length:
        # Kn = prf(SKEYID_d, K(n-1) | [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b)
        blocks.append(h.prf(skeyid_d, blocks[-1] + seed))
    return b"".join(blocks)[:length]  # KEYMAT = K1 | K2 | K3 ..., truncated
