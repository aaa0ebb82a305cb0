"""Quick Mode proxy IDs (IDci/IDcr): traffic selectors <-> ID payload fields, matching, narrowing.

An IKEv1 phase 2 identity (RFC 2407 4.6.2) is ``(id_type, protocol, port, data)``: one address
(``ID_IPV4_ADDR``), a subnet (``ID_IPV4_ADDR_SUBNET``: address and mask) or a range
(``ID_IPV4_ADDR_RANGE``: first and last address), IPv6 likewise; an IP protocol (0 any) and ONE
port (0 any). A selector with a port range that is neither one port nor all ports cannot be sent.

Responder policy follows strongSwan (``quick_mode.c`` ``select_ts`` and ``peer_cfg.c``
``select_child_cfg``): the child whose selectors match the proposed ones best is chosen, and the
selectors used are the configured ones narrowed to the proposal (their intersection); whether a
narrowed answer (one that differs from the proposal) is acceptable is for the caller to decide -
:func:`ts_acceptable` says whether the proposal fits inside our configuration unchanged.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from snakeswan.config.model import ChildConfig, IPAddress, TrafficSelector
from snakeswan.errors import LocalError, PeerError
from snakeswan.wire.enums import IdType, NotifyType

IdFields = tuple[int, int, int, bytes]
"""``(id_type, protocol, port, data)`` of an ID payload."""

_SUBNET = {4: IdType.IPV4_ADDR_SUBNET, 6: IdType.IPV6_ADDR_SUBNET}
_RANGE = {4: IdType.IPV4_ADDR_RANGE, 6: IdType.IPV6_ADDR_RANGE}
_ADDR = {4: IdType.IPV4_ADDR, 6: IdType.IPV6_ADDR}
_KINDS: dict[int, tuple[int, str]] = {  # ID type -> (address length, "addr" | "subnet" | "range")
    IdType.IPV4_ADDR: (4, "addr"),
    IdType.IPV4_ADDR_SUBNET: (4, "subnet"),
    IdType.IPV4_ADDR_RANGE: (4, "range"),
    IdType.IPV6_ADDR: (16, "addr"),
    IdType.IPV6_ADDR_SUBNET: (16, "subnet"),
    IdType.IPV6_ADDR_RANGE: (16, "range"),
}

# How well a proposed selector fits a configured one (after strongSwan's get_ts_match()).
MATCH_EXACT = 3
MATCH_SUBSET = 2
MATCH_NARROWED = 1


def ts_to_id(ts: TrafficSelector) -> IdFields:
    """The ID payload fields for ``ts``: an address if it is one host, else a subnet, else a range.

    Raises ``LocalError`` for an unresolved ``dynamic`` selector or a port range IKEv1 cannot carry.
    """
    if ts.dynamic:
        raise LocalError("a dynamic traffic selector must be resolved to an address before it is sent")
    if ts.all_ports:
        port = 0
    elif ts.port_start == ts.port_end:
        port = ts.port_start
    else:
        raise LocalError(f"IKEv1 IDs carry one port or all ports, not {ts.port_start}-{ts.port_end} ({ts})")
    if ts.is_host():
        return _ADDR[ts.version], ts.protocol, port, ts.start.packed
    if ts.is_subnet():
        network = ts.as_network()
        return _SUBNET[ts.version], ts.protocol, port, network.network_address.packed + network.netmask.packed
    return _RANGE[ts.version], ts.protocol, port, ts.start.packed + ts.end.packed


def _invalid(what: str) -> PeerError:
    return PeerError(NotifyType.INVALID_ID_INFORMATION, what)


def id_to_ts(id_type: int, protocol: int, port: int, data: bytes) -> TrafficSelector:
    """The selector a received phase 2 ID stands for.

    Raises ``PeerError(INVALID_ID_INFORMATION)`` for a non-address ID type, a wrong data length, a
    non-contiguous mask, a reversed range, or a port without a protocol. Host bits under a subnet
    mask are cleared, as strongSwan does.
    """
    kind = _KINDS.get(id_type)
    if kind is None:
        raise _invalid(f"ID type {id_type} cannot be a traffic selector")
    size, shape = kind
    expected = size if shape == "addr" else 2 * size
    if len(data) != expected:
        raise _invalid(f"ID type {id_type} needs {expected} bytes of data, got {len(data)}")
    if not 0 <= protocol <= 255 or not 0 <= port <= 65535:
        raise _invalid(f"protocol {protocol} / port {port} out of range")
    if port and not protocol:
        raise _invalid(f"port {port} given without an IP protocol")
    first = ipaddress.ip_address(data[:size])
    if shape == "addr":
        start, end = first, first
    elif shape == "subnet":
        start, end = _subnet(first, int.from_bytes(data[size:], "big"), size * 8)
    else:
        start, end = first, ipaddress.ip_address(data[size:])
        if int(start) > int(end):
            raise _invalid(f"address range {start}-{end} is reversed")
    port_start, port_end = (port, port) if port else (0, 65535)
    return TrafficSelector(start, end, protocol, port_start, port_end)


def _subnet(address: IPAddress, mask: int, bits: int) -> tuple[IPAddress, IPAddress]:
    host_bits = ~mask & ((1 << bits) - 1)
    if host_bits & (host_bits + 1):
        raise _invalid(
            f"subnet mask {ipaddress.ip_address(mask.to_bytes(bits // 8, 'big'))} is not contiguous"
        )
    family = type(address)
    network = int(address) & mask
    return family(network), family(network | host_bits)


def ts_acceptable(ours: Sequence[TrafficSelector], theirs: TrafficSelector) -> bool:
    """True when ``theirs`` lies inside one of ``ours`` (resolved): acceptable without narrowing."""
    return any(mine.contains(theirs) for mine in ours)


def narrow(ours: Sequence[TrafficSelector], theirs: TrafficSelector) -> TrafficSelector | None:
    """The first of ``ours`` narrowed to ``theirs`` (their intersection), None if none overlaps."""
    for mine in ours:
        subset = mine.intersect(theirs)
        if subset is not None:
            return subset
    return None


def match_quality(ours: Sequence[TrafficSelector], theirs: TrafficSelector) -> int:
    """``MATCH_EXACT``, ``MATCH_SUBSET`` (theirs inside ours), ``MATCH_NARROWED`` (overlap) or 0."""
    if theirs in ours:
        return MATCH_EXACT
    if ts_acceptable(ours, theirs):
        return MATCH_SUBSET
    return MATCH_NARROWED if narrow(ours, theirs) is not None else 0


def resolve(selectors: Sequence[TrafficSelector], address: IPAddress) -> tuple[TrafficSelector, ...]:
    """``selectors`` with ``dynamic`` replaced by ``address`` (the IKE address of that side)."""
    return tuple(ts.resolve(address) for ts in selectors)


def selector_pairs(
    local: Sequence[TrafficSelector], remote: Sequence[TrafficSelector]
) -> list[tuple[TrafficSelector, TrafficSelector]]:
    """The (local, remote) pairs a child negotiates, one Quick Mode each (IKEv1 IDs carry one
    selector a side; strongSwan does the same): every local x remote of one address family (a
    ``dynamic`` one fits either), in configuration order."""
    pairs = [
        (lo, re) for lo in local for re in remote if lo.dynamic or re.dynamic or lo.version == re.version
    ]
    return pairs or [(local[0], remote[0])]


def resolved_pairs(
    child: ChildConfig, local_addr: IPAddress, remote_addr: IPAddress
) -> list[tuple[TrafficSelector, TrafficSelector]]:
    """:func:`selector_pairs` of ``child`` with ``dynamic`` replaced by the addresses given."""
    return [
        (lo.resolve(local_addr), re.resolve(remote_addr))
        for lo, re in selector_pairs(child.local_ts, child.remote_ts)
    ]


def pair_index(
    pairs: Sequence[tuple[TrafficSelector, TrafficSelector]], local: TrafficSelector, remote: TrafficSelector
) -> int:
    """The first of ``pairs`` that overlaps (``local``, ``remote``) on both sides (0 if none)."""
    for i, (lo, re) in enumerate(pairs):
        if lo.intersect(local) is not None and re.intersect(remote) is not None:
            return i
    return 0


def initiator_selectors(
    child: ChildConfig, local_addr: IPAddress, remote_addr: IPAddress
) -> tuple[TrafficSelector, TrafficSelector]:
    """(IDci, IDcr) selectors an initiator proposes for ``child``: its first local and remote ones."""
    return child.local_ts[0].resolve(local_addr), child.remote_ts[0].resolve(remote_addr)


@dataclass(frozen=True, slots=True)
class ChildMatch:
    """A responder's choice: the child, and the local/remote selectors narrowed to the proposal."""

    child: ChildConfig
    local_ts: TrafficSelector
    remote_ts: TrafficSelector
    narrowed: bool


