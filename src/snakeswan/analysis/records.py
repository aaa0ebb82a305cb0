"""Trace records back from text: a line of ``snakeswan log``, of the daemon's log (text, json or
journal format) or a :class:`~snakeswan.trace.Record` itself, as one :class:`Entry`.

``Record.render()`` writes ``event k=v k=v``; values may hold spaces (``payloads=SA V V``) and a
``reason`` may hold anything, `` name=`` included. So a line is split before each `` name=``, but a
``reason`` goes on until one of the fields the engine puts after one (``count``, ``src``, ``sa``...).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from snakeswan.trace import Record

# a field starts at " name=" (the engine's field names are identifiers); a reason runs to the end
_SPLIT = re.compile(r" (?=[a-z_][a-z0-9_]*=)")
_AFTER_REASON = frozenset(("count", "src", "dst", "sa", "mid", "spi", "exchange", "notify"))
# "2026-11-30T03:54:48.123 INFO    snakeswan.ike: sent ..." / "<6>snakeswan.ike: ..." / "ike: sent ..."
_PREFIX = re.compile(r"^(?:\S+ +[A-Z]+ +|<\d>)?(?:snakeswan\.)?(?P<sub>[a-z_]+): (?P<rest>.*)$")
_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?) ")


@dataclass(frozen=True, slots=True)
class Entry:
    """One trace record: subsystem, event, fields as text (``time`` from the log line, if any)."""

    subsystem: str
    event: str
    fields: dict[str, str] = field(default_factory=dict)
    time: str = ""

    def get(self, key: str, default: str = "") -> str:
        return self.fields.get(key, default)


def parse_fields(text: str) -> dict[str, str]:
    """``k=v k=v`` as :meth:`Record.render` wrote it."""
    out: dict[str, str] = {}
    in_reason = False
    for part in _SPLIT.split(text) if text else []:
        key, eq, value = part.partition("=")
        if in_reason and key not in _AFTER_REASON:
            out["reason"] += " " + part  # " name=" inside a reason (an explained proposal)
            continue
        if eq:
            out[key] = value
            in_reason = key == "reason"
    return out


def parse_text(subsystem: str, text: str, time: str = "") -> Entry | None:
    """``sent sa=1 msg=MM1 ...`` (a record's rendering) as an Entry; None for other text."""
    event, _, rest = text.partition(" ")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", event):
        return None
    return Entry(subsystem, event, parse_fields(rest), time)


def parse_line(line: str) -> Entry | None:
    """A line of a log: ``snakeswan log`` output, the daemon's text/journal log or its json log."""
    line = line.rstrip("\n")
    if line.startswith("{"):
        try:
            obj = json.loads(line)
        except ValueError:
            return None
        if not isinstance(obj, dict):
            return None
        if "event" in obj and "text" in obj:  # a control-socket log item
            return parse_text(str(obj.get("subsystem", "")), str(obj["text"]))
        logger = str(obj.get("logger", ""))
        sub = logger.removeprefix("snakeswan.")
        return parse_text(sub, str(obj.get("message", "")), str(obj.get("time", "")))
    t = _TIME.match(line)
    m = _PREFIX.match(line)
    if m is None:
        return None
    return parse_text(m.group("sub"), m.group("rest"), t.group(1) if t else "")


def parse_lines(lines: Iterable[str]) -> Iterator[Entry]:
    for line in lines:
        entry = parse_line(line)
        if entry is not None:
            yield entry


def from_record(rec: Record) -> Entry:
    """A live record, its fields rendered as the log would show them."""
    return Entry(rec.subsystem, rec.event, parse_fields(rec.render().partition(" ")[2]))
