"""Security Association Database: the SAs of the data plane, their counters and limits.

:class:`SaParams` is what the daemon fills in from a negotiated child SA (one per direction; see
the ``from_child``-style mapping in the package docstring). :class:`SecurityAssociation` is the
live state: preconstructed ESP/AH crypto, the sequence number (outbound) or replay window
(inbound), byte/packet/drop counters and the soft/hard limits. :class:`Sad` indexes them: inbound
by (SPI, protocol), outbound by SPI, and reports limits reached as
:class:`~snakeswan.ipsec.events.Expired`. Time limits sit in a heap (DESIGN.md: nothing walks all
SAs on a hot path): an entry is (deadline, insertion number, SA), pushed when an SA starts and when
its soft limit fired; entries made stale by a removal or a new deadline are skipped when they come
to the top.

Limits: soft/hard seconds after the SA started, soft/hard bytes of inner packets, and the 32-bit
sequence number space (no ESN): soft at :data:`SEQ_SOFT`, hard once 2^32 - 1 was sent.
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass, field
from typing import Final

from snakeswan.config.traffic import TrafficSelector
from snakeswan.errors import LocalError
from snakeswan.ipsec.ah import AhCodec
from snakeswan.ipsec.esp import EspCodec
from snakeswan.ipsec.events import Expired
from snakeswan.ipsec.packet import address_bytes
from snakeswan.ipsec.replay import DEFAULT_WINDOW, ReplayWindow
from snakeswan.ipsec.spd import Range, compile_selector

__all__ = ["SEQ_MAX", "SEQ_SOFT", "PairCounters", "SaParams", "Sad", "SecurityAssociation"]

SEQ_MAX: Final = 0xFFFFFFFF
SEQ_SOFT: Final = 0xFF000000
_NEVER: Final = math.inf
IPPROTO_ESP: Final = 50
IPPROTO_AH: Final = 51


@dataclass(frozen=True, slots=True)
class SaParams:
    """One direction of a negotiated IPsec SA, everything the data plane needs.

    ``protocol`` 50 (ESP: ``transform_id`` an ``EspTransformId``) or 51 (AH: an ``AhTransformId``);
    ``key_length`` in bits (None: the transform's default); ``auth`` an ``AuthAlgorithm`` (None for
    AES-GCM, optional for AH). ``encryption_key`` includes the 4-byte GCM salt at its end.
    ``local``/``remote`` are the outer (IKE) addresses and ports of this end and the peer, the same
    for both directions of a child; ``encap`` UDP encapsulation (RFC 3948) between those ports.
    ``local_ts``/``remote_ts``: the child's selectors from our side (empty: anything). ``nat_oa``:
    for transport mode behind a NAT, the (source, destination) addresses the peer's TCP/UDP
    checksums were computed with (NAT-OA); None leaves checksums alone. Limits are None when unset.
    """

    spi: int
    protocol: int
    transform_id: int
    key_length: int | None
    auth: int | None
    encryption_key: bytes = field(repr=False)
    integrity_key: bytes = field(repr=False)
    local: tuple[str, int]
    remote: tuple[str, int]
    mode: str = "tunnel"
    encap: bool = False
    local_ts: tuple[TrafficSelector, ...] = ()
    remote_ts: tuple[TrafficSelector, ...] = ()
    soft_seconds: float | None = None
    hard_seconds: float | None = None
    soft_bytes: int | None = None
    hard_bytes: int | None = None
    replay_window: int = DEFAULT_WINDOW
    nat_oa: tuple[str, str] | None = None
    interface: str | None = None  # a route-based child's own TUN device (inbound: delivered there)

    def __post_init__(self) -> None:
        if self.protocol not in (IPPROTO_ESP, IPPROTO_AH):
            raise LocalError(f"IPsec protocol {self.protocol}: expected 50 (ESP) or 51 (AH)")
        if self.mode not in ("tunnel", "transport"):
            raise LocalError(f"IPsec mode {self.mode!r}: expected tunnel or transport")
        if not 0 < self.spi <= SEQ_MAX or self.spi < 256:
            raise LocalError(f"SPI {self.spi:#x} is reserved or out of range (RFC 4303 2.1)")
        if self.encap and self.protocol == IPPROTO_AH:
            raise LocalError("AH cannot be UDP-encapsulated (RFC 3948 covers ESP only)")


class SecurityAssociation:
    """The live state of one SA in one direction."""

    __slots__ = (
        "ah",
        "bundle",
        "byte_check",
        "bytes",
        "direction",
        "drops",
        "encap",
        "esp",
        "fixup",
        "hard_at",
        "interface",
        "local_ip",
        "local_packed",
        "local_port",
        "local_ranges",
        "moved",
        "owner",
        "packets",
        "pair_in",
        "params",
        "policy_key",
        "protocol",
        "remote_ip",
        "remote_packed",
        "remote_port",
        "remote_ranges",
        "replay",
        "seq",
        "soft_at",
        "soft_fired",
        "spi",
        "started",
        "transport",
    )

    def __init__(self, params: SaParams, direction: str, policy_key: tuple[str, str]) -> None:
        self.params = params
        self.spi = params.spi
        self.protocol = params.protocol
        self.direction = direction
        self.policy_key = policy_key
        self.esp: EspCodec | None = None
        self.ah: AhCodec | None = None
        # an AH+ESP bundle, same direction: the ESP SA's AH SA (out: applied after ESP; in: the one
        # that must have carried it) and the AH SA's ESP SA (in: the SPI it must carry)
        self.bundle: SecurityAssociation | None = None
        if params.protocol == IPPROTO_ESP:
            self.esp = EspCodec(
                params.spi,
                params.transform_id,
                params.key_length,
                params.auth,
                params.encryption_key,
                params.integrity_key,
            )
        else:
            self.ah = AhCodec(params.spi, params.transform_id, params.auth, params.integrity_key)
        self.transport = params.mode == "transport"
        self.interface = params.interface
        self.encap = params.encap
        self.local_ip, self.local_port = params.local
        self.remote_ip, self.remote_port = params.remote
        self.local_packed = address_bytes(self.local_ip)
        self.remote_packed = address_bytes(self.remote_ip)
        self.local_ranges: tuple[Range, ...] = tuple(compile_selector(t) for t in params.local_ts)
        self.remote_ranges: tuple[Range, ...] = tuple(compile_selector(t) for t in params.remote_ts)
        # transport mode NAT-T: (old source|destination, new source|destination) for checksums
        self.fixup: tuple[bytes, bytes] | None = None
        if params.nat_oa is not None and self.transport:
            old = address_bytes(params.nat_oa[0]) + address_bytes(params.nat_oa[1])
            self.fixup = (old, self.remote_packed + self.local_packed)
        self.replay = ReplayWindow(params.replay_window)
        self.seq = 0  # last sequence number sent
        self.bytes = 0
        self.packets = 0
        self.moved = False  # counted a packet since the processor's last take_moved()
        self.owner = 0  # the data-plane worker that processes its packets (Processor.install)
        self.pair_in = params.spi  # the inbound SPI of the pair it belongs to (set by install)
        self.drops: dict[str, int] = {}
        self.started = False
        self.soft_at = self.hard_at = _NEVER
        self.soft_fired = False
        self.byte_check = self._byte_check()

    def start(self, now: float) -> None:
        """Start the lifetime clock (on install, or at the first ``now`` the processor sees)."""
        p = self.params
        self.started = True
        self.soft_at = now + p.soft_seconds if p.soft_seconds is not None else _NEVER
        self.hard_at = now + p.hard_seconds if p.hard_seconds is not None else _NEVER

    def _byte_check(self) -> float:
        """The byte count at which a limit must be looked at (per-packet check is one compare)."""
        p = self.params
        limits = [p.hard_bytes] if p.hard_bytes is not None else []
        if p.soft_bytes is not None and not self.soft_fired:
            limits.append(p.soft_bytes)
        return min(limits) if limits else _NEVER

    def next_deadline(self) -> float:
        return self.hard_at if self.soft_fired else min(self.soft_at, self.hard_at)

    def drop(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1

    def counters(self) -> dict[str, int]:
        result = {"bytes": self.bytes, "packets": self.packets}
        if self.direction == "out":
            result["seq"] = self.seq
        else:
            result["replay_top"] = self.replay.top
        result.update({f"drop_{reason}": n for reason, n in self.drops.items()})
        return result

    def __repr__(self) -> str:
        codec = self.esp or self.ah
        return f"SecurityAssociation({self.direction} {codec!r} {self.policy_key})"


@dataclass(frozen=True, slots=True)
class PairCounters:
    """What an SA pair counted, as the data-plane worker that owns it reports it to the daemon's
    copy of the pair (``Processor.pair_counters`` / ``Processor.absorb``)."""

    seq_out: int
    bytes_out: int
    packets_out: int
    replay_top: int
    replay_bitmap: int
    bytes_in: int
    packets_in: int
    drops_in: tuple[tuple[str, int], ...] = ()
    drops_out: tuple[tuple[str, int], ...] = ()


class Sad:
    """SAs by direction; limits turned into :class:`Expired` events (hard: the SA is removed)."""

    def __init__(self) -> None:
        self.inbound: dict[tuple[int, int], SecurityAssociation] = {}
        self.outbound: dict[int, SecurityAssociation] = {}
        self._heap: list[tuple[float, int, SecurityAssociation]] = []
        self._pushes = itertools.count()

    def add(self, sa: SecurityAssociation) -> None:
        if sa.direction == "in":
            if (sa.spi, sa.protocol) in self.inbound:
                raise LocalError(f"inbound SPI {sa.spi:#010x} is installed already")
            self.inbound[sa.spi, sa.protocol] = sa
        else:
            if sa.spi in self.outbound:
                raise LocalError(f"outbound SPI {sa.spi:#010x} is installed already")
            self.outbound[sa.spi] = sa
        self.schedule(sa)

    def schedule(self, sa: SecurityAssociation) -> None:
        """Put ``sa``'s next time limit in the heap (after :meth:`SecurityAssociation.start`)."""
        deadline = sa.next_deadline()
        if deadline != _NEVER:
            heapq.heappush(self._heap, (deadline, next(self._pushes), sa))

    def discard(self, sa: SecurityAssociation) -> None:
        if sa.direction == "in":
            if self.inbound.get((sa.spi, sa.protocol)) is sa:
                del self.inbound[sa.spi, sa.protocol]
        elif self.outbound.get(sa.spi) is sa:
            del self.outbound[sa.spi]

    def installed(self, sa: SecurityAssociation) -> bool:
        if sa.direction == "in":
            return self.inbound.get((sa.spi, sa.protocol)) is sa
        return self.outbound.get(sa.spi) is sa

    def all(self) -> list[SecurityAssociation]:
        return [*self.inbound.values(), *self.outbound.values()]

    def find(self, spi: int) -> SecurityAssociation | None:
        """An SA by SPI: inbound (ESP, then AH) first, then outbound."""
        return (
            self.inbound.get((spi, IPPROTO_ESP))
            or self.inbound.get((spi, IPPROTO_AH))
            or (self.outbound.get(spi))
        )

    def _live_top(self) -> tuple[float, int, SecurityAssociation] | None:
        heap = self._heap
        while heap:
            deadline, _n, sa = top = heap[0]
            if deadline == sa.next_deadline() and self.installed(sa):
                return top
            heapq.heappop(heap)  # removed, or its deadline moved (and was pushed again)
        return None

    def deadline(self) -> float | None:
        top = self._live_top()
        return None if top is None else top[0]

    def expire_time(self, now: float) -> list[Expired]:
        """Time limits reached by ``now``."""
        events = []
        while (top := self._live_top()) is not None and top[0] <= now:
            heapq.heappop(self._heap)
            sa = top[2]
            if sa.hard_at <= now:
                events.append(self._hard(sa, "time"))
            elif sa.soft_at <= now and not sa.soft_fired:
                events.append(self._soft(sa, "time"))
        return events

    def check_volume(self, sa: SecurityAssociation) -> Expired | None:
        """Byte and sequence number limits of ``sa`` after a packet (call when ``sa.bytes >=
        sa.byte_check`` or the sequence number reached :data:`SEQ_SOFT`)."""
        p = sa.params
        if (p.hard_bytes is not None and sa.bytes >= p.hard_bytes) or sa.seq >= SEQ_MAX:
            return self._hard(sa, "bytes" if sa.seq < SEQ_MAX else "seq")
        if sa.soft_fired:
            return None
        if p.soft_bytes is not None and sa.bytes >= p.soft_bytes:
            return self._soft(sa, "bytes")
        if sa.seq >= SEQ_SOFT:
            return self._soft(sa, "seq")
        return None

    def _soft(self, sa: SecurityAssociation, reason: str) -> Expired:
        sa.soft_fired = True
        sa.byte_check = sa._byte_check()
        self.schedule(sa)  # now the hard limit
        return Expired(sa.spi, "soft", sa.direction, sa.policy_key, reason)

    def _hard(self, sa: SecurityAssociation, reason: str) -> Expired:
        self.discard(sa)
        return Expired(sa.spi, "hard", sa.direction, sa.policy_key, reason)
