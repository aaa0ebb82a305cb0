"""Security Policy Database (RFC 4301 4.4.1): ordered policies, looked up by a packet's 5-tuple.

A :class:`Policy` is configuration: a local and a remote :class:`TrafficSelector` (addresses,
protocol, ports), an action (``protect``, ``bypass`` or ``discard``), for ``protect`` the child it
belongs to (``key``, e.g. ``(connection, child)``) and a ``priority`` (lower first; equal
priorities keep insertion order). Outbound packets match a policy when their source is in
``local_ts`` and their destination in ``remote_ts``.

Order (:func:`policy_priority`, after strongSwan's kernel policy priorities): the bypass of the
daemon's own IKE traffic first, then ``bypass`` (pass shunts), then ``protect`` and ``discard``
(drop shunts) together, the most specific first: fewer addresses on both sides, then a port, then
a protocol; equal ones keep the order they were added in (configuration order).

Selectors are compiled to integer ranges once. The lookup is a flow cache (a bounded dict keyed
by the 5-tuple) in front of an index by destination: policies whose remote selector is one CIDR
block (a /32 per remote-access client, a subnet per site) sit in a dict per (IP version, prefix
length) keyed by the network, so a miss costs one dict lookup per prefix length in use plus the
few policies found there, whatever the number of policies (50,000 clients: 2 lookups); remote
ranges that are not a CIDR block are scanned. Each bucket is kept in policy order and the first
match of each is compared by (priority, insertion). Per-child state (the outbound SA once
installed, the packets queued while it is negotiated, when Acquire was last emitted) lives in
:class:`ChildState`, shared by all the policies of one key.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from snakeswan.config.traffic import IPAddress, TrafficSelector
from snakeswan.errors import LocalError
from snakeswan.ipsec.packet import FiveTuple

if TYPE_CHECKING:
    from snakeswan.ipsec.sad import SecurityAssociation

__all__ = [
    "ACTIONS",
    "IKE_BYPASS_KEY",
    "ChildState",
    "Policy",
    "PolicyEntry",
    "Range",
    "Spd",
    "compile_selector",
    "ike_bypass_policies",
    "matches",
    "policy_priority",
]

ACTIONS: Final = ("protect", "bypass", "discard")
PROTECT: Final = 0
BYPASS: Final = 1
DISCARD: Final = 2
_CACHE_LIMIT: Final = 4096
_SEQ_SPAN: Final = 1 << 48  # insertions per priority before orders could collide

IKE_BYPASS_KEY: Final = ("%ike", "bypass")
_UDP: Final = 17
_ESP: Final = 50
_AH: Final = 51
_CLASS_IKE, _CLASS_PASS, _CLASS_PROTECT = 0, 1, 2

Range = tuple[int, int, int, int, int, int]
"""A compiled selector: (IP version, first address, last address, protocol or 0, first port, last port)."""


def compile_selector(ts: TrafficSelector) -> Range:
    if ts.dynamic:
        raise LocalError(f"traffic selector {ts} must be resolved to an address first")
    return ts.version, int(ts.start), int(ts.end), ts.protocol, ts.port_start, ts.port_end


def matches(ranges: tuple[Range, ...], version: int, address: int, protocol: int, port: int) -> bool:
    """Whether any of ``ranges`` covers the address, protocol and port (an empty tuple: anything)."""
    if not ranges:
        return True
    for v, first, last, proto, pfirst, plast in ranges:
        if (
            v == version
            and first <= address <= last
            and (not proto or proto == protocol)
            and pfirst <= port <= plast
        ):
            return True
    return False


def _host_bits(ts: TrafficSelector) -> int:
    """log2 of the number of addresses (rounded up): 0 for a host, 8 for a /24."""
    return (int(ts.end) - int(ts.start)).bit_length()


def policy_priority(action: str, local_ts: TrafficSelector, remote_ts: TrafficSelector) -> int:
    """The :attr:`Policy.priority` that puts the policy in its place (module docstring): the class
    (pass shunts before protect and drop policies), then the number of addresses the two selectors
    cover (fewer first), then a port range narrower than all ports, then a protocol."""
    klass = _CLASS_PASS if action == "bypass" else _CLASS_PROTECT
    bits = _host_bits(local_ts) + _host_bits(remote_ts)  # 0..256
    ports = local_ts.all_ports and remote_ts.all_ports
    proto = not (local_ts.protocol or remote_ts.protocol)
    return ((klass << 9 | bits) << 2) + 2 * ports + proto


def ike_bypass_policies(addresses: Iterable[IPAddress], ports: Iterable[int]) -> list[Policy]:
    """``bypass`` policies for the daemon's own IKE and NAT-T traffic (UDP from one of our
    ``addresses`` and ``ports`` to anywhere) and its ESP and AH packets, ahead of everything: should
    such a packet ever be routed into the TUN device, it must not wait for (or be protected by) an
    SA that IKE itself has to negotiate, nor be wrapped in ESP again. IKE of other hosts (a LAN
    host's own VPN through the tunnel) is not matched."""
    out = []
    for address in addresses:
        last = ipaddress.ip_address((1 << address.max_prefixlen) - 1)
        anywhere = TrafficSelector(ipaddress.ip_address(0 if address.version == 4 else "::"), last)
        ours = [TrafficSelector.host(address, _UDP, port, port) for port in ports]
        ours += [TrafficSelector.host(address, proto) for proto in (_ESP, _AH)]
        out += [Policy(ts, anywhere, "bypass", IKE_BYPASS_KEY, _CLASS_IKE) for ts in ours]
    return out


@dataclass(frozen=True, slots=True)
class Policy:
    local_ts: TrafficSelector
    remote_ts: TrafficSelector
    action: str = "protect"
    key: tuple[str, str] | None = None
    priority: int = 0

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise LocalError(f"policy action {self.action!r}: expected one of {', '.join(ACTIONS)}")
        if self.action == "protect" and self.key is None:
            raise LocalError("a protect policy needs the key of its child, e.g. (connection, child)")
        if self.local_ts.version != self.remote_ts.version:
            raise LocalError("a policy's local and remote selectors must be of one address family")


class ChildState:
    """What the data plane keeps per child (policy key): its outbound SA and the packets waiting."""

    __slots__ = ("acquired_at", "key", "queue", "sa")

    def __init__(self, key: tuple[str, str], queue_limit: int) -> None:
        self.key = key
        self.sa: SecurityAssociation | None = None
        self.queue: deque[bytes] = deque(maxlen=queue_limit)
        self.acquired_at: float | None = None  # when Acquire was last emitted; None: not pending


class PolicyEntry:
    """A compiled :class:`Policy`."""

    __slots__ = (
        "action",
        "child",
        "dport_first",
        "dport_last",
        "dst_first",
        "dst_last",
        "order",
        "policy",
        "protocol",
        "sport_first",
        "sport_last",
        "src_first",
        "src_last",
        "version",
    )

    def __init__(self, policy: Policy, child: ChildState | None, seq: int = 0) -> None:
        self.policy = policy
        self.child = child
        self.order = policy.priority * _SEQ_SPAN + seq  # lower first: priority, then insertion
        self.action = ACTIONS.index(policy.action)
        local = compile_selector(policy.local_ts)
        remote = compile_selector(policy.remote_ts)
        self.version = local[0]
        self.src_first, self.src_last = local[1], local[2]
        self.dst_first, self.dst_last = remote[1], remote[2]
        # protocol: both selectors must agree when both name one (0 = any)
        if local[3] and remote[3] and local[3] != remote[3]:
            raise LocalError(f"policy {policy.local_ts} === {policy.remote_ts}: protocols differ")
        self.protocol = local[3] or remote[3]
        self.sport_first, self.sport_last = local[4], local[5]
        self.dport_first, self.dport_last = remote[4], remote[5]

    def match(self, ft: FiveTuple) -> bool:
        version, src, dst, proto, sport, dport = ft
        return (
            version == self.version
            and self.src_first <= src <= self.src_last
            and self.dst_first <= dst <= self.dst_last
            and (not self.protocol or self.protocol == proto)
            and self.sport_first <= sport <= self.sport_last
            and self.dport_first <= dport <= self.dport_last
        )


def _cidr_bits(first: int, last: int) -> int | None:
    """The number of host bits when ``first``..``last`` is one CIDR block, else None."""
    size = last - first + 1
    if size & (size - 1) or first & (size - 1):
        return None
    return size.bit_length() - 1


def _order(entry: PolicyEntry) -> int:
    return entry.order


class Spd:
    """Ordered policies, the per-child state they point at, an index and a flow cache."""

    def __init__(self, queue_limit: int = 64) -> None:
        self.queue_limit = queue_limit
        self.children: dict[tuple[str, str], ChildState] = {}
        self._cache: dict[FiveTuple, PolicyEntry | None] = {}
        self._seq = 0
        self._by_key: dict[tuple[str, str] | None, list[PolicyEntry]] = {}
        # (version, host bits of the remote block) -> remote network >> host bits -> entries in order
        self._blocks: dict[tuple[int, int], dict[int, list[PolicyEntry]]] = {}
        self._bits: dict[int, list[int]] = {4: [], 6: []}  # version -> host bits in use
        self._ranges: dict[int, list[PolicyEntry]] = {4: [], 6: []}  # remote not a CIDR block
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def entries(self) -> list[PolicyEntry]:
        """All policies in lookup order (for listing; the lookup itself uses the index)."""
        return sorted((e for group in self._by_key.values() for e in group), key=_order)

    def child(self, key: tuple[str, str]) -> ChildState:
        """The state of child ``key``, created when first needed."""
        state = self.children.get(key)
        if state is None:
            state = self.children[key] = ChildState(key, self.queue_limit)
        return state

    def add(self, policy: Policy) -> PolicyEntry:
        self._seq += 1
        entry = PolicyEntry(policy, self.child(policy.key) if policy.key is not None else None, self._seq)
        self._by_key.setdefault(policy.key, []).append(entry)
        bisect.insort(self._bucket(entry), entry, key=_order)
        self._count += 1
        self._cache.clear()
        return entry

    def _bucket(self, entry: PolicyEntry) -> list[PolicyEntry]:
        """The list ``entry`` belongs in (created empty when new)."""
        version = entry.version
        bits = _cidr_bits(entry.dst_first, entry.dst_last)
        if bits is None:
            return self._ranges[version]
        table = self._blocks.get((version, bits))
        if table is None:
            table = self._blocks[version, bits] = {}
            bisect.insort(self._bits[version], bits)
        network = entry.dst_first >> bits
        bucket = table.get(network)
        if bucket is None:
            bucket = table[network] = []
        return bucket

    def remove(self, key: tuple[str, str]) -> int:
        """Remove the policies of child ``key``; returns how many. Its queued packets are dropped."""
        gone = self._by_key.pop(key, [])
        for entry in gone:
            bucket = self._bucket(entry)
            bucket.remove(entry)
            bits = _cidr_bits(entry.dst_first, entry.dst_last)
            if not bucket and bits is not None:
                table = self._blocks[entry.version, bits]
                del table[entry.dst_first >> bits]
                if not table:
                    del self._blocks[entry.version, bits]
                    self._bits[entry.version].remove(bits)
        self._count -= len(gone)
        self._cache.clear()
        state = self.children.get(key)
        if state is not None:
            state.queue.clear()
            state.acquired_at = None
        return len(gone)

    def lookup(self, ft: FiveTuple) -> PolicyEntry | None:
        """The first policy matching the 5-tuple, or None."""
        cache = self._cache
        try:
            return cache[ft]
        except KeyError:
            pass
        found = self._search(ft)
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[ft] = found
        return found

    def _search(self, ft: FiveTuple) -> PolicyEntry | None:
        version, dst = ft[0], ft[2]
        best: PolicyEntry | None = None
        blocks = self._blocks
        candidates = [blocks[version, bits].get(dst >> bits) for bits in self._bits.get(version, ())]
        candidates.append(self._ranges.get(version))
        for bucket in candidates:
            if not bucket:
                continue
            for entry in bucket:
                if best is not None and entry.order >= best.order:
                    break  # in order: nothing later in this bucket can come first
                if entry.match(ft):
                    best = entry
                    break
        return best
