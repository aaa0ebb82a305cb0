"""strongSwan proposal strings (``aes128-sha256-modp2048``) to IKEv1 transforms, and back.

A proposal string is dash-separated algorithm keywords. strongSwan's IKEv1 keeps only the first
algorithm of each kind; snakeswan offers every combination instead, most preferred first: the
first keyword of each kind wins, encryption varies slowest, then integrity, then the DH group (then
ESN). The first combination is therefore exactly what strongSwan would offer.

``default`` (alone) stands for :data:`~snakeswan.config.model.DEFAULT_IKE_PROPOSALS` /
``DEFAULT_ESP_PROPOSALS`` / :data:`DEFAULT_AH_PROPOSALS`. ``prf*`` keywords are accepted and
ignored in IKEv1 (the PRF is the HMAC of the negotiated hash), except that a PRF stands in for a
missing hash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import product
from typing import TypeVar

from snakeswan.config.model import DEFAULT_ESP_PROPOSALS, DEFAULT_IKE_PROPOSALS, ChildProposal, IkeProposal
from snakeswan.crypto.algorithms import UnsupportedAlgorithm, ike_cipher, ike_hash
from snakeswan.crypto.dh import SUPPORTED_GROUPS
from snakeswan.errors import ConfigError
from snakeswan.wire.enums import (
    AhTransformId,
    AuthAlgorithm,
    DhGroup,
    EspTransformId,
    IkeEncryption,
    IkeHash,
    ProtocolId,
    name_of,
)

_T = TypeVar("_T")
_KEY_SIZES = (128, 192, 256)

IKE_ENCRYPTION: dict[str, tuple[int, int | None]] = {
    "des": (IkeEncryption.DES_CBC, None),
    "3des": (IkeEncryption.TRIPLE_DES_CBC, None),
    **{f"aes{bits}": (IkeEncryption.AES_CBC, bits) for bits in _KEY_SIZES},
    "aes": (IkeEncryption.AES_CBC, 128),
    **{f"camellia{bits}": (IkeEncryption.CAMELLIA_CBC, bits) for bits in _KEY_SIZES},
    "camellia": (IkeEncryption.CAMELLIA_CBC, 128),
}
IKE_HASH: dict[str, int] = {
    "md5": IkeHash.MD5,
    "sha1": IkeHash.SHA,
    "sha": IkeHash.SHA,
    "sha256": IkeHash.SHA2_256,
    "sha2_256": IkeHash.SHA2_256,
    "sha384": IkeHash.SHA2_384,
    "sha2_384": IkeHash.SHA2_384,
    "sha512": IkeHash.SHA2_512,
    "sha2_512": IkeHash.SHA2_512,
}
IKE_PRF: dict[str, int] = {
    "prfmd5": IkeHash.MD5,
    "prfsha1": IkeHash.SHA,
    "prfsha256": IkeHash.SHA2_256,
    "prfsha384": IkeHash.SHA2_384,
    "prfsha512": IkeHash.SHA2_512,
}
DH_GROUPS: dict[str, int] = {
    "modp768": DhGroup.MODP_768,
    "modp1024": DhGroup.MODP_1024,
    "modp1536": DhGroup.MODP_1536,
    "modp2048": DhGroup.MODP_2048,
    "modp3072": DhGroup.MODP_3072,
    "modp4096": DhGroup.MODP_4096,
    "modp6144": DhGroup.MODP_6144,
    "modp8192": DhGroup.MODP_8192,
    "ecp256": DhGroup.ECP_256,
    "ecp384": DhGroup.ECP_384,
    "ecp521": DhGroup.ECP_521,
    "ecp192": DhGroup.ECP_192,
    "ecp224": DhGroup.ECP_224,
    "modp1024s160": DhGroup.MODP_1024_160,
    "modp2048s224": DhGroup.MODP_2048_224,
    "modp2048s256": DhGroup.MODP_2048_256,
    "curve25519": DhGroup.CURVE25519,
    "x25519": DhGroup.CURVE25519,
    "curve448": DhGroup.CURVE448,
    "x448": DhGroup.CURVE448,
}


def _esp_encryption() -> dict[str, tuple[int, int | None]]:
    table: dict[str, tuple[int, int | None]] = {
        "des": (EspTransformId.DES, None),
        "3des": (EspTransformId.TRIPLE_DES, None),
        "null": (EspTransformId.NULL, None),
    }
    icv = {8: (8, 64), 12: (12, 96), 16: (16, 128)}  # ICV bytes -> keyword suffixes (bytes, bits)
    gcm = {8: EspTransformId.AES_GCM_8, 12: EspTransformId.AES_GCM_12, 16: EspTransformId.AES_GCM_16}
    ccm = {8: EspTransformId.AES_CCM_8, 12: EspTransformId.AES_CCM_12, 16: EspTransformId.AES_CCM_16}
    for bits in _KEY_SIZES:
        table[f"aes{bits}"] = (EspTransformId.AES_CBC, bits)
        table[f"aes{bits}ctr"] = (EspTransformId.AES_CTR, bits)
        table[f"aes{bits}gmac"] = (EspTransformId.NULL_AUTH_AES_GMAC, bits)
        table[f"null_aes{bits}gmac"] = (EspTransformId.NULL_AUTH_AES_GMAC, bits)
        for size, suffixes in icv.items():
            for suffix in suffixes:
                table[f"aes{bits}gcm{suffix}"] = (gcm[size], bits)
                table[f"aes{bits}ccm{suffix}"] = (ccm[size], bits)
        table[f"aes{bits}gcm"] = (EspTransformId.AES_GCM_16, bits)
        table[f"aes{bits}ccm"] = (EspTransformId.AES_CCM_16, bits)
    table["aes"] = (EspTransformId.AES_CBC, 128)
    table["aesctr"] = (EspTransformId.AES_CTR, 128)
    table["chacha20poly1305"] = (EspTransformId.CHACHA20_POLY1305, None)  # RFC 7634, a 256-bit key
    return table


ESP_ENCRYPTION = _esp_encryption()
AEAD_TRANSFORMS = frozenset(
    {
        EspTransformId.AES_GCM_8,
        EspTransformId.AES_GCM_12,
        EspTransformId.AES_GCM_16,
        EspTransformId.AES_CCM_8,
        EspTransformId.AES_CCM_12,
        EspTransformId.AES_CCM_16,
        EspTransformId.NULL_AUTH_AES_GMAC,
        EspTransformId.CHACHA20_POLY1305,
    }
)
ESP_INTEGRITY: dict[str, int] = {
    "md5": AuthAlgorithm.HMAC_MD5,
    "sha1": AuthAlgorithm.HMAC_SHA,
    "sha": AuthAlgorithm.HMAC_SHA,
    "sha256": AuthAlgorithm.HMAC_SHA2_256,
    "sha2_256": AuthAlgorithm.HMAC_SHA2_256,
    "sha384": AuthAlgorithm.HMAC_SHA2_384,
    "sha2_384": AuthAlgorithm.HMAC_SHA2_384,
    "sha512": AuthAlgorithm.HMAC_SHA2_512,
    "sha2_512": AuthAlgorithm.HMAC_SHA2_512,
    "aesxcbc": AuthAlgorithm.AES_XCBC_MAC,
}
AH_INTEGRITY: dict[str, tuple[int, int]] = {  # keyword -> (AH transform ID, authentication attribute)
    "md5": (AhTransformId.MD5, AuthAlgorithm.HMAC_MD5),
    "sha1": (AhTransformId.SHA, AuthAlgorithm.HMAC_SHA),
    "sha": (AhTransformId.SHA, AuthAlgorithm.HMAC_SHA),
    "sha256": (AhTransformId.SHA2_256, AuthAlgorithm.HMAC_SHA2_256),
    "sha2_256": (AhTransformId.SHA2_256, AuthAlgorithm.HMAC_SHA2_256),
    "sha384": (AhTransformId.SHA2_384, AuthAlgorithm.HMAC_SHA2_384),
    "sha2_384": (AhTransformId.SHA2_384, AuthAlgorithm.HMAC_SHA2_384),
    "sha512": (AhTransformId.SHA2_512, AuthAlgorithm.HMAC_SHA2_512),
    "sha2_512": (AhTransformId.SHA2_512, AuthAlgorithm.HMAC_SHA2_512),
}
_ESN = {"esn": True, "noesn": False}

_AH = ProtocolId.IPSEC_AH
_ESP = ProtocolId.IPSEC_ESP
DEFAULT_AH_PROPOSALS: tuple[ChildProposal, ...] = tuple(
    ChildProposal(_AH, transform, None, auth, None)
    for transform, auth in (AH_INTEGRITY["sha256"], AH_INTEGRITY["sha384"], AH_INTEGRITY["sha512"])
)


def _tokens(text: str, kind: str) -> list[str]:
    tokens = [token.strip().lower() for token in text.split("-")]
    if not text.strip() or any(not token for token in tokens):
        raise ConfigError(f"expected an {kind} proposal like aes128-sha256-modp2048, got {text!r}")
    return tokens


def _unknown(token: str, text: str, kind: str, accepted: Mapping[str, Mapping[str, object]]) -> ConfigError:
    groups = "; ".join(f"{what}: {' '.join(table)}" for what, table in accepted.items())
    return ConfigError(f"unknown algorithm {token!r} in {kind} proposal {text!r}; accepted: {groups}")


def _add(chosen: list[_T], item: _T) -> None:
    if item not in chosen:
        chosen.append(item)


def _check_groups(text: str, groups: Sequence[int | None]) -> None:
    for g in groups:
        if g is not None and g not in SUPPORTED_GROUPS:
            name = next((k for k, v in DH_GROUPS.items() if v == g), str(g))
            supported = " ".join(k for k, v in DH_GROUPS.items() if v in SUPPORTED_GROUPS)
            raise ConfigError(
                f"DH group {name!r} in {text!r} is not supported by snakeswan; supported: {supported}"
            )


# What the userspace data plane can run (ipsec/algorithms.py; tests/unit/config keeps the two in
# step): a proposal that names anything else is refused at load rather than negotiated and then
# failing to install.
RUNNABLE_INTEGRITY = frozenset(
    {
        AuthAlgorithm.HMAC_MD5,
        AuthAlgorithm.HMAC_SHA,
        AuthAlgorithm.HMAC_SHA2_256,
        AuthAlgorithm.HMAC_SHA2_384,
        AuthAlgorithm.HMAC_SHA2_512,
    }
)


def _check_child_support(text: str, integrity: Sequence[int | None], esn: Sequence[bool]) -> None:
    for auth in integrity:
        if auth is not None and auth not in RUNNABLE_INTEGRITY:
            name = name_of(AuthAlgorithm, auth)
            raise ConfigError(
                f"integrity {name} in {text!r} is not available in snakeswan's data plane "
                "(cryptography has no AES-XCBC, and a MAC is never hand-written here)"
            )
    if True in esn:
        raise ConfigError(
            f"extended sequence numbers (esn) in {text!r} are not implemented by the data plane; use noesn"
        )


def _check_ike_support(
    text: str, encryption: Sequence[tuple[int, int | None]], hashes: Sequence[int], groups: Sequence[int]
) -> None:
    """Refuse algorithms the syntax knows but snakeswan's crypto cannot run (Camellia, curve448, ...)."""
    for enc_id, key_length in encryption:
        try:
            ike_cipher(enc_id, key_length)
        except UnsupportedAlgorithm:
            name = next((k for k, v in IKE_ENCRYPTION.items() if v == (enc_id, key_length)), str(enc_id))
            raise ConfigError(f"IKE encryption {name!r} in {text!r} is not supported by snakeswan") from None
    for h in hashes:
        try:
            ike_hash(h)
        except UnsupportedAlgorithm:
            raise ConfigError(f"IKE hash {h} in {text!r} is not supported by snakeswan") from None
    _check_groups(text, groups)


