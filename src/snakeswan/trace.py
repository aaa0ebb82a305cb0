"""Structured trace records (DESIGN.md principle 14).

Every observable step of the protocol (a message sent or received, a proposal chosen, a packet
dropped) is a :class:`Record`: a subsystem, an event name and fields. A :class:`Tracer` forwards
records to ``logging`` (logger ``snakeswan.<subsystem>``) and keeps the most recent ones in memory so
that tests can assert on them. Key material is never rendered unless the tracer was created with
``log_keys=True`` (an explicit opt-in, like strongSwan's private log level); pass secrets only in
:meth:`Tracer.secret`, never as ordinary fields.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Record:
    subsystem: str
    event: str
    fields: dict[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        parts = " ".join(f"{k}={_fmt(v)}" for k, v in self.fields.items())
        return f"{self.event} {parts}".rstrip()


def _fmt(v: Any) -> str:
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, (list, tuple)):
        return ",".join(_fmt(x) for x in v)
    return str(v)


class Tracer:
    """Collects records; ``sink`` (if given) is called with each one as well."""

    def __init__(
        self, *, keep: int = 2000, log_keys: bool = False, sink: Callable[[Record], None] | None = None
    ) -> None:
        self.records: deque[Record] = deque(maxlen=keep)
        self.log_keys = log_keys
        self.sink = sink
        self._loggers: dict[str, logging.Logger] = {}

    def emit(self, subsystem: str, event: str, **fields: Any) -> None:
        rec = Record(subsystem, event, fields)
        self.records.append(rec)
        logger = self._loggers.get(subsystem)
        if logger is None:  # getLogger takes the logging module's lock: once per subsystem
            logger = self._loggers[subsystem] = logging.getLogger(f"snakeswan.{subsystem}")
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s", rec.render())
        if self.sink is not None:
            try:
                self.sink(rec)
            except Exception:  # a broken sink must not break the protocol engine
                logging.getLogger("snakeswan.trace").exception("trace sink failed; sink removed")
                self.sink = None

    def secret(self, subsystem: str, event: str, **fields: bytes | int | str) -> None:
        """Key material: recorded only when the tracer was created with ``log_keys=True``."""
        if self.log_keys:
            self.emit(subsystem, event, **fields)

    def find(self, event: str, subsystem: str | None = None) -> Iterator[Record]:
        for r in self.records:
            if r.event == event and (subsystem is None or r.subsystem == subsystem):
                yield r

    def events(self) -> list[str]:
        return [r.event for r in self.records]
