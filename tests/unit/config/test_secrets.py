"""PSK / XAUTH secret lookup precedence (strongSwan's best-match rules) and secret encodings."""

from __future__ import annotations

import pytest

from snakeswan.config.identity import Identity
from snakeswan.config.loader import decode_secret
from snakeswan.config.model import PskSecret, Secrets, XauthSecret
from snakeswan.errors import ConfigError

A = Identity.parse("10.0.0.1")
B = Identity.parse("10.0.0.2")
C = Identity.parse("10.0.0.3")


def _secrets(*entries: tuple[tuple[str, ...], bytes]) -> Secrets:
    return Secrets(tuple(PskSecret(tuple(Identity.parse(i) for i in ids), secret) for ids, secret in entries))


def test_both_ids_beat_one_id_beats_no_id() -> None:
    secrets = _secrets(((), b"any"), (("10.0.0.2",), b"one"), (("10.0.0.1", "10.0.0.2"), b"both"))
    assert secrets.psk_for(A, B) == b"both"
    assert secrets.psk_for(C, B) == b"one"
    assert secrets.psk_for(C, Identity.parse("10.0.0.9")) == b"any"


def test_order_does_not_beat_quality() -> None:
    secrets = _secrets(((), b"any"), (("10.0.0.3",), b"one"), (("10.0.0.1", "10.0.0.2"), b"both"))
    assert secrets.psk_for(A, B) == b"both"
    assert secrets.psk_for(C, B) == b"one"
    assert secrets.psk_for(B, A) == b"both"  # ids are a set of owners, not an ordered pair


def test_one_matching_owner_ties_with_another_one() -> None:
    """As strongSwan: a secret for (A, B) matches (C, B) as well as a secret for B alone does."""
    secrets = _secrets((("10.0.0.1", "10.0.0.2"), b"ab"), (("10.0.0.2",), b"b"))
    assert secrets.psk_for(C, B) == b"ab"


def test_first_wins_on_a_tie() -> None:
    secrets = _secrets((("10.0.0.2",), b"first"), (("10.0.0.2",), b"second"))
    assert secrets.psk_for(None, B) == b"first"


def test_no_match_gives_none() -> None:
    secrets = _secrets((("10.0.0.1", "10.0.0.2"), b"ab"))
    assert secrets.psk_for(C, Identity.parse("10.0.0.4")) is None
    assert Secrets().psk_for(A, B) is None


def test_unknown_peer_uses_local_id() -> None:
    """A Main Mode responder knows only its own identity when it needs the key."""
    secrets = _secrets((("10.0.0.3", "10.0.0.4"), b"other"), (("10.0.0.1", "%any"), b"mine"))
    assert secrets.psk_for(A, None) == b"mine"
    assert secrets.psk_for(A, Identity.parse("%any")) == b"mine"


def test_wildcards_rank_between_any_and_exact() -> None:
    secrets = _secrets((("%any",), b"any"), (("*.example.com",), b"wild"), (("gw.example.com",), b"exact"))
    assert secrets.psk_for(None, Identity.parse("gw.example.com")) == b"exact"
    assert secrets.psk_for(None, Identity.parse("vpn.example.com")) == b"wild"
    assert secrets.psk_for(None, Identity.parse("vpn.example.org")) == b"any"


def test_xauth_lookup() -> None:
    secrets = Secrets(
        xauth=(
            XauthSecret((Identity.parse("alice"),), b"a-pass"),
            XauthSecret((Identity.parse("bob"), Identity.parse("carol")), b"bc-pass"),
        )
    )
    assert secrets.xauth_for("alice") == b"a-pass"
    assert secrets.xauth_for(Identity.parse("carol")) == b"bc-pass"
    assert secrets.xauth_for("mallory") is None


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("plain text", b"plain text"),
        ("0x0102ff", b"\x01\x02\xff"),
        ("0sAQL/", b"\x01\x02\xff"),
        ("äö", "äö".encode()),
    ],
)
def test_decode_secret(text: str, secret: bytes) -> None:
    assert decode_secret(text) == secret


@pytest.mark.parametrize(("text", "message"), [("0xzz", "hex"), ("0s!!!", "base64")])
def test_decode_secret_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        decode_secret(text)


def test_secret_not_in_repr() -> None:
    assert "hunter2" not in repr(PskSecret((), b"hunter2"))