def parse_ike_proposal(text: str) -> tuple[IkeProposal, ...]:
    """``aes128-sha256-modp2048`` -> IKEv1 phase 1 transforms, every combination in preference order."""
    if text.strip().lower() == "default":
        return DEFAULT_IKE_PROPOSALS
    encryption: list[tuple[int, int | None]] = []
    hashes: list[int] = []
    prfs: list[int] = []
    groups: list[int] = []
    for token in _tokens(text, "IKE"):
        if token in IKE_ENCRYPTION:
            _add(encryption, IKE_ENCRYPTION[token])
        elif token in IKE_HASH:
            _add(hashes, IKE_HASH[token])
        elif token in IKE_PRF:
            _add(prfs, IKE_PRF[token])
        elif token in DH_GROUPS:
            _add(groups, DH_GROUPS[token])
        elif token in ESP_ENCRYPTION:
            raise ConfigError(
                f"algorithm {token!r} in IKE proposal {text!r} is not available in IKEv1 phase 1"
            )
        else:
            accepted: dict[str, Mapping[str, object]] = {
                "encryption": IKE_ENCRYPTION,
                "hash": IKE_HASH,
                "prf": IKE_PRF,
                "DH group": DH_GROUPS,
            }
            raise _unknown(token, text, "IKE", accepted)
    hashes = hashes or prfs
    _check_ike_support(text, encryption, hashes, groups)
    for what, count in (
        ("an encryption", len(encryption)),
        ("a hash", len(hashes)),
        ("a DH group", len(groups)),
    ):
        if not count:
            raise ConfigError(f"IKE proposal {text!r} lacks {what} algorithm")
    return tuple(
        IkeProposal(enc_id, key_length, hash_alg, group)
        for (enc_id, key_length), hash_alg, group in product(encryption, hashes, groups)
    )


