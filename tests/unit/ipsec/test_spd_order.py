"""SPD order: the bypass of our own IKE/ESP/AH first, pass shunts next, then protect and drop
policies most specific first; equal ones in the order they were added (configuration order)."""

from __future__ import annotations

import ipaddress

from snakeswan.ipsec import Bypass, Policy, Processor
from snakeswan.ipsec.packet import five_tuple
from snakeswan.ipsec.spd import IKE_BYPASS_KEY, Spd, ike_bypass_policies, policy_priority
from tests.unit.ipsec.helpers import counter_rng, ip_packet, selector


def policy(action: str, local: str, remote: str, name: str) -> Policy:
    lts, rts = selector(local), selector(remote)
    return Policy(lts, rts, action, ("gw", name), policy_priority(action, lts, rts))


def names(spd: Spd) -> list[str]:
    return [e.policy.key[1] for e in spd.entries if e.policy.key]


def test_most_specific_first_whatever_the_order_of_adding() -> None:
    spd = Spd()
    for p in (
        policy("protect", "10.1.0.0/16", "10.2.0.0/16", "wide"),
        policy("protect", "10.1.0.0/24", "10.2.0.0/24", "net"),
        policy("discard", "10.1.0.0/24", "10.2.0.7", "block"),
        policy("protect", "10.1.0.0/24", "10.2.0.0/24[tcp/22]", "ssh"),
        policy("protect", "10.1.0.0/24", "10.2.0.0/24[udp]", "udp"),
        policy("bypass", "10.1.0.0/16", "10.2.0.0/16[tcp/80]", "web"),
    ):
        spd.add(p)
    assert names(spd) == ["web", "block", "ssh", "udp", "net", "wide"]
    lookup = [
        ("10.1.0.5", "10.2.0.7", 6, 80, "web"),  # pass shunts come before everything negotiated
        ("10.1.0.5", "10.2.0.7", 6, 22, "block"),  # a host is narrower than a port of a /24
        ("10.1.0.5", "10.2.0.8", 6, 22, "ssh"),
        ("10.1.0.5", "10.2.0.8", 17, 53, "udp"),
        ("10.1.0.5", "10.2.0.8", 6, 443, "net"),
        ("10.1.9.5", "10.2.0.8", 6, 443, "wide"),
    ]
    for src, dst, proto, dport, name in lookup:
        entry = spd.lookup(five_tuple(ip_packet(src, dst, proto=proto, dport=dport)))
        assert entry is not None and entry.policy.key == ("gw", name), (src, dst, dport)


def test_equal_policies_keep_configuration_order() -> None:
    spd = Spd()
    spd.add(policy("protect", "10.1.0.0/24", "10.2.0.0/24", "first"))
    spd.add(policy("discard", "10.1.0.0/24", "10.2.0.0/24", "second"))
    spd.add(policy("protect", "10.1.0.0/24", "10.3.0.0/24", "third"))
    assert names(spd) == ["first", "second", "third"]


def test_own_traffic_bypass_comes_first_and_matches_only_our_sources() -> None:
    addresses = [ipaddress.ip_address("10.231.0.1"), ipaddress.ip_address("fdad:231::1")]
    p = Processor(counter_rng())
    p.add_policy(policy("protect", "10.231.0.1", "10.231.0.2", "host"))  # transport mode
    p.add_policy(policy("protect", "fdad:231::1", "fdad:231::2", "host6"))
    for bypass in ike_bypass_policies(addresses, (500, 4500)):
        p.add_policy(bypass)
    keys = [e.policy.key for e in p.spd.entries]
    assert keys[:8] == [IKE_BYPASS_KEY] * 8 and len(keys) == 10
    ours = [
        ip_packet("10.231.0.1", "10.231.0.2", sport=500, dport=500),
        ip_packet("10.231.0.1", "10.231.0.2", sport=4500, dport=31337),
        ip_packet("fdad:231::1", "fdad:231::2", sport=500, dport=500),
        ip_packet("10.231.0.1", "10.231.0.2", proto=50, data=bytes(32)),
        ip_packet("10.231.0.1", "10.231.0.2", proto=51, data=bytes(32)),
    ]
    for packet in ours:
        assert p.outbound(packet, 1.0) == [Bypass(packet)]  # never protected, never an Acquire
    assert p.next_event() is None
    theirs = ip_packet("10.231.0.1", "10.231.0.2", sport=1500, dport=500)  # to port 500, not from
    assert p.outbound(theirs, 1.0) == []  # queued for the transport-mode SA
    assert p.next_event() is not None  # Acquire
