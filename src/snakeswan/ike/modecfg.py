"""Mode Config attributes (draft-dukes-ike-mode-cfg-02, Cisco Unity): what a client asks for,
what a gateway answers from a pool lease, and what a client takes from the answer.

Pure functions over :class:`~snakeswan.wire.attributes.Attribute` lists; the Transaction exchange
carries them and :mod:`snakeswan.ike.remote_access` decides when.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from snakeswan.config.model import Pool
from snakeswan.config.traffic import IPAddress, IPNetwork
from snakeswan.errors import PeerError
from snakeswan.wire.attributes import Attribute
from snakeswan.wire.enums import ConfigAttr, NotifyType

A = ConfigAttr
_ADDRESS = {4: A.INTERNAL_IP4_ADDRESS, 6: A.INTERNAL_IP6_ADDRESS}
_NETMASK = {4: A.INTERNAL_IP4_NETMASK, 6: A.INTERNAL_IP6_NETMASK}
_DNS = {4: A.INTERNAL_IP4_DNS, 6: A.INTERNAL_IP6_DNS}
_NBNS = {4: A.INTERNAL_IP4_NBNS, 6: A.INTERNAL_IP6_NBNS}
# what a gateway fills in from a pool (the rest of a request is answered with nothing)
GATEWAY_ANSWERS = frozenset(
    {*_ADDRESS.values(), *_NETMASK.values(), *_DNS.values(), *_NBNS.values(), A.INTERNAL_IP4_SUBNET,
     A.UNITY_SPLIT_INCLUDE, A.UNITY_BANNER, A.UNITY_DEF_DOMAIN, A.UNITY_PFS, A.SUPPORTED_ATTRIBUTES}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ModeCfg:
    """What a client was given (or a gateway gave)."""

    addresses: tuple[IPAddress, ...] = ()
    dns: tuple[IPAddress, ...] = ()
    nbns: tuple[IPAddress, ...] = ()
    split_include: tuple[IPNetwork, ...] = ()
    banner: str | None = None
    default_domain: str | None = None
    unknown: tuple[int, ...] = field(default=())  # attribute types we did not understand

    def describe(self) -> dict[str, object]:
        return {
            "vips": [str(a) for a in self.addresses],
            "dns": [str(a) for a in self.dns],
            "nbns": [str(a) for a in self.nbns],
            "split_include": [str(n) for n in self.split_include],
            "banner": self.banner,
            "default_domain": self.default_domain,
        }


def client_request(vips: tuple[IPAddress, ...]) -> tuple[Attribute, ...]:
    """A client's REQUEST: an address of each family in ``vips`` (``0.0.0.0``/``::``: any, else
    that one), its netmask, DNS and NBNS servers, and the Cisco Unity split networks, banner and
    domain (a gateway answers what it has)."""
    attrs: list[Attribute] = []
    versions = []
    for vip in vips:
        versions.append(vip.version)
        value = b"" if vip.is_unspecified else vip.packed + (b"\x80" if vip.version == 6 else b"")
        attrs.append(Attribute.variable(_ADDRESS[vip.version], value))
    for version in dict.fromkeys(versions):
        attrs += [Attribute.variable(_NETMASK[version], b""), Attribute.variable(_DNS[version], b"")]
        attrs.append(Attribute.variable(_NBNS[version], b"")) if version == 4 else None
    attrs += [Attribute.variable(t, b"") for t in (A.UNITY_SPLIT_INCLUDE, A.UNITY_BANNER, A.UNITY_DEF_DOMAIN)]
    return tuple(attrs)


def requested_addresses(attrs: tuple[Attribute, ...]) -> list[tuple[int, IPAddress | None]]:
    """The (IP version, specific address or None) of each address a request asks for."""
    out: list[tuple[int, IPAddress | None]] = []
    for a in attrs:
        for version, kind in _ADDRESS.items():
            if a.type == kind:
                size = 4 if version == 4 else 16
                specific = ipaddress.ip_address(a.value[:size]) if len(a.value) >= size else None
                out.append((version, None if specific is None or specific.is_unspecified else specific))
    return out


def _split_entry(net: IPNetwork) -> bytes:
    """UNITY_SPLIT_INCLUDE entry: address, netmask, then 6 bytes of zero (protocol and ports)."""
    return net.network_address.packed + net.netmask.packed + bytes(6)


def gateway_attributes(
    wanted: set[int] | None, addresses: list[IPAddress], pool: Pool | None, *, pfs: bool = False
) -> tuple[Attribute, ...]:
    """What a gateway sends: the leased ``addresses`` and, from the ``pool``, the attributes in
    ``wanted`` (None: all it has, for a push). A client that asks for UNITY_PFS is told whether
    its Quick Modes must do PFS (``pfs``): Cisco clients (vpnc's ``pfs = server``, the default)
    send no KE unless told 1."""

    def want(t: int) -> bool:
        return wanted is None or t in wanted

    attrs: list[Attribute] = []
    for address in addresses:
        v = address.version
        attrs.append(Attribute.variable(_ADDRESS[v], address.packed + (b"\x80" if v == 6 else b"")))
        if v == 4 and want(_NETMASK[v]):
            attrs.append(Attribute.variable(_NETMASK[v], b"\xff\xff\xff\xff"))
    if wanted is not None and A.UNITY_PFS in wanted:
        attrs.append(Attribute.basic(A.UNITY_PFS, int(pfs)))
    if pool is None:
        return tuple(attrs)
    for server in pool.dns:
        if want(_DNS[server.version]):
            attrs.append(Attribute.variable(_DNS[server.version], server.packed))
    for server in pool.nbns:
        if server.version == 4 and want(A.INTERNAL_IP4_NBNS):
            attrs.append(Attribute.variable(A.INTERNAL_IP4_NBNS, server.packed))
    v4_split = [n for n in pool.split_include if n.version == 4]
    if v4_split and want(A.UNITY_SPLIT_INCLUDE):
        attrs.append(Attribute.variable(A.UNITY_SPLIT_INCLUDE, b"".join(map(_split_entry, v4_split))))
    if v4_split and wanted is not None and A.INTERNAL_IP4_SUBNET in wanted:
        for net in v4_split:
            attrs.append(
                Attribute.variable(A.INTERNAL_IP4_SUBNET, net.network_address.packed + net.netmask.packed)
            )
    if pool.banner and want(A.UNITY_BANNER):
        attrs.append(Attribute.variable(A.UNITY_BANNER, pool.banner.encode()))
    if pool.default_domain and want(A.UNITY_DEF_DOMAIN):
        attrs.append(Attribute.variable(A.UNITY_DEF_DOMAIN, pool.default_domain.encode()))
    return tuple(attrs)


def _address(a: Attribute, version: int) -> IPAddress:
    size = 4 if version == 4 else 16
    if len(a.value) not in ((4,) if version == 4 else (16, 17)):
        raise PeerError(
            NotifyType.ATTRIBUTES_NOT_SUPPORTED, f"Mode Config attribute {a.type} of {len(a.value)} bytes"
        )
    return ipaddress.ip_address(a.value[:size])


def client_result(attrs: tuple[Attribute, ...]) -> ModeCfg:
    """What a client takes from a REPLY or SET; an address of the wrong size is a PeerError."""
    addresses: list[IPAddress] = []
    dns: list[IPAddress] = []
    nbns: list[IPAddress] = []
    split: list[IPNetwork] = []
    banner = domain = None
    unknown: list[int] = []
    for a in attrs:
        if a.type in (A.INTERNAL_IP4_ADDRESS, A.INTERNAL_IP6_ADDRESS) and a.value:
            addresses.append(_address(a, 4 if a.type == A.INTERNAL_IP4_ADDRESS else 6))
        elif a.type in (A.INTERNAL_IP4_DNS, A.INTERNAL_IP6_DNS) and a.value:
            dns.append(_address(a, 4 if a.type == A.INTERNAL_IP4_DNS else 6))
        elif a.type == A.INTERNAL_IP4_NBNS and a.value:
            nbns.append(_address(a, 4))
        elif a.type == A.UNITY_SPLIT_INCLUDE:
            for i in range(0, len(a.value) - 13, 14):
                net, mask = a.value[i : i + 4], a.value[i + 4 : i + 8]
                split.append(
                    ipaddress.ip_network(f"{ipaddress.ip_address(net)}/{ipaddress.ip_address(mask)}")
                )
        elif a.type == A.INTERNAL_IP4_SUBNET and len(a.value) == 8:
            split.append(
                ipaddress.ip_network(
                    f"{ipaddress.ip_address(a.value[:4])}/{ipaddress.ip_address(a.value[4:])}"
                )
            )
        elif a.type == A.UNITY_BANNER and a.value:
            banner = a.value.decode("utf-8", "replace")
        elif a.type == A.UNITY_DEF_DOMAIN and a.value:
            domain = a.value.decode("utf-8", "replace")
        elif a.type not in GATEWAY_ANSWERS:
            unknown.append(a.type)
    return ModeCfg(
        tuple(addresses), tuple(dns), tuple(nbns), tuple(dict.fromkeys(split)), banner, domain, tuple(unknown)
    )


def ack_attributes(attrs: tuple[Attribute, ...]) -> tuple[Attribute, ...]:
    """A client's ACK of a SET: the types it accepted, without values (draft section 3.3)."""
    return tuple(Attribute.variable(a.type, b"") for a in attrs if a.type in GATEWAY_ANSWERS)
