"""The indexed SPD gives the answer of a linear scan in policy order: random policy sets (CIDR
blocks of every size, odd ranges, ports, protocols, priorities, removals) against a reference, and
50,000 remote-access policies (one /32 per client) next to a few site policies."""

from __future__ import annotations

import ipaddress
import random

from snakeswan.config.traffic import TrafficSelector
from snakeswan.ipsec.packet import FiveTuple
from snakeswan.ipsec.spd import Policy, PolicyEntry, Spd, policy_priority

V4_BASE = int(ipaddress.IPv4Address("10.0.0.0"))
V6_BASE = int(ipaddress.IPv6Address("fd00::"))


def reference(policies: list[tuple[int, Policy]], spd: Spd, ft: FiveTuple) -> Policy | None:
    """The first match in (priority, insertion) order by brute force over compiled entries."""
    for _seq, policy in sorted(policies, key=lambda sp: (sp[1].priority, sp[0])):
        if PolicyEntry(policy, None).match(ft):
            return policy
    return None


def random_selector(rng: random.Random, version: int, protocol: int) -> TrafficSelector:
    base, width = (V4_BASE, 32) if version == 4 else (V6_BASE, 128)
    kind = rng.random()
    if kind < 0.6:  # a CIDR block inside 10.0.0.0/16 (or fd00::/112)
        host_bits = rng.choice([0, 0, 1, 4, 8, 12, 16])
        network = base + (rng.randrange(1 << 16) >> host_bits << host_bits)
        start, end = network, network + (1 << host_bits) - 1
    elif kind < 0.9:  # an odd range
        start = base + rng.randrange(1 << 16)
        end = min(start + rng.randrange(1, 3000), base + (1 << 16) - 1)
    else:  # everything
        start, end = 0, (1 << width) - 1
    addr = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    ports = (0, 65535)
    if protocol and rng.random() < 0.5:
        low = rng.randrange(0, 2000)
        ports = (low, low + rng.randrange(0, 50))
    return TrafficSelector(addr(start), addr(end), protocol, *ports)


def random_flow(rng: random.Random, version: int) -> FiveTuple:
    base = V4_BASE if version == 4 else V6_BASE
    return (
        version,
        base + rng.randrange(1 << 16),
        base + rng.randrange(1 << 16),
        rng.choice([6, 17, 1]),
        rng.randrange(2100),
        rng.randrange(2100),
    )


def test_index_agrees_with_a_linear_scan() -> None:
    rng = random.Random(1234)
    for _round in range(30):
        spd = Spd()
        added: list[tuple[int, Policy]] = []
        for n in range(rng.randrange(1, 120)):
            version = 4 if rng.random() < 0.8 else 6
            protocol = rng.choice([0, 0, 0, 6, 17])
            lts = random_selector(rng, version, protocol)
            rts = random_selector(rng, version, protocol if rng.random() < 0.7 else 0)
            action = rng.choice(["protect", "protect", "bypass", "discard"])
            priority = rng.choice([policy_priority(action, lts, rts), 0, 5, -1])
            policy = Policy(lts, rts, action, ("c", f"k{n % 40}"), priority)
            spd.add(policy)
            added.append((n, policy))
        for step in range(300):
            if step % 100 == 99:  # remove a key: the index forgets exactly its policies
                key = ("c", f"k{rng.randrange(40)}")
                removed = [sp for sp in added if sp[1].key == key]
                assert spd.remove(key) == len(removed)
                added = [sp for sp in added if sp[1].key != key]
                assert len(spd) == len(added)
            ft = random_flow(rng, 4 if rng.random() < 0.8 else 6)
            found = spd.lookup(ft)
            assert (found.policy if found else None) is reference(added, spd, ft), ft
        assert [e.policy for e in spd.entries] == [
            p for _, p in sorted(added, key=lambda sp: (sp[1].priority, sp[0]))
        ]


def test_fifty_thousand_clients_next_to_site_policies() -> None:
    spd = Spd()
    hub = TrafficSelector.from_network("10.200.0.0/16")
    anywhere = TrafficSelector.from_network("0.0.0.0/0")
    site = TrafficSelector.from_network("10.99.0.0/16")
    for p in (
        Policy(hub, site, "protect", ("site", "net"), policy_priority("protect", hub, site)),
        Policy(hub, anywhere, "discard", ("drop", "rest"), policy_priority("discard", hub, anywhere)),
    ):
        spd.add(p)
    first = int(ipaddress.IPv4Address("10.100.0.0"))
    for i in range(50_000):
        client = TrafficSelector.host(ipaddress.IPv4Address(first + i))
        spd.add(Policy(hub, client, "protect", ("ra", f"c{i}"), policy_priority("protect", hub, client)))
    assert len(spd) == 50_002
    src = int(ipaddress.IPv4Address("10.200.0.1"))
    for i in (0, 1, 4711, 49_999):
        entry = spd.lookup((4, src, first + i, 6, 40000, 443))
        assert entry is not None and entry.policy.key == ("ra", f"c{i}")
    site_entry = spd.lookup((4, src, int(ipaddress.IPv4Address("10.99.3.4")), 17, 1, 53))
    assert site_entry is not None and site_entry.policy.key == ("site", "net")
    stray = spd.lookup((4, src, first + 50_000, 6, 1, 2))
    assert stray is not None and stray.policy.action == "discard"
    outside = spd.lookup((4, int(ipaddress.IPv4Address("10.1.0.1")), first, 6, 1, 2))
    assert outside is None  # source not in the hub's selector
    assert spd.remove(("ra", "c4711")) == 1
    gone = spd.lookup((4, src, first + 4711, 6, 40000, 443))
    assert gone is not None and gone.policy.action == "discard"