def parse_esp_proposal(text: str) -> tuple[ChildProposal, ...]:
    """``aes128gcm16-modp2048``, ``aes256-sha256-esn`` -> ESP transforms (a DH group means PFS)."""
    if text.strip().lower() == "default":
        return DEFAULT_ESP_PROPOSALS
    encryption: list[tuple[int, int | None]] = []
    integrity: list[int | None] = []
    groups: list[int | None] = []
    esn: list[bool] = []
    for token in _tokens(text, "ESP"):
        if token in ESP_ENCRYPTION:
            _add(encryption, ESP_ENCRYPTION[token])
        elif token in ESP_INTEGRITY:
            _add(integrity, ESP_INTEGRITY[token])
        elif token in DH_GROUPS:
            _add(groups, DH_GROUPS[token])
        elif token in _ESN:
            _add(esn, _ESN[token])
        else:
            accepted: dict[str, Mapping[str, object]] = {
                "encryption": ESP_ENCRYPTION,
                "integrity": ESP_INTEGRITY,
                "DH group": DH_GROUPS,
                "other": _ESN,
            }
            raise _unknown(token, text, "ESP", accepted)
    if not encryption:
        raise ConfigError(f"ESP proposal {text!r} lacks an encryption algorithm (null for none)")
    _check_groups(text, groups)
    _check_child_support(text, integrity, esn)
    aead = [enc for enc in encryption if enc[0] in AEAD_TRANSFORMS]
    if aead and integrity:
        raise ConfigError(f"ESP proposal {text!r} mixes an AEAD algorithm with an integrity algorithm")
    if len(aead) != len(encryption) and not integrity:
        raise ConfigError(
            f"ESP proposal {text!r} lacks an integrity algorithm (or use an AEAD one such as aes128gcm16)"
        )
    return tuple(
        ChildProposal(_ESP, transform, key_length, auth, group, ext)
        for (transform, key_length), auth, group, ext in product(
            encryption, integrity or [None], groups or [None], esn or [False]
        )
    )


