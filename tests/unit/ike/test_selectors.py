"""Quick Mode proxy IDs: TS <-> ID payload fields, malformed IDs, acceptance, narrowing, child choice."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from snakeswan.config.model import ChildConfig
from snakeswan.config.traffic import TrafficSelector
from snakeswan.errors import LocalError, PeerError
from snakeswan.ike.selectors import (
    id_to_ts,
    initiator_selectors,
    narrow,
    select_child,
    ts_acceptable,
    ts_to_id,
)
from snakeswan.wire.enums import IdType, NotifyType

TS = TrafficSelector.from_text
V4 = IPv4Address
V6 = IPv6Address


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("10.1.0.1", (IdType.IPV4_ADDR, 0, 0, bytes([10, 1, 0, 1]))),
        ("10.1.0.0/24", (IdType.IPV4_ADDR_SUBNET, 0, 0, bytes([10, 1, 0, 0, 255, 255, 255, 0]))),
        ("0.0.0.0/0", (IdType.IPV4_ADDR_SUBNET, 0, 0, bytes(8))),
        ("10.1.0.1-10.1.0.9", (IdType.IPV4_ADDR_RANGE, 0, 0, bytes([10, 1, 0, 1, 10, 1, 0, 9]))),
        ("10.1.0.0/24[tcp/80]", (IdType.IPV4_ADDR_SUBNET, 6, 80, bytes([10, 1, 0, 0, 255, 255, 255, 0]))),
        ("10.1.0.1[udp]", (IdType.IPV4_ADDR, 17, 0, bytes([10, 1, 0, 1]))),
        ("2001:db8::1", (IdType.IPV6_ADDR, 0, 0, V6("2001:db8::1").packed)),
        (
            "2001:db8::/32[udp/500]",
            (IdType.IPV6_ADDR_SUBNET, 17, 500, V6("2001:db8::").packed + V6("ffff:ffff::").packed),
        ),
        (
            "2001:db8::1-2001:db8::ff",
            (IdType.IPV6_ADDR_RANGE, 0, 0, V6("2001:db8::1").packed + V6("2001:db8::ff").packed),
        ),
    ],
)
def test_ts_to_id_and_back(text: str, fields: tuple[int, int, int, bytes]) -> None:
    ts = TS(text)
    assert ts_to_id(ts) == fields
    assert id_to_ts(*fields) == ts


def test_ts_to_id_refuses_what_ikev1_cannot_carry() -> None:
    with pytest.raises(LocalError, match="one port or all ports"):
        ts_to_id(TS("10.0.0.0/8[tcp/80-90]"))
    with pytest.raises(LocalError, match="resolved"):
        ts_to_id(TS("dynamic"))
    assert ts_to_id(TS("dynamic[udp/1701]").resolve(V4("192.0.2.1"))) == (
        IdType.IPV4_ADDR,
        17,
        1701,
        bytes([192, 0, 2, 1]),
    )


def test_subnet_host_bits_are_cleared() -> None:
    assert id_to_ts(IdType.IPV4_ADDR_SUBNET, 0, 0, bytes([10, 1, 0, 77, 255, 255, 255, 0])) == TS(
        "10.1.0.0/24"
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ((IdType.FQDN, 0, 0, b"gw.example.com"), "cannot be a traffic selector"),
        ((IdType.DER_ASN1_DN, 0, 0, b"\x30\x00"), "cannot be a traffic selector"),
        ((99, 0, 0, b"\x00" * 4), "cannot be a traffic selector"),
        ((IdType.IPV4_ADDR, 0, 0, b"\x0a\x00\x00"), "needs 4 bytes"),
        ((IdType.IPV4_ADDR_SUBNET, 0, 0, b"\x0a\x00\x00\x00"), "needs 8 bytes"),
        ((IdType.IPV6_ADDR, 0, 0, b"\x00" * 4), "needs 16 bytes"),
        ((IdType.IPV6_ADDR_RANGE, 0, 0, b"\x00" * 31), "needs 32 bytes"),
        ((IdType.IPV4_ADDR_SUBNET, 0, 0, bytes([10, 0, 0, 0, 255, 0, 255, 0])), "not contiguous"),
        ((IdType.IPV4_ADDR_SUBNET, 0, 0, bytes([10, 0, 0, 0, 0, 255, 255, 255])), "not contiguous"),
        (
            (IdType.IPV6_ADDR_SUBNET, 0, 0, bytes(16) + V6("ffff:0:ffff::").packed),
            "not contiguous",
        ),
        ((IdType.IPV4_ADDR_RANGE, 0, 0, bytes([10, 0, 0, 9, 10, 0, 0, 1])), "reversed"),
        ((IdType.IPV4_ADDR, 0, 80, bytes([10, 0, 0, 1])), "without an IP protocol"),
        ((IdType.IPV4_ADDR, 300, 0, bytes([10, 0, 0, 1])), "out of range"),
    ],
)
def test_malformed_ids_are_invalid_id_information(fields: tuple[int, int, int, bytes], message: str) -> None:
    with pytest.raises(PeerError, match=message) as info:
        id_to_ts(*fields)
    assert info.value.notify == NotifyType.INVALID_ID_INFORMATION


def test_ts_acceptable_when_contained() -> None:
    ours = [TS("10.1.0.0/16"), TS("10.9.0.0/24[tcp]")]
    assert ts_acceptable(ours, TS("10.1.2.0/24"))
    assert ts_acceptable(ours, TS("10.1.0.0/16"))
    assert ts_acceptable(ours, TS("10.9.0.5[tcp/22]"))
    assert not ts_acceptable(ours, TS("10.0.0.0/8"))  # larger than ours: needs narrowing
    assert not ts_acceptable(ours, TS("10.9.0.5[udp/53]"))
    assert not ts_acceptable(ours, TS("2001:db8::/64"))
    assert not ts_acceptable([], TS("10.1.2.0/24"))


def test_narrow() -> None:
    ours = [TS("10.1.0.0/16")]
    assert narrow(ours, TS("10.0.0.0/8")) == TS("10.1.0.0/16")
    assert narrow(ours, TS("10.1.5.0/24[udp/53]")) == TS("10.1.5.0/24[udp/53]")
    assert narrow(ours, TS("10.1.255.0-10.2.0.9")) == TS("10.1.255.0/24")
    assert narrow(ours, TS("10.2.0.0/16")) is None
    assert narrow([TS("10.3.0.0/16"), TS("10.1.0.0/16")], TS("10.0.0.0/8")) == TS("10.3.0.0/16")  # first one


LOCAL = V4("192.0.2.1")
REMOTE = V4("198.51.100.1")


def _child(name: str, local: str, remote: str) -> ChildConfig:
    return ChildConfig(name=name, local_ts=(TS(local),), remote_ts=(TS(remote),))


def test_select_child_prefers_exact_then_subset() -> None:
    wide = _child("wide", "10.1.0.0/16", "10.2.0.0/16")
    exact = _child("exact", "10.1.1.0/24", "10.2.2.0/24")
    children = [wide, exact]
    match = select_child(children, TS("10.1.1.0/24"), TS("10.2.2.0/24"), LOCAL, REMOTE)
    assert match is not None and match.child is exact and not match.narrowed
    match = select_child(children, TS("10.1.7.0/24"), TS("10.2.2.0/24"), LOCAL, REMOTE)
    assert match is not None and match.child is wide and not match.narrowed
    assert (match.local_ts, match.remote_ts) == (TS("10.1.7.0/24"), TS("10.2.2.0/24"))


def test_select_child_narrows_a_wider_proposal() -> None:
    child = _child("net", "10.1.0.0/16", "10.2.0.0/16")
    match = select_child([child], TS("10.0.0.0/8"), TS("10.2.0.0/16[tcp]"), LOCAL, REMOTE)
    assert match is not None and match.narrowed
    assert (match.local_ts, match.remote_ts) == (TS("10.1.0.0/16"), TS("10.2.0.0/16[tcp]"))


def test_select_child_none_when_a_side_does_not_overlap() -> None:
    child = _child("net", "10.1.0.0/16", "10.2.0.0/16")
    assert select_child([child], TS("10.1.0.0/24"), TS("10.3.0.0/24"), LOCAL, REMOTE) is None
    assert select_child([], TS("10.1.0.0/24"), TS("10.2.0.0/24"), LOCAL, REMOTE) is None


def test_select_child_resolves_dynamic_with_ike_addresses() -> None:
    l2tp = ChildConfig(name="l2tp", local_ts=(TS("dynamic[udp/1701]"),), remote_ts=(TS("dynamic[udp]"),))
    mine = TrafficSelector.host(LOCAL, 17, 1701, 1701)
    theirs = TrafficSelector.host(REMOTE, 17, 1701, 1701)
    match = select_child([l2tp], mine, theirs, LOCAL, REMOTE)
    assert match is not None and match.child is l2tp and not match.narrowed
    assert select_child([l2tp], mine, TrafficSelector.host(V4("203.0.113.5"), 17), LOCAL, REMOTE) is None
    assert initiator_selectors(l2tp, LOCAL, REMOTE) == (mine, TrafficSelector.host(REMOTE, 17))
