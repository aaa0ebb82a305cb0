"""Traffic selectors: an address range, an IP protocol and a port range (strongSwan ``local_ts``).

Text syntax as swanctl.conf: ``10.1.0.0/24``, ``10.1.0.1``, ``10.1.0.1-10.1.0.9`` (also
``10.1.0.1..10.1.0.9``, as strongSwan prints ranges), ``dynamic`` (the IKE address of that side,
substituted by the engine with :meth:`TrafficSelector.resolve`), ``%any`` (``0.0.0.0/0``) and
``%any6`` (``::/0``); each optionally followed by ``[protocol/port]``: ``[tcp/80]``, ``[udp]``,
``[17/1701]``, ``[tcp/1000-2000]``, ``[tcp/http]``. A bare ``[udp/500]`` means ``dynamic[udp/500]``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace

from snakeswan.errors import ConfigError, LocalError
from snakeswan.wire.enums import IpProtocol

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

PROTOCOLS: dict[str, int] = {
    "any": IpProtocol.ANY,
    "icmp": IpProtocol.ICMP,
    "tcp": IpProtocol.TCP,
    "udp": IpProtocol.UDP,
    "gre": 47,
    "esp": IpProtocol.ESP,
    "ah": IpProtocol.AH,
    "icmpv6": IpProtocol.ICMPV6,
    "ipv6-icmp": IpProtocol.ICMPV6,
    "sctp": 132,
}
_PROTOCOL_NAMES = {number: name for name, number in reversed(PROTOCOLS.items()) if number}

SERVICES: dict[str, int] = {
    "ssh": 22,
    "domain": 53,
    "http": 80,
    "ntp": 123,
    "snmp": 161,
    "https": 443,
    "isakmp": 500,
    "l2f": 1701,
    "l2tp": 1701,
    "ipsec-nat-t": 4500,
}

_TS_RE = re.compile(r"^\s*(?P<addr>[^\[\]]*?)\s*(?:\[(?P<pp>[^\[\]]*)\])?\s*$")
_V4_ALL = (ipaddress.IPv4Address(0), ipaddress.IPv4Address(2**32 - 1))


def _dynamic_guard(*selectors: TrafficSelector) -> None:
    for ts in selectors:
        if ts.dynamic:
            raise LocalError("a dynamic traffic selector must be resolved to an address first")


@dataclass(frozen=True, slots=True)
class TrafficSelector:
    """Addresses ``start..end`` (one family), IP ``protocol`` (0 = any), ports ``port_start..port_end``.

    ``dynamic`` marks strongSwan's ``dynamic`` selector: its addresses are placeholders until
    :meth:`resolve` puts in the IKE address; comparing an unresolved one raises ``LocalError``.
    """

    start: IPAddress
    end: IPAddress
    protocol: int = 0
    port_start: int = 0
    port_end: int = 65535
    dynamic: bool = False

    def __post_init__(self) -> None:
        if self.start.version != self.end.version:
            raise ValueError("traffic selector start and end must be of one address family")
        if self.start > self.end:  # type: ignore[operator]  # same family checked above
            raise ValueError(f"traffic selector start {self.start} is above its end {self.end}")
        if not 0 <= self.protocol <= 255:
            raise ValueError(f"IP protocol {self.protocol} out of range 0..255")
        if not 0 <= self.port_start <= self.port_end <= 65535:
            raise ValueError(f"bad port range {self.port_start}-{self.port_end}")

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def from_network(
        cls, network: IPNetwork | str, protocol: int = 0, port_start: int = 0, port_end: int = 65535
    ) -> TrafficSelector:
        net = ipaddress.ip_network(network, strict=False) if isinstance(network, str) else network
        return cls(net.network_address, net.broadcast_address, protocol, port_start, port_end)

    @classmethod
    def host(
        cls, address: IPAddress, protocol: int = 0, port_start: int = 0, port_end: int = 65535
    ) -> TrafficSelector:
        return cls(address, address, protocol, port_start, port_end)

    @classmethod
    def make_dynamic(cls, protocol: int = 0, port_start: int = 0, port_end: int = 65535) -> TrafficSelector:
        return cls(_V4_ALL[0], _V4_ALL[1], protocol, port_start, port_end, dynamic=True)

    @classmethod
    def from_text(cls, text: str) -> TrafficSelector:
        """Parse swanctl's selector syntax (module docstring); raises ``ConfigError``."""
        match = _TS_RE.match(text)
        if match is None:
            raise ConfigError(f'expected a traffic selector like 10.1.0.0/24[tcp/80], got "{text}"')
        protocol, port_start, port_end = _parse_proto_port(match["pp"], text)
        addr = match["addr"]
        if addr in ("", "dynamic"):
            return cls.make_dynamic(protocol, port_start, port_end)
        start, end = _parse_addresses(addr, text)
        try:
            return cls(start, end, protocol, port_start, port_end)
        except ValueError as exc:
            raise ConfigError(f"{exc} in traffic selector {text!r}") from None

    def resolve(self, address: IPAddress) -> TrafficSelector:
        """A ``dynamic`` selector with ``address`` put in; any other selector unchanged."""
        if not self.dynamic:
            return self
        return replace(self, start=address, end=address, dynamic=False)

    # --- properties ---------------------------------------------------------------------------
    @property
    def version(self) -> int:
        return self.start.version

    @property
    def all_ports(self) -> bool:
        return self.port_start == 0 and self.port_end == 65535

    def is_host(self) -> bool:
        return not self.dynamic and self.start == self.end

    def is_subnet(self) -> bool:
        """True when ``start..end`` is exactly one CIDR prefix (a host is a /32 or /128)."""
        if self.dynamic:
            return False
        first, last = int(self.start), int(self.end)
        size = last - first + 1
        return size & (size - 1) == 0 and first % size == 0

    def as_network(self) -> IPNetwork:
        """The prefix ``start..end`` is; ``LocalError`` if it is not one (see :meth:`is_subnet`)."""
        if not self.is_subnet():
            raise LocalError(f"traffic selector {self} is not a subnet")
        bits = (self.end.max_prefixlen) - (int(self.end) - int(self.start) + 1).bit_length() + 1
        return ipaddress.ip_network((self.start, bits))

    # --- set operations -----------------------------------------------------------------------
    def contains(self, other: TrafficSelector) -> bool:
        """Every packet ``other`` matches, ``self`` matches too."""
        _dynamic_guard(self, other)
        if self.version != other.version:
            return False
        return (
            int(self.start) <= int(other.start)
            and int(other.end) <= int(self.end)
            and self.protocol in (0, other.protocol)
            and self.port_start <= other.port_start
            and other.port_end <= self.port_end
        )

    def overlaps(self, other: TrafficSelector) -> bool:
        return self.intersect(other) is not None

    def intersect(self, other: TrafficSelector) -> TrafficSelector | None:
        """The packets both match, or None (what strongSwan's ``get_subset`` computes)."""
        _dynamic_guard(self, other)
        if self.version != other.version:
            return None
        if self.protocol and other.protocol and self.protocol != other.protocol:
            return None
        start = max(int(self.start), int(other.start))
        end = min(int(self.end), int(other.end))
        port_start = max(self.port_start, other.port_start)
        port_end = min(self.port_end, other.port_end)
        if start > end or port_start > port_end:
            return None
        family = type(self.start)
        return TrafficSelector(
            family(start), family(end), self.protocol or other.protocol, port_start, port_end
        )

    def __str__(self) -> str:
        if self.dynamic:
            addresses = "dynamic"
        elif self.is_subnet():
            addresses = str(self.as_network())
        else:
            addresses = f"{self.start}..{self.end}"
        if not self.protocol:
            return addresses
        proto = _PROTOCOL_NAMES.get(self.protocol, str(self.protocol))
        if self.all_ports:
            return f"{addresses}[{proto}]"
        if self.port_start == self.port_end:
            return f"{addresses}[{proto}/{self.port_start}]"
        return f"{addresses}[{proto}/{self.port_start}-{self.port_end}]"