def parse_ah_proposal(text: str) -> tuple[ChildProposal, ...]:
    """``sha256-modp2048`` -> AH transforms (a DH group means PFS)."""
    if text.strip().lower() == "default":
        return DEFAULT_AH_PROPOSALS
    integrity: list[tuple[int, int]] = []
    groups: list[int | None] = []
    esn: list[bool] = []
    for token in _tokens(text, "AH"):
        if token in AH_INTEGRITY:
            _add(integrity, AH_INTEGRITY[token])
        elif token in DH_GROUPS:
            _add(groups, DH_GROUPS[token])
        elif token in _ESN:
            _add(esn, _ESN[token])
        else:
            accepted: dict[str, Mapping[str, object]] = {
                "integrity": AH_INTEGRITY,
                "DH group": DH_GROUPS,
                "other": _ESN,
            }
            raise _unknown(token, text, "AH", accepted)
    if not integrity:
        raise ConfigError(f"AH proposal {text!r} lacks an integrity algorithm")
    _check_groups(text, groups)
    _check_child_support(text, [auth for _, auth in integrity], esn)
    return tuple(
        ChildProposal(_AH, transform, None, auth, group, ext)
        for (transform, auth), group, ext in product(integrity, groups or [None], esn or [False])
    )


# --- rendering -------------------------------------------------------------------------------------

