"""Overload shedding before parsing (issue 15): which received IKE datagrams are worth parsing.

The daemon drains its sockets in batches and hands each batch here before anything is decoded.
Every datagram is classified from its first 28 bytes (the ISAKMP header) and where it came from:

- **known**: its cookies belong to an SA we hold (an MM3, a Quick Mode, a DPD, a responder's MM2
  to our own MM1): always passed on, first, whatever the load;
- **new**: a responder cookie of zero (an MM1/AM1, or its retransmission): passed on under a
  budget, a token bucket (:attr:`Shedder.rate` a second, :attr:`Shedder.burst` at once) shared by
  every source, lowered to :attr:`Shedder.rate_under_load` while the socket has a backlog (the
  daemon read as much as it reads at once and more was queued, within the last
  :attr:`Shedder.hold` seconds). Answering an MM1 costs a parse, a proposal choice and an MM2
  (~0.2 ms), draining one ~1.5 us: a gateway that spends its time on a flood's MM1s leaves the
  kernel to drop the rest at random, its peers' MM3s and Quick Modes with them. When a batch
  holds more new datagrams than there are tokens, the sources that sent the fewest new
  datagrams lately go first (counted per /24 for IPv4, per /64 for IPv6, over the last second
  or two), and the next quietest few wait a moment for the next tokens: a flood of spoofed MM1s
  from a few prefixes cannot starve a peer from another prefix of its turn, however fast it
  sends. The rest are dropped and counted;
- **stray**: cookies we do not know (nothing to do with them: the engine would drop them too) and
  datagrams too short for a header: dropped and counted without being parsed.

A dropped datagram costs a few dictionary lookups instead of a decode, a cookie and a state; what
was dropped is counted by reason in :attr:`Shedder.dropped` (the daemon logs it rate-limited and
``snakeswan`` metrics show it).

Pure logic (no clock, no sockets): ``now`` is passed in; the caller gives the source prefix as
bytes, cut from the packed address it already has (:func:`prefix_of`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from snakeswan.config.model import SheddingBudget

ZERO = bytes(8)
HEADER = 28
T = TypeVar("T")

OVER_BUDGET = "new IKE SA over budget (overload)"
UNKNOWN = "unknown cookies"
SHORT = "shorter than an ISAKMP header"


def prefix_of(packed: bytes) -> bytes:
    """The key new datagrams are counted by: the /24 of an IPv4 address, the /64 of an IPv6 one
    (``packed`` is the address in network order, 4 or 16 bytes)."""
    return packed[:3] if len(packed) == 4 else packed[:8]


class Shedder(Generic[T]):
    """Sorts one batch of received IKE datagrams: known first, then new ones under the budget."""

    def __init__(
        self,
        known: Callable[[bytes, bytes], bool],
        *,
        rate: float = 2000.0,
        burst: float = 2000.0,
        rate_under_load: float = 200.0,
        burst_under_load: float = 20.0,
        hold: float = 1.0,
        window: float = 1.0,
        max_prefixes: int = 65536,
        waiting_room: int = 64,
        max_wait: float = 0.5,
    ) -> None:
        """``known(icookie, rcookie)``: whether an SA holds these cookies (the engine's lookup)."""
        self._known = known
        self.rate = rate
        self.rate_under_load = rate_under_load
        self.burst_under_load = burst_under_load
        self.hold = hold
        self._pressure_until = float("-inf")
        self.burst = burst
        self.window = window
        self.max_prefixes = max_prefixes
        self.waiting_room = waiting_room
        self.max_wait = max_wait
        self._waiting: list[tuple[bytes, int, float, T]] = []  # (prefix, arrival, when, item)
        self._seq = 0
        self._tokens = burst
        self._last: float | None = None
        self._recent: dict[bytes, int] = {}  # new datagrams per prefix in this window
        self._previous: dict[bytes, int] = {}  # ... and in the one before
        self._window_start: float | None = None
        self.dropped: Counter[str] = Counter()
        self.passed_new = 0

    def apply(self, budget: SheddingBudget) -> None:
        """Take the budget of ``[daemon] new_sa_*`` (at start and on reload); tokens already
        saved beyond the new burst are cut to it."""
        self.rate, self.burst = budget.rate, float(budget.burst)
        self.rate_under_load, self.burst_under_load = budget.rate_under_load, float(budget.burst_under_load)
        self._tokens = min(self._tokens, self.burst)

    def sort(self, batch: Sequence[tuple[bytes, bytes, T]], now: float, *, backlog: bool = False) -> list[T]:
        """``batch``: ``(ike_bytes, source_prefix, item)`` in arrival order. Returns the items to
        parse, known ones first (in arrival order), then the admitted new ones (in arrival order).
        ``backlog``: the caller left datagrams queued (it read as many as it reads at once): the
        budget drops to :attr:`rate_under_load` for :attr:`hold` seconds, so that draining the
        socket keeps its share of the CPU."""
        if backlog:
            if now >= self._pressure_until:
                self._tokens = min(self._tokens, self.burst_under_load)
            self._pressure_until = now + self.hold
        self._refill(now)
        known: list[T] = []
        new: list[tuple[bytes, T]] = []
        for data, prefix, item in batch:
            if len(data) < HEADER:
                self.dropped[SHORT] += 1
                continue
            icookie, rcookie = data[:8], data[8:16]
            if self._known(icookie, rcookie):
                known.append(item)
            elif rcookie == ZERO:
                new.append((prefix, item))
            else:
                self.dropped[UNKNOWN] += 1
        if not new and not self._waiting:
            return known
        return known + self._admit(new, now)

    def _admit(self, new: list[tuple[bytes, T]], now: float) -> list[T]:
        """The quietest sources' new datagrams, as many as there are tokens; the next quietest
        wait (at most :attr:`waiting_room` of them, :attr:`max_wait` seconds) for later tokens."""
        self._count(new)
        seq = self._seq
        self._seq += len(new)
        fresh = [(p, seq + i, now, item) for i, (p, item) in enumerate(new)]
        if self._waiting:
            horizon = now - self.max_wait
            kept = [w for w in self._waiting if w[2] >= horizon]
            self.dropped[OVER_BUDGET] += len(self._waiting) - len(kept)
            fresh += kept
        allowed = int(self._tokens)
        if allowed >= len(fresh):
            chosen, self._waiting = fresh, []
        else:  # the quietest sources first (as they are now); ties in arrival order
            recent, previous = self._recent, self._previous
            demand = {w[0]: recent.get(w[0], 0) + previous.get(w[0], 0) for w in fresh}
            fresh.sort(key=lambda w: (demand[w[0]], w[1]))
            chosen = fresh[:allowed]
            self._waiting = fresh[allowed : allowed + self.waiting_room]
            self.dropped[OVER_BUDGET] += max(0, len(fresh) - allowed - self.waiting_room)
            chosen.sort(key=lambda w: w[1])
        self._tokens -= len(chosen)
        self.passed_new += len(chosen)
        return [w[3] for w in chosen]

    def _count(self, new: list[tuple[bytes, T]]) -> None:
        """Count new datagrams per prefix (the demand sources are ranked by)."""
        recent = self._recent
        for prefix, _ in new:
            count = recent.get(prefix)
            if count is not None:
                recent[prefix] = count + 1
            elif len(recent) < self.max_prefixes:  # bounded: past it, a newcomer counts as quiet
                recent[prefix] = 1

    def _refill(self, now: float) -> None:
        if self._last is not None and now > self._last:
            if now < self._pressure_until:
                rate, burst = self.rate_under_load, self.burst_under_load
            else:
                rate, burst = self.rate, self.burst
            self._tokens = min(burst, self._tokens + (now - self._last) * rate)
        self._last = now
        if self._window_start is None:
            self._window_start = now
        elif now - self._window_start >= self.window:
            expired = now - self._window_start >= 2 * self.window
            self._previous = {} if expired else self._recent
            self._recent = {}
            self._window_start = now
