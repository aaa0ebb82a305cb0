"""An IPsec SA going away on a hub that holds thousands: the data plane finds the policies and
routes to remove through indexes (daemon/policy_index.py, io/routes.py) with the answers the walks
over every SA gave before, and without walking (a daemon stopping with 10,000 SAs took a minute)."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from snakeswan.config.loader import parse_config
from snakeswan.daemon.childsa import policy_key
from snakeswan.daemon.dataplane import DataPlane
from snakeswan.daemon.policy_index import ChildKeys, PolicyKeys
from snakeswan.io.routes import Routes
from tests.ra import gateway_config


def old_named(keys: set[tuple[str, str]], conn: str, child: str) -> set[tuple[str, str]]:
    """What DataPlane.unprotect selected before the index (a walk over every policy key)."""
    return {k for k in keys if k[0] == conn and child in (k[1], k[1].partition("#")[0])}


def test_policy_keys_find_what_the_walk_found() -> None:
    rnd = random.Random(16)
    names = ["net", "net#0", "net#1", "net@10.231.100.7/32", "net#1@10.231.100.7/32", "lan", "lan#2"]
    names += [f"net@10.231.100.{i}/32" for i in range(20)]
    index, plain = PolicyKeys(), set()
    for _ in range(2000):
        key = (rnd.choice(["rw", "site"]), rnd.choice(names))
        if rnd.random() < 0.6:
            index.add(key)
            plain.add(key)
        else:
            index.discard(key)
            plain.discard(key)
        assert (key in index) == (key in plain)
        conn, child = rnd.choice(["rw", "site"]), rnd.choice([*names, "net#1@10.231.100.7/32"])
        assert set(index.named(conn, child)) == old_named(plain, conn, child)
    assert set(index) == plain and len(index) == len(plain)


def test_child_keys_count_the_installed_sas() -> None:
    keys = ChildKeys()
    keys.add(1, ("rw", "net@a"), "rw", "net")
    keys.add(2, ("rw", "net@a"), "rw", "net")  # a rekey: two SAs under one policy
    keys.add(3, ("rw", "net@b"), "rw", "net")
    keys.discard(1)
    assert keys.has_key(("rw", "net@a")) and keys.has_child("rw", "net")
    keys.discard(2)
    keys.discard(2)  # again: nothing
    assert not keys.has_key(("rw", "net@a")) and keys.has_key(("rw", "net@b"))
    keys.add(3, ("site", "lan"), "site", "lan")  # the same SPI again replaces its entry
    assert not keys.has_key(("rw", "net@b")) and not keys.has_child("rw", "net")
    assert keys.has_child("site", "lan")


class NoWalk(dict[int, Any]):
    """The data plane's children, which a deletion must not walk."""

    def values(self) -> Any:
        raise AssertionError("walked every SA")

    def items(self) -> Any:
        raise AssertionError("walked every SA")

    def __iter__(self) -> Any:
        raise AssertionError("walked every SA")


def test_a_peer_leaving_the_hub_removes_its_own_policy_only() -> None:
    config = parse_config(gateway_config(), "gw.toml")
    conn = config.connection("rw")
    removed: list[tuple[str, str]] = []
    plane: Any = SimpleNamespace(config=config, children=NoWalk(), _child_keys=ChildKeys())
    plane.unprotect = lambda conn_name, child: removed.append((conn_name, child))

    def sa(spi: int, peer: int) -> Any:
        info = SimpleNamespace(conn="rw", child="net", ts_pair=0, local_ts="10.231.3.0/24",
                               remote_ts=f"10.231.100.{peer}/32", spi_in=spi)  # fmt: skip
        plane._child_keys.add(spi, policy_key(conn, "net", info), "rw", "net")
        return info

    peers = {peer: sa(100 + peer, peer) for peer in range(1, 1001)}
    newer = sa(5000, 7)  # peer 7 rekeyed: two SAs under its policy
    plane._child_keys.discard(100 + 7)
    DataPlane.child_closed(plane, "rw", "net", peers[7])
    assert removed == []  # its newer SA still uses the policy
    plane._child_keys.discard(5000)
    DataPlane.child_closed(plane, "rw", "net", newer)
    plane._child_keys.discard(100 + 500)
    DataPlane.child_closed(plane, "rw", "net", peers[500])
    assert removed == [("rw", "net@10.231.100.7/32"), ("rw", "net@10.231.100.500/32")]


def test_removing_one_owner_visits_only_its_routes() -> None:
    calls: list[Sequence[str]] = []

    def runner(args: Sequence[str]) -> str:
        calls.append(list(args))
        return ""

    routes = Routes("ssw-tun", table=220, runner=runner)
    for i in range(2000):
        routes.add(ipaddress.ip_network(f"10.231.{64 + i // 256}.{i % 256}/32"), owner=f"rw/net@{i}")
    routes.add("10.231.2.0/24", owner="a/lan")
    routes.add("10.231.2.0/24", owner="b/lan")
    calls.clear()
    assert routes.remove_owner("rw/net@300") == [ipaddress.ip_network("10.231.65.44/32")]
    assert calls == [["-4", "route", "del", "10.231.65.44/32", "dev", "ssw-tun", "table", "220"]]
    assert routes.remove_owner("rw/net@300") == []  # gone already
    assert routes.remove_owner("a/lan") == [] and routes.remove_owner("b/lan") == [
        ipaddress.ip_network("10.231.2.0/24")
    ]
    assert len(routes.installed()) == 1999
    routes.remove_all()
    assert routes.installed() == {} and routes.remove_owner("rw/net@1") == []
