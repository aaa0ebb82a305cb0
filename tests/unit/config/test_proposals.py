"""strongSwan proposal strings -> IKEv1 transforms and back."""

from __future__ import annotations

import pytest

from snakeswan.config.model import DEFAULT_ESP_PROPOSALS, DEFAULT_IKE_PROPOSALS, ChildProposal, IkeProposal
from snakeswan.config.proposals import (
    DEFAULT_AH_PROPOSALS,
    format_child_proposal,
    format_ike_proposal,
    parse_ah_proposal,
    parse_esp_proposal,
    parse_ike_proposal,
)
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
)

ESP = ProtocolId.IPSEC_ESP
AH = ProtocolId.IPSEC_AH


@pytest.mark.parametrize(
    ("keyword", "encryption", "bits"),
    [
        ("des", IkeEncryption.DES_CBC, None),
        ("3des", IkeEncryption.TRIPLE_DES_CBC, None),
        ("aes", IkeEncryption.AES_CBC, 128),
        ("aes128", IkeEncryption.AES_CBC, 128),
        ("aes192", IkeEncryption.AES_CBC, 192),
        ("aes256", IkeEncryption.AES_CBC, 256),
        ("camellia256", IkeEncryption.CAMELLIA_CBC, 256),
    ],
)
def test_ike_encryption_keywords(keyword: str, encryption: int, bits: int | None) -> None:
    if encryption == IkeEncryption.CAMELLIA_CBC:  # known to the syntax, not to our crypto
        with pytest.raises(ConfigError, match="not supported by snakeswan"):
            parse_ike_proposal(f"{keyword}-sha1-modp2048")
        return
    assert parse_ike_proposal(f"{keyword}-sha1-modp2048") == (
        IkeProposal(encryption, bits, IkeHash.SHA, DhGroup.MODP_2048),
    )


@pytest.mark.parametrize(
    ("keyword", "hash_alg"),
    [
        ("md5", IkeHash.MD5),
        ("sha1", IkeHash.SHA),
        ("sha", IkeHash.SHA),
        ("sha256", IkeHash.SHA2_256),
        ("sha2_256", IkeHash.SHA2_256),
        ("sha384", IkeHash.SHA2_384),
        ("sha2_384", IkeHash.SHA2_384),
        ("sha512", IkeHash.SHA2_512),
        ("sha2_512", IkeHash.SHA2_512),
    ],
)
def test_ike_hash_keywords(keyword: str, hash_alg: int) -> None:
    (proposal,) = parse_ike_proposal(f"aes128-{keyword}-modp2048")
    assert proposal.hash == hash_alg


@pytest.mark.parametrize(
    ("keyword", "group"),
    [
        ("modp768", 1),
        ("modp1024", 2),
        ("modp1536", 5),
        ("modp2048", 14),
        ("modp3072", 15),
        ("modp4096", 16),
        ("modp6144", 17),
        ("modp8192", 18),
        ("ecp256", 19),
        ("ecp384", 20),
        ("ecp521", 21),
        ("modp1024s160", 22),
        ("modp2048s224", 23),
        ("modp2048s256", 24),
        ("ecp192", 25),
        ("ecp224", 26),
        ("curve25519", 31),
        ("x25519", 31),
        ("curve448", 32),
    ],
)
def test_dh_group_keywords(keyword: str, group: int) -> None:
    if group not in SUPPORTED_GROUPS:  # RFC 5114 groups, ecp192/224, curve448: refused, not mis-run
        with pytest.raises(ConfigError, match="not supported by snakeswan"):
            parse_ike_proposal(f"aes128-sha256-{keyword}")
        with pytest.raises(ConfigError, match="not supported by snakeswan"):
            parse_esp_proposal(f"aes128-sha256-{keyword}")
        return
    (proposal,) = parse_ike_proposal(f"aes128-sha256-{keyword}")
    assert proposal.group == group
    (child,) = parse_esp_proposal(f"aes128-sha256-{keyword}")
    assert child.pfs_group == group


def test_ike_combinations_in_preference_order() -> None:
    result = parse_ike_proposal("aes128-aes256-sha1-sha256-modp2048-ecp256")
    aes128, aes256 = (IkeEncryption.AES_CBC, 128), (IkeEncryption.AES_CBC, 256)
    expected = [
        (enc, bits, hash_alg, group)
        for enc, bits in (aes128, aes256)
        for hash_alg in (IkeHash.SHA, IkeHash.SHA2_256)
        for group in (DhGroup.MODP_2048, DhGroup.ECP_256)
    ]
    assert [(p.encryption, p.key_length, p.hash, p.group) for p in result] == expected
    # the first combination is what strongSwan (first algorithm of each kind) would offer
    assert result[0] == IkeProposal(IkeEncryption.AES_CBC, 128, IkeHash.SHA, DhGroup.MODP_2048)