def select_child(
    children: Sequence[ChildConfig],
    their_local: TrafficSelector,
    their_remote: TrafficSelector,
    local_addr: IPAddress,
    remote_addr: IPAddress,
) -> ChildMatch | None:
    """The child a Quick Mode responder uses, or None (answer NO_PROPOSAL_CHOSEN / INVALID_ID_INFORMATION).

    ``their_local`` is the initiator's IDcr (our side), ``their_remote`` its IDci (its side); when
    the initiator sent no IDs, pass the host selectors of the IKE addresses. The best scoring child
    (exact > subset > overlap, both sides counted) wins; the first configured on a tie.
    """
    best: ChildMatch | None = None
    best_score = 0
    for child in children:
        ours_local = resolve(child.local_ts, local_addr)
        ours_remote = resolve(child.remote_ts, remote_addr)
        local_quality = match_quality(ours_local, their_local)
        remote_quality = match_quality(ours_remote, their_remote)
        if not local_quality or not remote_quality or local_quality + remote_quality <= best_score:
            continue
        local_ts = narrow(ours_local, their_local)
        remote_ts = narrow(ours_remote, their_remote)
        assert local_ts is not None and remote_ts is not None
        narrowed = local_ts != their_local or remote_ts != their_remote
        best, best_score = ChildMatch(child, local_ts, remote_ts, narrowed), local_quality + remote_quality
    return best
