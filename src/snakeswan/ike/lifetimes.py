"""Timer policy for IPsec SAs negotiated by the engine (DESIGN.md principle 12): when to rekey,
when the old SA of a rekey goes, and when an SA expires.

- Rekey (soft limit): the end that initiated the child's Quick Mode rekeys, at
  ``rekey_time`` minus a random jitter of up to ``rand_time`` (so that two gateways do not rekey at
  the same moment), and never later than 90 % of the negotiated lifetime. A responder that lowered
  the initiator's lifetime (RESPONDER-LIFETIME) rekeys itself at 95 % of it (at the latest two
  overlaps before it ends) unless the initiator did first: Libreswan ignores the notify and
  would keep the SA far past our expiry.
- Make before break: after a rekey the old SA stays usable for :data:`REKEY_OVERLAP` seconds (packets
  in flight still arrive on it), then the initiator deletes it with a Delete payload.
- Collision: both ends rekeyed the same SA at once, two successors came up. One is redundant and
  goes after the overlap (ike/timers.py says which); until then its timer remembers the other one
  (``rival``) and when the collision was seen, and every timer the last time the data plane saw
  the peer send on the SA (``last_inbound``), which may change which one goes.
- Hard limit: at the negotiated lifetime the SA is deleted (and the peer told).
Byte limits are the data plane's to count; it reports them to the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from snakeswan.config.model import ChildConfig
from snakeswan.ike.events import ChildSaInfo
from snakeswan.ike.schedule import Schedule

REKEY_OVERLAP = 5.0
RESPONDER_REKEY = 0.95  # of a lifetime we lowered, if the initiator has not rekeyed by then


@dataclass
class ChildTimer:
    ike_sa: int
    spi_in: int
    rekey_at: float | None
    expire_at: float | None
    delete_at: float | None = None
    rekeying: bool = False  # a rekey Quick Mode is under way
    replaced_by: int | None = None  # inbound SPI of the first successor (a second one: collision)
    last_inbound: float | None = None  # when the data plane last reported packets from the peer
    rival: int | None = None  # a collision's redundant pair: inbound SPI of the pair kept
    collided_at: float | None = None  # ... and when the collision was seen
    saved_rekey: float | None = None  # ... and its rekey time, should it be kept after all

    def due(self) -> float | None:
        times = [t for t in (self.rekey_at, self.expire_at, self.delete_at) if t is not None]
        return min(times) if times else None


class ChildLifetimes:
    """The timers of all IPsec SAs, by inbound SPI, their due times in one heap (O(log n) each);
    whoever changes a :class:`ChildTimer` calls :meth:`update`."""

    def __init__(self, rng: Callable[[int], bytes]) -> None:
        self._rng = rng
        self.timers: dict[int, ChildTimer] = {}
        self._schedule = Schedule()

    def update(self, spi_in: int) -> None:
        """The timer of ``spi_in`` changed (or went): reschedule it."""
        t = self.timers.get(spi_in)
        self._schedule.set(spi_in, t.due() if t is not None else None)

    def _jitter(self, span: float) -> float:
        if span <= 0:
            return 0.0
        return span * int.from_bytes(self._rng(2), "big") / 0xFFFF

    def track(self, info: ChildSaInfo, cfg: ChildConfig, now: float) -> None:
        life = info.life_seconds
        expire = now + life if life else None
        rekey: float | None = None
        if info.initiator and cfg.rekey_time > 0:
            rekey = now + cfg.rekey_time - self._jitter(cfg.rand_time)
            if life:
                rekey = min(rekey, now + 0.9 * life)
        elif info.lowered and life and cfg.rekey_time > 0:
            # late enough for an initiator that took our lifetime to rekey first, early enough
            # for the make-before-break overlap to end before the SA expires
            rekey = now + life - max((1 - RESPONDER_REKEY) * life, 2 * REKEY_OVERLAP)
        self.timers[info.spi_in] = ChildTimer(info.ike_sa, info.spi_in, rekey, expire)
        self.update(info.spi_in)

    def replaced(self, old_spi: int, now: float, *, we_delete: bool, by: int | None = None) -> None:
        """A rekey installed the successor ``by`` of ``old_spi``: no more rekeying it; delete it soon."""
        t = self.timers.get(old_spi)
        if t is None:
            return
        t.rekey_at = None
        t.rekeying = False
        if t.replaced_by is None:
            t.replaced_by = by
        if we_delete and t.delete_at is None:
            t.delete_at = now + REKEY_OVERLAP
        self.update(old_spi)

    def redundant(self, spi_in: int, now: float, rival: int) -> None:
        """The loser of a rekey collision (``rival`` won): not rekeyed, deleted by us after the
        overlap unless the collision's end (ike/timers.py) keeps it after all."""
        t = self.timers.get(spi_in)
        if t is not None:
            t.saved_rekey = t.rekey_at if not t.rekeying else None
            t.rekey_at = None
            t.rekeying = False
            t.delete_at = now + REKEY_OVERLAP
            t.rival = rival
            t.collided_at = now
            self.update(spi_in)

    def keep(self, spi_in: int, rekey_at: float | None) -> None:
        """A collision's redundant pair stays after all: rekeyed at ``rekey_at`` like any other."""
        t = self.timers.get(spi_in)
        if t is not None:
            t.delete_at = t.rival = t.collided_at = t.saved_rekey = None
            t.rekey_at = rekey_at
            self.update(spi_in)

    def seen(self, spi_in: int, now: float) -> None:
        """The data plane received packets on ``spi_in`` (reported up to a second late)."""
        t = self.timers.get(spi_in)
        if t is not None:
            t.last_inbound = now

    def forget(self, spi_in: int) -> None:
        self.timers.pop(spi_in, None)
        self._schedule.set(spi_in, None)

    def due(self) -> float | None:
        return self._schedule.peek()

    def pop_due(self, now: float, limit: int | None = None) -> list[tuple[str, ChildTimer]]:
        """(``"rekey"`` | ``"delete"`` | ``"expire"``, timer) for every timer that fired (at most
        ``limit``: the others stay due); only those are looked at."""
        out: list[tuple[str, ChildTimer]] = []
        for spi in self._schedule.pop_due(now, limit):
            t = self.timers.get(spi)  # type: ignore[call-overload]
            if t is None:
                continue
            if t.expire_at is not None and t.expire_at <= now:
                out.append(("expire", t))
            elif t.delete_at is not None and t.delete_at <= now:
                out.append(("delete", t))
            elif t.rekey_at is not None and t.rekey_at <= now:
                t.rekey_at = None
                t.rekeying = True
                out.append(("rekey", t))
            self.update(t.spi_in)  # what is left (an expiry after a rekey); a removal forgets it
        return out

    def scan_due(self) -> float | None:
        """The earliest due time by looking at every timer (tests check :meth:`due` against it)."""
        times = [t for timer in self.timers.values() if (t := timer.due()) is not None]
        return min(times) if times else None