def test_ike_prf_is_accepted_and_stands_in_for_a_missing_hash() -> None:
    assert parse_ike_proposal("aes128-sha256-prfsha256-modp2048") == parse_ike_proposal(
        "aes128-sha256-modp2048"
    )
    assert parse_ike_proposal("aes256-prfsha384-ecp384") == (
        IkeProposal(IkeEncryption.AES_CBC, 256, IkeHash.SHA2_384, DhGroup.ECP_384),
    )


def test_ike_default_and_case_and_duplicates() -> None:
    assert parse_ike_proposal("default") == DEFAULT_IKE_PROPOSALS
    assert DEFAULT_IKE_PROPOSALS[0] == IkeProposal(
        IkeEncryption.AES_CBC, 128, IkeHash.SHA2_256, DhGroup.MODP_3072
    )
    assert parse_ike_proposal("AES128-SHA256-MODP2048") == parse_ike_proposal("aes128-sha256-modp2048")
    assert len(parse_ike_proposal("aes128-aes-sha256-modp2048")) == 1  # aes == aes128


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("aes129-sha256-modp2048", "unknown algorithm 'aes129'"),
        ("aes128-sha256-modp2047", "unknown algorithm 'modp2047'"),
        ("aes128-sha256", "lacks a DH group"),
        ("aes128-modp2048", "lacks a hash"),
        ("sha256-modp2048", "lacks an encryption"),
        ("aes128gcm16-prfsha256-modp2048", "not available in IKEv1"),
        ("aes128--sha256-modp2048", "expected an IKE proposal"),
        ("", "expected an IKE proposal"),
    ],
)
def test_bad_ike_proposals(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_ike_proposal(text)


def test_unknown_token_message_lists_accepted_keywords() -> None:
    with pytest.raises(ConfigError) as info:
        parse_ike_proposal("aes128-sha3-modp2048")
    text = str(info.value)
    assert "'sha3'" in text and "'aes128-sha3-modp2048'" in text
    for keyword in ("aes256", "sha384", "modp3072", "ecp256", "prfsha256"):
        assert keyword in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("aes128gcm16-modp2048", [(EspTransformId.AES_GCM_16, 128, None, DhGroup.MODP_2048, False)]),
        ("aes256-sha256", [(EspTransformId.AES_CBC, 256, AuthAlgorithm.HMAC_SHA2_256, None, False)]),
        (
            "3des-md5-modp1024",
            [(EspTransformId.TRIPLE_DES, None, AuthAlgorithm.HMAC_MD5, DhGroup.MODP_1024, False)],
        ),
        ("aes128gcm8", [(EspTransformId.AES_GCM_8, 128, None, None, False)]),
        ("aes256gcm12", [(EspTransformId.AES_GCM_12, 256, None, None, False)]),
        ("aes192gcm128", [(EspTransformId.AES_GCM_16, 192, None, None, False)]),
        ("aes128ccm12", [(EspTransformId.AES_CCM_12, 128, None, None, False)]),
        ("aes128gmac", [(EspTransformId.NULL_AUTH_AES_GMAC, 128, None, None, False)]),
        ("aes256ctr-sha384", [(EspTransformId.AES_CTR, 256, AuthAlgorithm.HMAC_SHA2_384, None, False)]),
        ("null-sha1", [(EspTransformId.NULL, None, AuthAlgorithm.HMAC_SHA, None, False)]),
        ("des-sha1", [(EspTransformId.DES, None, AuthAlgorithm.HMAC_SHA, None, False)]),
        ("aes-sha512", [(EspTransformId.AES_CBC, 128, AuthAlgorithm.HMAC_SHA2_512, None, False)]),
        ("aes128-sha256-noesn", [(EspTransformId.AES_CBC, 128, AuthAlgorithm.HMAC_SHA2_256, None, False)]),
    ],
)
def test_esp_proposals(
    text: str, expected: list[tuple[int, int | None, int | None, int | None, bool]]
) -> None:
    assert parse_esp_proposal(text) == tuple(ChildProposal(ESP, *fields) for fields in expected)


