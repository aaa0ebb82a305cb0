"""Traffic selector syntax, containment, intersection (IPv4 and IPv6, protocols and ports)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

import pytest

from snakeswan.config.traffic import TrafficSelector
from snakeswan.errors import ConfigError, LocalError

TS = TrafficSelector


@pytest.mark.parametrize(
    ("text", "start", "end", "proto", "ports"),
    [
        ("10.1.0.0/24", "10.1.0.0", "10.1.0.255", 0, (0, 65535)),
        ("10.1.0.7/24", "10.1.0.0", "10.1.0.255", 0, (0, 65535)),  # host bits dropped, as strongSwan
        ("10.1.0.1", "10.1.0.1", "10.1.0.1", 0, (0, 65535)),
        ("10.1.0.1-10.1.0.9", "10.1.0.1", "10.1.0.9", 0, (0, 65535)),
        ("10.1.0.1..10.1.0.9", "10.1.0.1", "10.1.0.9", 0, (0, 65535)),
        ("10.1.0.0/24[tcp/80]", "10.1.0.0", "10.1.0.255", 6, (80, 80)),
        ("10.1.0.0/24[tcp/http]", "10.1.0.0", "10.1.0.255", 6, (80, 80)),
        ("10.1.0.0/24[udp]", "10.1.0.0", "10.1.0.255", 17, (0, 65535)),
        ("10.1.0.0/24[17/1701]", "10.1.0.0", "10.1.0.255", 17, (1701, 1701)),
        ("10.1.0.0/24[tcp/1000-2000]", "10.1.0.0", "10.1.0.255", 6, (1000, 2000)),
        ("10.1.0.0/24 [ tcp / %any ]", "10.1.0.0", "10.1.0.255", 6, (0, 65535)),
        ("%any", "0.0.0.0", "255.255.255.255", 0, (0, 65535)),
        ("0.0.0.0/0", "0.0.0.0", "255.255.255.255", 0, (0, 65535)),
        ("%any6", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0, (0, 65535)),
        ("2001:db8::/32[icmpv6]", "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 58, (0, 65535)),
        ("2001:db8::1-2001:db8::9", "2001:db8::1", "2001:db8::9", 0, (0, 65535)),
    ],
)
def test_from_text(text: str, start: str, end: str, proto: int, ports: tuple[int, int]) -> None:
    ts = TS.from_text(text)
    assert (ts.start, ts.end, ts.protocol, (ts.port_start, ts.port_end), ts.dynamic) == (
        ip_address(start),
        ip_address(end),
        proto,
        ports,
        False,
    )


@pytest.mark.parametrize(
    ("text", "proto", "port"), [("dynamic", 0, 0), ("[udp]", 17, 0), ("dynamic[udp/1701]", 17, 1701)]
)
def test_dynamic(text: str, proto: int, port: int) -> None:
    ts = TS.from_text(text)
    assert ts.dynamic and ts.protocol == proto
    resolved = ts.resolve(IPv4Address("192.0.2.7"))
    assert not resolved.dynamic and resolved.start == resolved.end == IPv4Address("192.0.2.7")
    assert resolved.protocol == proto and resolved.port_start == (port or 0)
    assert TS.from_text("10.0.0.0/8").resolve(IPv4Address("192.0.2.7")) == TS.from_text("10.0.0.0/8")
    with pytest.raises(LocalError, match="resolved"):
        ts.contains(resolved)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.1.0.0/33", "expected a subnet"),
        ("10.1.0.300", "expected a subnet"),
        ("gw.example.com", "expected a subnet"),
        ("10.1.0.9-10.1.0.1", "above its end"),
        ("10.1.0.1-2001:db8::1", "one address family"),
        ("10.1.0.0/24[foo]", "expected an IP protocol"),
        ("10.1.0.0/24[300]", "expected an IP protocol"),
        ("10.1.0.0/24[tcp/70000]", "expected a port"),
        ("10.1.0.0/24[tcp/90-80]", "reversed"),
        ("10.1.0.0/24[/80]", "a port needs a protocol"),
        ("10.1.0.0/24[tcp", "expected a traffic selector"),
    ],
)
def test_from_text_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TS.from_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "10.1.0.0/24",
        "10.1.0.1/32",
        "10.1.0.1..10.1.0.9",
        "10.1.0.0/24[tcp/80]",
        "dynamic[udp/1701]",
        "2001:db8::/64[udp/500-600]",
        "0.0.0.0/0",
        "10.0.0.0/8[47]",
    ],
)
def test_str_round_trip(text: str) -> None:
    ts = TS.from_text(text)
    assert str(ts) == text.replace("[47]", "[gre]")
    assert TS.from_text(str(ts)) == ts


def test_subnet_and_network() -> None:
    assert TS.from_text("10.1.0.0/24").as_network() == ip_network("10.1.0.0/24")
    assert TS.from_text("10.1.0.1").as_network() == ip_network("10.1.0.1/32")
    assert TS.from_text("%any6").as_network() == ip_network("::/0")
    assert TS.from_text("10.1.0.0-10.1.0.127").is_subnet()
    assert not TS.from_text("10.1.0.1-10.1.0.128").is_subnet()
    assert not TS.from_text("10.1.0.1-10.1.0.2").is_subnet()  # two addresses, not aligned
    with pytest.raises(LocalError):
        TS.from_text("10.1.0.1-10.1.0.9").as_network()
    assert TS.from_network("10.2.0.0/16", 6, 22, 22) == TS.from_text("10.2.0.0/16[tcp/22]")
    assert TS.host(IPv6Address("::1")).is_host()


def test_contains() -> None:
    net = TS.from_text("10.1.0.0/16")
    assert net.contains(TS.from_text("10.1.2.0/24"))
    assert net.contains(TS.from_text("10.1.2.3[tcp/80]"))
    assert net.contains(net)
    assert not net.contains(TS.from_text("10.2.0.0/24"))
    assert not net.contains(TS.from_text("10.0.0.0/8"))
    assert not TS.from_text("10.1.0.0/16[tcp]").contains(TS.from_text("10.1.2.0/24"))  # any proto not in tcp
    assert not TS.from_text("10.1.0.0/16[tcp]").contains(TS.from_text("10.1.2.0/24[udp]"))
    assert not TS.from_text("10.1.0.0/16[tcp/80]").contains(TS.from_text("10.1.2.0/24[tcp]"))
    assert not net.contains(TS.from_text("2001:db8::/64"))
    assert TS.from_text("2001:db8::/32").contains(TS.from_text("2001:db8:1::/48[udp/53]"))


def test_intersect_and_overlaps() -> None:
    a = TS.from_text("10.1.0.0/16")
    b = TS.from_text("10.1.255.0-10.2.0.255[tcp/1000-2000]")
    assert a.intersect(b) == TS(IPv4Address("10.1.255.0"), IPv4Address("10.1.255.255"), 6, 1000, 2000)
    assert b.intersect(a) == a.intersect(b)
    assert a.overlaps(b)
    assert a.intersect(TS.from_text("10.3.0.0/16")) is None
    assert TS.from_text("10.0.0.0/8[tcp]").intersect(TS.from_text("10.0.0.0/8[udp]")) is None
    assert TS.from_text("10.0.0.0/8[tcp/80]").intersect(TS.from_text("10.0.0.0/8[tcp/81-90]")) is None
    assert a.intersect(TS.from_text("::/0")) is None
    v6 = TS.from_text("2001:db8::/32").intersect(TS.from_text("2001:db8:5::1-2001:db9::1[udp/500]"))
    assert v6 == TS(
        IPv6Address("2001:db8:5::1"), IPv6Address("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"), 17, 500, 500
    )


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="family"):
        TS(IPv4Address("10.0.0.1"), IPv6Address("::1"))
    with pytest.raises(ValueError, match="above"):
        TS(IPv4Address("10.0.0.2"), IPv4Address("10.0.0.1"))
    with pytest.raises(ValueError, match="protocol"):
        TS(IPv4Address("10.0.0.1"), IPv4Address("10.0.0.1"), 256)
    with pytest.raises(ValueError, match="port range"):
        TS(IPv4Address("10.0.0.1"), IPv4Address("10.0.0.1"), 6, 90, 80)
