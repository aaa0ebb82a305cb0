"""``auth = "pubkey-enc"`` / ``"pubkey-enc-revised"`` (RFC 2409 5.2 / 5.3) in the configuration:
what loads, and what is refused at load because the engine would not act on it."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from snakeswan.config.loader import parse_config
from snakeswan.errors import ConfigError
from tests.pki import Issued, TestPki


def public_file(me: Issued, *, der: bool = False) -> Path:
    enc = serialization.Encoding.DER if der else serialization.Encoding.PEM
    path = me.cert.with_suffix(".der.pub" if der else ".pub")
    path.write_bytes(
        me.private_key.public_key().public_bytes(enc, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return path


def conf(local: str, remote: str, key: Path, extra: str = "") -> str:
    return f"""
[connections.c]
remote_addrs = ["192.0.2.1"]
local = {{ {local} }}
remote = {{ {remote} }}
{extra}
[secrets.private-1]
file = "{key}"
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki(tmp_path_factory.mktemp("pki"), "rsa")


@pytest.fixture(scope="module")
def hosts(pki: TestPki) -> tuple[Issued, Issued]:
    return pki.host("west.sw-lab"), pki.host("east.sw-lab", key_index=1)


@pytest.mark.parametrize("auth", ["pubkey-enc", "pubkey-enc-revised"])
def test_certificates_load_and_default_the_local_id(hosts: tuple[Issued, Issued], auth: str) -> None:
    me, peer = hosts
    config = parse_config(
        conf(f'auth = "{auth}", certs = ["{me.cert}"]', f'auth = "{auth}", certs = ["{peer.cert}"]', me.key)
    )
    conn = config.connection("c")
    assert conn.local.auth == auth and conn.local.method == auth
    assert str(conn.local.id) == "C=CH, O=snakeswan, CN=west.sw-lab"


@pytest.mark.parametrize("der", [False, True], ids=["pem", "der"])
def test_raw_public_keys_load(hosts: tuple[Issued, Issued], der: bool) -> None:
    me, peer = hosts
    mine, theirs = public_file(me, der=der), public_file(peer, der=der)
    config = parse_config(
        conf(
            f'auth = "pubkey-enc", id = "@west", pubkeys = ["{mine}"]',
            f'auth = "pubkey-enc", id = "@east", pubkeys = ["{theirs}"]',
            me.key,
        )
    )
    creds = config.credentials
    assert creds.key_for_public(creds.pubkey(str(mine))) is not None
    assert creds.key_for_public(creds.pubkey(str(theirs))) is None


@pytest.mark.parametrize(
    ("local", "remote", "where", "what"),
    [
        ('auth = "pubkey-enc"', 'auth = "pubkey"', "remote.auth", "so this must be too"),
        ('auth = "pubkey-enc"', 'auth = "pubkey-enc-revised"', "remote.auth", "so this must be too"),
        ('auth = "psk"', 'auth = "pubkey-enc"', "local.auth", 'remote.auth is "pubkey-enc"'),
        ('auth = "pubkey-enc"', 'auth = "pubkey-enc", cacerts = ["CA"]', "remote.cacerts", "pinned"),
        (
            'auth = "pubkey-enc"',
            'auth = "pubkey-enc"',
            "remote.certs",
            "needs remote.certs or remote.pubkeys",
        ),
        (
            'auth = "pubkey-enc", certs = ["ME"], pubkeys = ["MEPUB"]',
            'auth = "pubkey-enc", certs = ["PEER"]',
            "local.pubkeys",
            "not both",
        ),
    ],
)
def test_refused(
    pki: TestPki, hosts: tuple[Issued, Issued], local: str, remote: str, where: str, what: str
) -> None:
    me, peer = hosts
    names = {
        "ME": str(me.cert),
        "PEER": str(peer.cert),
        "CA": str(pki.ca_path),
        "MEPUB": str(public_file(me)),
    }
    for token, path in names.items():
        local, remote = local.replace(f'"{token}"', f'"{path}"'), remote.replace(f'"{token}"', f'"{path}"')
    if "certs" not in local and "pubkeys" not in local and "pubkey-enc" in local:
        local += f', certs = ["{me.cert}"]'
    with pytest.raises(ConfigError, match=what) as info:
        parse_config(conf(local, remote, me.key))
    assert where in str(info.value)


def test_xauth_round_refused(hosts: tuple[Issued, Issued]) -> None:
    me, peer = hosts
    text = conf(
        f'auth = "pubkey-enc", certs = ["{me.cert}"]', f'auth = "pubkey-enc", certs = ["{peer.cert}"]', me.key
    ).replace("[secrets.private-1]", '[connections.c.remote-xauth]\nauth = "xauth"\n[secrets.private-1]')
    with pytest.raises(ConfigError, match="XAUTH round is not implemented"):
        parse_config(text)


def test_our_private_key_must_be_loaded(hosts: tuple[Issued, Issued]) -> None:
    """A private key that is not the one of our certificate: the peer would encrypt to a key we
    cannot decrypt with."""
    me, peer = hosts
    with pytest.raises(ConfigError, match="no private key for this key") as info:
        parse_config(
            conf(
                f'auth = "pubkey-enc", certs = ["{me.cert}"]',
                f'auth = "pubkey-enc", certs = ["{peer.cert}"]',
                peer.key,
            )
        )
    assert "local.certs[0]" in str(info.value)
    mine = public_file(me)
    with pytest.raises(ConfigError, match="no private key for this key"):
        parse_config(
            conf(
                f'auth = "pubkey-enc", pubkeys = ["{mine}"]',
                f'auth = "pubkey-enc", certs = ["{peer.cert}"]',
                peer.key,
            )
        )


def test_rsa_only(tmp_path_factory: pytest.TempPathFactory, hosts: tuple[Issued, Issued]) -> None:
    me, _ = hosts
    ec = TestPki(tmp_path_factory.mktemp("ec"), "ecdsa").host("east.sw-lab")
    with pytest.raises(ConfigError, match="encrypts with RSA") as info:
        parse_config(
            conf(
                f'auth = "pubkey-enc", certs = ["{me.cert}"]',
                f'auth = "pubkey-enc", certs = ["{ec.cert}"]',
                me.key,
            )
        )
    assert "remote.certs[0]" in str(info.value)


def test_raw_keys_only_with_public_key_encryption(hosts: tuple[Issued, Issued]) -> None:
    me, peer = hosts
    with pytest.raises(ConfigError, match='work with auth = "pubkey-enc"'):
        parse_config(
            conf(
                f'auth = "pubkey", certs = ["{me.cert}"]',
                f'auth = "pubkey", pubkeys = ["{public_file(peer)}"]',
                me.key,
            )
        )


def test_unreadable_public_key(tmp_path: Path, hosts: tuple[Issued, Issued]) -> None:
    me, _ = hosts
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key")
    with pytest.raises(ConfigError, match="expected a PEM or DER public key") as info:
        parse_config(
            conf(
                f'auth = "pubkey-enc", certs = ["{me.cert}"]',
                f'auth = "pubkey-enc", pubkeys = ["{bad}"]',
                me.key,
            )
        )
    assert "remote.pubkeys[0]" in str(info.value)
