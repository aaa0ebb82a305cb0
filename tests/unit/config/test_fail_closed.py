"""Fail closed: a swanctl key whose setting the code would not act on is refused at load, naming
the key and why, never parsed and ignored."""

from __future__ import annotations

import pytest

from snakeswan.config.loader import parse_config
from snakeswan.errors import ConfigError

BASE = """
[connections.c]
remote_addrs = ["10.231.0.2"]
local = {{ auth = "psk" }}
remote = {{ auth = "psk" }}
{conn}
[connections.c.children.net]
remote_ts = ["10.231.2.0/24"]
{child}
[secrets.ike-x]
secret = "s"
"""


@pytest.mark.parametrize(
    ("conn", "child", "key", "why"),
    [
        ("mobike = true", "", "connections.c.mobike", "MOBIKE is IKEv2 only"),
        ("keyingtries = 3", "", "connections.c.keyingtries", "retries are not implemented"),
        ('unique = "sometimes"', "", "connections.c.unique", 'expected "never", "no", "keep" or "replace"'),
        ("", 'inactivity = "5m"', "connections.c.children.net.inactivity", "not implemented"),
        ("", "reqid = 5", "connections.c.children.net.reqid", "kernel notion"),
        ("", 'updown = "/bin/true"', "connections.c.children.net.updown", "updown scripts"),
        ("", "hostaccess = true", "connections.c.children.net.hostaccess", "not implemented"),
        ("", "policies = false", "connections.c.children.net.policies", "without policies"),
        ("", "life_packets = 1000", "connections.c.children.net.life_packets", "packet-count"),
        ("", 'rand_bytes = "1M"', "connections.c.children.net.rand_bytes", "byte jitter"),
        ('remote-xauth = { auth = "xauth-pam", round = 2 }', "", "connections.c.remote-xauth.auth", "xauth-pam"
         .replace("xauth-", "")),
    ],
)  # fmt: skip
def test_unsupported_settings_are_refused(conn: str, child: str, key: str, why: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE.format(conn=conn, child=child), "t.toml")
    assert key in str(info.value) and why in str(info.value)


def test_defaults_and_the_supported_values_load() -> None:
    text = BASE.format(
        conn='mobike = false\nfragmentation = "no"\nkeyingtries = 1\nunique = "no"',
        child="inactivity = 0\nreqid = 0\nhostaccess = false\npolicies = true",
    )
    conn = parse_config(text, "t.toml").connection("c")
    assert (conn.fragmentation, conn.keyingtries, conn.unique) == ("no", 1, "no")


def test_split_exclude_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"pools\.p\.split_exclude: split-exclude"):
        parse_config('[pools.p]\naddrs = "10.231.9.0/24"\nsplit_exclude = ["10.231.1.0/24"]\n', "t.toml")


def test_hybrid_needs_a_signing_peer() -> None:
    text = BASE.replace('local = {{ auth = "psk" }}', 'local = {{ auth = "xauth" }}').format(
        conn="", child=""
    )
    with pytest.raises(ConfigError, match=r"connections\.c\.local\.auth: XAUTH as the only round \(hybrid"):
        parse_config(text, "t.toml")


@pytest.mark.parametrize("policy", ["never", "no", "keep", "replace"])
def test_unique_policies_are_acted_on(policy: str) -> None:
    """ike/unique.py enforces them (tests/unit/ike/test_several_connections.py)."""
    conn = parse_config(BASE.format(conn=f'unique = "{policy}"', child=""), "t.toml").connection("c")
    assert conn.unique == policy
