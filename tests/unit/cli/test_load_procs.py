"""``snakeswan load --procs``: how the peers, ports and budgets are shared out, and merged back."""

from __future__ import annotations

from collections import Counter

import pytest

from snakeswan.config.loader import parse_config
from snakeswan.daemon.loadgen import LoadResult, LoadSpec, build_config
from snakeswan.daemon.loadprocs import merge, shares
from snakeswan.errors import LocalError


def test_shares_cover_every_peer_once_with_ports_of_their_own() -> None:
    spec = LoadSpec("10.231.0.2", "10.231.0.1", 10, "psk", rate=90.0, concurrency=100)
    parts = shares(spec, 3)
    assert [(p.first, p.n) for p in parts] == [(0, 4), (4, 3), (7, 3)]
    assert [(p.port, p.nat_port, p.bind) for p in parts] == [
        (500, 4500, False),
        (501, 4501, False),
        (502, 4502, False),
    ]
    assert all(p.rate == 30.0 and p.concurrency == 34 for p in parts)
    names = [
        line for p in parts for line in p.config_text().splitlines() if line.startswith("[connections.c")
    ]
    assert sorted(n for n in names if ".children" not in n) == sorted(
        f"[connections.c{i}]" for i in range(10)
    )
    assert 'id = "peer7.load"' in parts[2].config_text()


def test_one_address_per_process_when_given_several() -> None:
    spec = LoadSpec("10.231.0.2", "10.231.0.1,10.231.0.3", 10, "psk")
    parts = shares(spec, 2)
    assert [(p.local, p.bind, p.port, p.nat_port) for p in parts] == [
        ("10.231.0.1", True, 500, 4500),
        ("10.231.0.3", True, 500, 4500),
    ]
    assert 'local_addrs = ["10.231.0.3"]' in parts[1].config_text()
    with pytest.raises(LocalError, match="3 processes need 3 local addresses"):
        shares(spec, 3)


def test_no_more_processes_than_peers_and_at_least_one() -> None:
    assert len(shares(LoadSpec("a", "b", 2, "psk"), 8)) == 2
    with pytest.raises(LocalError):
        shares(LoadSpec("a", "b", 2, "psk"), 0)


def test_merge_adds_counts_and_keeps_the_longest_time() -> None:
    a = LoadResult(5, 4, Counter({"timeout": 1}), [0.1, 0.2, 0.3, 0.4], 2.0)
    b = LoadResult(5, 5, Counter(), [0.5] * 5, 3.0)
    m = merge([a, b])
    assert (m.started, m.established, m.failures, m.elapsed) == (10, 9, Counter({"timeout": 1}), 3.0)
    assert m.summary()["per_second"] == 3.0 and len(m.latencies) == 9


@pytest.mark.parametrize("first", [0, 7])
def test_copied_connections_equal_parsed_ones(first: int) -> None:
    """Without XAUTH the generator parses one connection and copies it per peer: the same
    configuration as parsing every peer's TOML block."""
    spec = LoadSpec("10.231.0.2", "10.231.0.1", 5, "psk", first=first, remote_ts="10.231.2.0/24", vips=True)
    fast, slow = build_config(spec), parse_config(spec.config_text(), "<load>")
    assert fast == slow
    assert [c.name for c in fast.connections] == [f"c{i}" for i in range(first, first + 5)]
    assert fast.connections[1].children is fast.connections[4].children  # shared, not copied
    assert str(fast.connections[3].local.id) == f"peer{first + 3}.load"
    xauth = LoadSpec("10.231.0.2", "10.231.0.1", 3, "psk", xauth_user="u{i}", xauth_password="p{i}")
    assert build_config(xauth) == parse_config(xauth.config_text(), "<load>")