_LONG_INTEGRITY: dict[int, str] = {  # AuthAlgorithm -> strongSwan's integrity name
    AuthAlgorithm.HMAC_MD5: "HMAC_MD5_96",
    AuthAlgorithm.HMAC_SHA: "HMAC_SHA1_96",
    AuthAlgorithm.HMAC_SHA2_256: "HMAC_SHA2_256_128",
    AuthAlgorithm.HMAC_SHA2_384: "HMAC_SHA2_384_192",
    AuthAlgorithm.HMAC_SHA2_512: "HMAC_SHA2_512_256",
    AuthAlgorithm.AES_XCBC_MAC: "AES_XCBC_96",
}
_IKE_HASH_AUTH: dict[int, int] = {
    IkeHash.MD5: AuthAlgorithm.HMAC_MD5,
    IkeHash.SHA: AuthAlgorithm.HMAC_SHA,
    IkeHash.SHA2_256: AuthAlgorithm.HMAC_SHA2_256,
    IkeHash.SHA2_384: AuthAlgorithm.HMAC_SHA2_384,
    IkeHash.SHA2_512: AuthAlgorithm.HMAC_SHA2_512,
}
_LONG_PRF: dict[int, str] = {
    IkeHash.MD5: "PRF_HMAC_MD5",
    IkeHash.SHA: "PRF_HMAC_SHA1",
    IkeHash.SHA2_256: "PRF_HMAC_SHA2_256",
    IkeHash.SHA2_384: "PRF_HMAC_SHA2_384",
    IkeHash.SHA2_512: "PRF_HMAC_SHA2_512",
}
_LONG_IKE_ENC: dict[int, str] = {
    IkeEncryption.DES_CBC: "DES_CBC",
    IkeEncryption.TRIPLE_DES_CBC: "3DES_CBC",
    IkeEncryption.AES_CBC: "AES_CBC",
    IkeEncryption.CAMELLIA_CBC: "CAMELLIA_CBC",
}
_LONG_ESP_ENC: dict[int, str] = {
    EspTransformId.DES: "DES_CBC",
    EspTransformId.TRIPLE_DES: "3DES_CBC",
    EspTransformId.NULL: "NULL",
    EspTransformId.AES_CBC: "AES_CBC",
    EspTransformId.AES_CTR: "AES_CTR",
    EspTransformId.AES_CCM_8: "AES_CCM_8",
    EspTransformId.AES_CCM_12: "AES_CCM_12",
    EspTransformId.AES_CCM_16: "AES_CCM_16",
    EspTransformId.AES_GCM_8: "AES_GCM_8",
    EspTransformId.AES_GCM_12: "AES_GCM_12",
    EspTransformId.AES_GCM_16: "AES_GCM_16",
    EspTransformId.NULL_AUTH_AES_GMAC: "NULL_AES_GMAC",
    EspTransformId.CHACHA20_POLY1305: "CHACHA20_POLY1305",
}
_LONG_DH: dict[int, str] = {DhGroup.CURVE25519: "CURVE_25519", DhGroup.CURVE448: "CURVE_448"}