def _parse_addresses(addr: str, text: str) -> tuple[IPAddress, IPAddress]:
    if addr == "%any":
        return _V4_ALL
    if addr == "%any6":
        return ipaddress.IPv6Address(0), ipaddress.IPv6Address(2**128 - 1)
    try:
        if ".." in addr or "-" in addr:
            first, _, last = addr.partition("..") if ".." in addr else addr.partition("-")
            return ipaddress.ip_address(first.strip()), ipaddress.ip_address(last.strip())
        if "/" in addr:
            net = ipaddress.ip_network(addr, strict=False)
            return net.network_address, net.broadcast_address
        address = ipaddress.ip_address(addr)
    except ValueError:
        raise ConfigError(
            "expected a subnet (10.1.0.0/24), an address, a range (10.1.0.1-10.1.0.9), "
            f'dynamic or %any in traffic selector, got "{text}"'
        ) from None
    return address, address


def _number(text: str, names: dict[str, int], limit: int, what: str, whole: str) -> int:
    text = text.strip().lower()
    if text in names:
        return names[text]
    if text.isdigit() and int(text) <= limit:
        return int(text)
    raise ConfigError(
        f"expected {what} (0..{limit} or one of {', '.join(names)}) "
        f'in traffic selector {whole!r}, got "{text}"'
    )


def _parse_proto_port(spec: str | None, whole: str) -> tuple[int, int, int]:
    if spec is None:
        return 0, 0, 65535
    proto_text, slash, port_text = spec.partition("/")
    protocol = _number(proto_text, PROTOCOLS, 255, "an IP protocol", whole) if proto_text.strip() else 0
    port_text = port_text.strip()
    if not slash or port_text in ("", "%any", "any"):
        return protocol, 0, 65535
    if not protocol:
        raise ConfigError(f"a port needs a protocol (like [tcp/80]) in traffic selector {whole!r}")
    first, dash, last = port_text.partition("-")
    port_start = _number(first, SERVICES, 65535, "a port", whole)
    port_end = _number(last, SERVICES, 65535, "a port", whole) if dash else port_start
    if port_start > port_end:
        raise ConfigError(f"port range {port_text!r} is reversed in traffic selector {whole!r}")
    return protocol, port_start, port_end
