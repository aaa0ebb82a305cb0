"""Rate-limited logging of trace records during floods (issue 17: ~1.1 KB of log per spoofed MM1).

Each record has a key: its subsystem, event and the field that says why or what (``reason``, else
``msg``, else ``exchange``). A token bucket per key lets :attr:`LogLimiter.burst` records through at
once and :attr:`LogLimiter.rate` a second after that; the rest are counted, and one warning per key
says how many were kept out, from :meth:`LogLimiter.log_summary`, which the daemon calls every few
seconds and once more when it stops. (It used to come with the next record let through: one
extra line per token, every 20 ms per key, when a gateway with thousands of SAs deleted them.)
Records are never dropped from the trace itself: the ``up`` waiters and the tracer's debug output
see all of them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from snakeswan.trace import Record

Key = tuple[str, str, str]


@dataclass
class _Bucket:
    tokens: float
    last: float
    suppressed: int = 0


def record_key(rec: Record) -> Key:
    what = rec.fields.get("reason") or rec.fields.get("msg") or rec.fields.get("exchange") or ""
    return rec.subsystem, rec.event, str(what)[:120]


class LogLimiter:
    def __init__(self, rate: float = 50.0, burst: int = 200, max_keys: int = 4096) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[Key, _Bucket] = {}
        self._loggers: dict[str, logging.Logger] = {}

    def allow(self, key: Key, now: float) -> bool:
        """Whether a record of ``key`` is logged now; if not, it is counted for the summary."""
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) >= self.max_keys:  # variable texts: one shared bucket for the rest
                key = (key[0], key[1], "*")
                b = self._buckets.get(key)
            if b is None:
                b = self._buckets[key] = _Bucket(float(self.burst), now)
        b.tokens = min(float(self.burst), b.tokens + (now - b.last) * self.rate)
        b.last = now
        if b.tokens < 1.0:
            b.suppressed += 1
            return False
        b.tokens -= 1.0
        return True

    def log(self, rec: Record, now: float) -> bool:
        """Log ``rec`` (its subsystem's logger, INFO) unless the rate limit keeps it out; False
        then. Impairments are logged as warnings and never limited; at debug level the tracer has
        logged the record itself, unlimited."""
        logger = self._loggers.get(rec.subsystem)
        if logger is None:  # getLogger takes the logging module's lock: once per subsystem
            logger = self._loggers[rec.subsystem] = logging.getLogger(f"snakeswan.{rec.subsystem}")
        if rec.subsystem == "impair":
            logger.warning("%s", rec.render())
            return True
        if logger.isEnabledFor(logging.DEBUG):
            return True
        allowed = self.allow(record_key(rec), now)
        if allowed:
            logger.info("%s", rec.render())
        return allowed

    def log_summary(self, now: float) -> None:
        for key, count in self.summary(now):
            logging.getLogger(f"snakeswan.{key[0]}").warning("%s", describe(key, count, self.rate))

    def summary(self, now: float) -> list[tuple[Key, int]]:
        """Keys with suppressed records and how many (their counts start again at 0); buckets idle
        and full again are forgotten."""
        out: list[tuple[Key, int]] = []
        for key, b in list(self._buckets.items()):
            if b.suppressed:
                out.append((key, b.suppressed))
                b.suppressed = 0
            elif b.tokens + (now - b.last) * self.rate >= self.burst:
                del self._buckets[key]
        return out


def describe(key: Key, count: int, rate: float) -> str:
    what = f" {key[2]}" if key[2] else ""
    return f"{count} {key[0]} {key[1]}{what} records not logged (over the log's limit of {rate:g} a second)"