def test_esp_combinations_and_default() -> None:
    result = parse_esp_proposal("aes128-aes256-sha1-sha256-modp2048")
    assert [(p.key_length, p.auth) for p in result] == [
        (128, AuthAlgorithm.HMAC_SHA),
        (128, AuthAlgorithm.HMAC_SHA2_256),
        (256, AuthAlgorithm.HMAC_SHA),
        (256, AuthAlgorithm.HMAC_SHA2_256),
    ]
    assert all(p.pfs_group == DhGroup.MODP_2048 for p in result)
    assert parse_esp_proposal("default") == DEFAULT_ESP_PROPOSALS
    assert DEFAULT_ESP_PROPOSALS[0].transform_id == EspTransformId.AES_GCM_16


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("aes128gcm16-sha256", "mixes an AEAD"),
        ("aes128", "lacks an integrity"),
        ("sha256-modp2048", "lacks an encryption"),
        ("aes128-sha256-modp9999", "unknown algorithm 'modp9999'"),
        ("aes128-sha256_96", "unknown algorithm 'sha256_96'"),
    ],
)
def test_bad_esp_proposals(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_esp_proposal(text)


@pytest.mark.parametrize(
    ("keyword", "transform", "auth"),
    [
        ("md5", AhTransformId.MD5, AuthAlgorithm.HMAC_MD5),
        ("sha1", AhTransformId.SHA, AuthAlgorithm.HMAC_SHA),
        ("sha256", AhTransformId.SHA2_256, AuthAlgorithm.HMAC_SHA2_256),
        ("sha384", AhTransformId.SHA2_384, AuthAlgorithm.HMAC_SHA2_384),
        ("sha512", AhTransformId.SHA2_512, AuthAlgorithm.HMAC_SHA2_512),
    ],
)
def test_ah_proposals(keyword: str, transform: int, auth: int) -> None:
    assert parse_ah_proposal(f"{keyword}-modp2048") == (
        ChildProposal(AH, transform, None, auth, DhGroup.MODP_2048),
    )


def test_ah_default_and_errors() -> None:
    assert parse_ah_proposal("default") == DEFAULT_AH_PROPOSALS
    with pytest.raises(ConfigError, match="unknown algorithm 'aes128'"):
        parse_ah_proposal("aes128-sha256")
    with pytest.raises(ConfigError, match="lacks an integrity"):
        parse_ah_proposal("modp2048")


def test_format_ike_proposal() -> None:
    (proposal,) = parse_ike_proposal("aes128-sha256-modp2048")
    assert format_ike_proposal(proposal) == "AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048"
    assert format_ike_proposal(proposal, short=True) == "aes128-sha256-modp2048"
    (proposal,) = parse_ike_proposal("3des-sha1-curve25519")
    assert format_ike_proposal(proposal) == "3DES_CBC/HMAC_SHA1_96/PRF_HMAC_SHA1/CURVE_25519"


def test_format_child_proposal() -> None:
    (gcm,) = parse_esp_proposal("aes128gcm16-modp2048")
    assert format_child_proposal(gcm) == "AES_GCM_16_128/MODP_2048/NO_EXT_SEQ"
    assert format_child_proposal(gcm, short=True) == "aes128gcm16-modp2048"
    # a peer's ESN proposal (we refuse to configure one, the data plane has no ESN) still reads well
    cbc = ChildProposal(
        ProtocolId.IPSEC_ESP, EspTransformId.AES_CBC, 256, AuthAlgorithm.HMAC_SHA2_256, None, True
    )
    assert format_child_proposal(cbc) == "AES_CBC_256/HMAC_SHA2_256_128/EXT_SEQ"
    (ah,) = parse_ah_proposal("sha1")
    assert format_child_proposal(ah) == "HMAC_SHA1_96/NO_EXT_SEQ"
    assert format_child_proposal(ah, short=True) == "sha1"


def test_format_unknown_numbers_does_not_fail() -> None:
    assert (
        format_ike_proposal(IkeProposal(99, None, 42, 77))
        == "IkeEncryption(99)/IkeHash(42)/PRF_IkeHash(42)/DhGroup(77)"
    )


@pytest.mark.parametrize(
    "text",
    ["aes128-sha256-modp2048", "aes256-sha512-ecp521", "3des-md5-modp1024", "aes192-sha384-modp4096"],
)
def test_ike_short_form_round_trips(text: str) -> None:
    for proposal in parse_ike_proposal(text):
        assert parse_ike_proposal(format_ike_proposal(proposal, short=True)) == (proposal,)


@pytest.mark.parametrize(
    "text",
    [
        "aes128gcm16-modp2048",
        "aes256-sha256-noesn",
        "null-sha1",
        "aes192ccm8-ecp256",
        "aes128gmac",
        "3des-md5",
    ],
)
def test_esp_short_form_round_trips(text: str) -> None:
    for proposal in parse_esp_proposal(text):
        assert parse_esp_proposal(format_child_proposal(proposal, short=True)) == (proposal,)


@pytest.mark.parametrize(
    "text",
    [
        "camellia128-sha256-modp2048",
        "aes128-sha256-curve448",
        "aes128-sha256-ecp192",
        "aes128-sha256-modp2048s256",
    ],
)
def test_ike_algorithms_known_but_unsupported_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="not supported by snakeswan"):
        parse_ike_proposal(text)


def test_esp_pfs_group_unsupported_refused() -> None:
    with pytest.raises(ConfigError, match="not supported by snakeswan"):
        parse_esp_proposal("aes128gcm16-curve448")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("aes128-aesxcbc", "AES_XCBC"),  # cryptography has no XCBC; a MAC is never hand-written
        ("aes128-sha256-esn", "extended sequence numbers"),  # the data plane has no ESN
        ("aes128-sha2_256-esn-noesn", "extended sequence numbers"),
    ],
)
def test_esp_proposals_the_data_plane_cannot_run_are_refused(text: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        parse_esp_proposal(text)
