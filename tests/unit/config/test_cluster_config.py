"""[cluster]: parsed into ClusterConfig; every missing or bad value refused at load, naming the key."""

from __future__ import annotations

import ipaddress

import pytest

from snakeswan.config.loader import parse_config
from snakeswan.errors import ConfigError

GOOD = """
[daemon]
state = "etcd"
[cluster]
key_file = "/etc/snakeswan/cluster.key"
endpoints = ["http://10.231.9.1:2379", "http://10.231.9.2:2379"]
node = "gw1"
name = "lab"
lease_ttl = 2
timeout = "0.5s"
prefer = ["a"]
[cluster.shares.a]
address = "10.231.5.10/24"
interface = "eth0"
[cluster.shares.b]
address = "10.231.5.11/24"
interface = "eth0"
"""


def test_cluster_parsed() -> None:
    cfg = parse_config(GOOD, "c.toml").cluster
    assert cfg is not None
    assert cfg.endpoints == ("http://10.231.9.1:2379", "http://10.231.9.2:2379")
    assert (cfg.node, cfg.name, cfg.lease_ttl, cfg.timeout, cfg.prefer) == ("gw1", "lab", 2, 0.5, ("a",))
    assert [s.name for s in cfg.shares] == ["a", "b"]
    assert cfg.shares[0].address == ipaddress.ip_interface("10.231.5.10/24")
    assert cfg.share_of("10.231.5.11") is cfg.shares[1] and cfg.share_of("10.231.5.12") is None
    assert cfg.key_file == "/etc/snakeswan/cluster.key"
    assert parse_config("", "c.toml").cluster is None


def test_cluster_and_etcd_state_go_together() -> None:
    with pytest.raises(ConfigError, match=r"c.toml: daemon.state: .*needs a \[cluster\]"):
        parse_config('[daemon]\nstate = "etcd"\n', "c.toml")
    with pytest.raises(ConfigError, match=r"c.toml: cluster: .*only used with"):
        parse_config(GOOD.replace('state = "etcd"', 'state = "sqlite"'), "c.toml")
    with pytest.raises(ConfigError, match=r"daemon\.state"):
        parse_config('[daemon]\nstate = "redis"\n', "c.toml")


@pytest.mark.parametrize(
    ("edit", "key", "why"),
    [
        (
            ('endpoints = ["http://10.231.9.1:2379", "http://10.231.9.2:2379"]', ""),
            "cluster.endpoints",
            "required",
        ),
        (('"http://10.231.9.2:2379"', '"https://x:1"'), "cluster.endpoints[1]", "http://HOST:PORT"),
        (('node = "gw1"', ""), "cluster.node", "required"),
        (('node = "gw1"', 'node = "gw 1"'), "cluster.node", "letters"),
        (("lease_ttl = 2", "lease_ttl = 0"), "cluster.lease_ttl", "1..3600"),
        (('timeout = "0.5s"', 'timeout = "60s"'), "cluster.timeout", "50ms..30s"),
        (('prefer = ["a"]', 'prefer = ["c"]'), "cluster.prefer[0]", "no share 'c'"),
        (('address = "10.231.5.11/24"', 'address = "10.231.5.10/24"'), "cluster.shares", "same address"),
        (('address = "10.231.5.11/24"', 'address = "10.231.5.11"'), "cluster.shares.b.address", "prefix"),
        (
            ('interface = "eth0"\n[cluster.shares.b]', "[cluster.shares.b]"),
            "cluster.shares.a.interface",
            "required",
        ),
        (("lease_ttl = 2", "lease_ttl = 2\nvip = 1"), "cluster.vip", "unknown key"),
        (
            ('key_file = "/etc/snakeswan/cluster.key"', 'key_file = "cluster.key"'),
            "cluster.key_file",
            "absolute",
        ),
        (
            ('interface = "eth0"\n[cluster.shares.b]', 'interface = "eth0"\ngarp = 3\n[cluster.shares.b]'),
            "cluster.shares.a.garp",
            "unknown key",
        ),
    ],
)
def test_bad_cluster_refused(edit: tuple[str, str], key: str, why: str) -> None:
    old, new = edit
    assert old in GOOD
    with pytest.raises(ConfigError) as info:
        parse_config(GOOD.replace(old, new, 1), "c.toml")
    assert f"c.toml: {key}" in str(info.value) and why in str(info.value)


def test_cluster_without_shares_refused() -> None:
    text = GOOD.split("[cluster.shares.a]", maxsplit=1)[0].replace('prefer = ["a"]', "")
    with pytest.raises(ConfigError, match=r"cluster.shares.*required"):
        parse_config(text, "c.toml")