def _short(table: Mapping[str, object], value: object) -> str:
    for keyword, entry in table.items():
        if entry == value:
            return keyword
    return str(value)


def _long_dh(group: int) -> str:
    return _LONG_DH.get(group, name_of(DhGroup, group))


def _with_bits(name: str, key_length: int | None) -> str:
    return f"{name}_{key_length}" if key_length else name


def format_ike_proposal(proposal: IkeProposal, short: bool = False) -> str:
    """``AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048`` (as strongSwan logs it), or with
    ``short`` the keyword form ``aes128-sha256-modp2048`` that :func:`parse_ike_proposal` reads."""
    if short:
        enc = _short(IKE_ENCRYPTION, (proposal.encryption, proposal.key_length))
        return "-".join((enc, _short(IKE_HASH, proposal.hash), _short(DH_GROUPS, proposal.group)))
    enc_name = _LONG_IKE_ENC.get(proposal.encryption, name_of(IkeEncryption, proposal.encryption))
    auth = _IKE_HASH_AUTH.get(proposal.hash)
    integ = _LONG_INTEGRITY[auth] if auth is not None else name_of(IkeHash, proposal.hash)
    prf = _LONG_PRF.get(proposal.hash, f"PRF_{name_of(IkeHash, proposal.hash)}")
    return "/".join((_with_bits(enc_name, proposal.key_length), integ, prf, _long_dh(proposal.group)))


def format_child_proposal(proposal: ChildProposal, short: bool = False) -> str:
    """``AES_CBC_128/HMAC_SHA2_256_128/MODP_2048/NO_EXT_SEQ`` (strongSwan's log form), or with ``short``
    the keyword form (``aes128-sha256-modp2048``, ``aes128gcm16``, AH ``sha256``) the parsers read."""
    parts: list[str] = []
    if short:
        if proposal.protocol == _AH:
            parts.append(_short(AH_INTEGRITY, (proposal.transform_id, proposal.auth)))
        else:
            parts.append(_short(ESP_ENCRYPTION, (proposal.transform_id, proposal.key_length)))
            if proposal.auth is not None:
                parts.append(_short(ESP_INTEGRITY, proposal.auth))
        if proposal.pfs_group is not None:
            parts.append(_short(DH_GROUPS, proposal.pfs_group))
        if proposal.esn:
            parts.append("esn")
        return "-".join(parts)
    if proposal.protocol == _ESP:
        name = _LONG_ESP_ENC.get(proposal.transform_id, name_of(EspTransformId, proposal.transform_id))
        parts.append(_with_bits(name, proposal.key_length))
    if proposal.auth is not None:
        parts.append(_LONG_INTEGRITY.get(proposal.auth, name_of(AuthAlgorithm, proposal.auth)))
    if proposal.pfs_group is not None:
        parts.append(_long_dh(proposal.pfs_group))
    parts.append("EXT_SEQ" if proposal.esn else "NO_EXT_SEQ")
    return "/".join(parts)
