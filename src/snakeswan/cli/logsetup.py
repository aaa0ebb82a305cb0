"""The daemon's log: levels per subsystem (as charon's ``filelog`` has them), timestamps and level
names, and three formats: ``text`` (a terminal or a file), ``json`` (one object a line, for log
collectors) and ``journal`` (``<N>`` priority prefixes that journald reads from stderr, no
timestamp of our own: the journal keeps it)."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

from snakeswan.analysis.explain import explain
from snakeswan.analysis.records import parse_text

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
FORMATS = ("auto", "text", "json", "journal")
_SYSLOG_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


def parse_levels(text: str) -> dict[str, int]:
    """``info`` or ``info,ike=debug,dataplane=warning``: the default level (key ``""``) and levels of
    subsystems (the ``snakeswan.<subsystem>`` loggers: daemon, dataplane, ike, ipsec, ...)."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, level = part.rpartition("=")
        if level not in LEVELS:
            raise argparse.ArgumentTypeError(f"unknown level {level!r} (one of {', '.join(LEVELS)})")
        out[name.strip()] = LEVELS[level]
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        obj = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            obj["exception"] = self.formatException(record.exc_info)
        return json.dumps(obj)


class JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prio = _SYSLOG_PRIORITY.get(record.levelno, 6)
        text = super().format(record)
        return "\n".join(f"<{prio}>{line}" for line in text.splitlines())


def default_format(stream: TextIO = sys.stderr, environ: Mapping[str, str] = os.environ) -> str:
    """``journal`` when ``stream`` is connected to systemd's journal (``JOURNAL_STREAM`` names its
    device and inode, see systemd.exec(5)), else ``text``."""
    try:
        dev, ino = (int(x) for x in environ.get("JOURNAL_STREAM", "").split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, io.UnsupportedOperation):
        return "text"
    return "journal" if (st.st_dev, st.st_ino) == (dev, ino) else "text"


class ExplainFilter(logging.Filter):
    """``--explain``: a trace record of a message gets, on the next line, what the message is for."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("snakeswan."):
            entry = parse_text(record.name.removeprefix("snakeswan."), record.getMessage())
            why = explain(entry) if entry is not None else None
            if why:
                record.msg, record.args = f"{record.getMessage()}\n    = {why}", None
        return True


def configure(
    levels: dict[str, int], fmt: str = "text", stream: TextIO = sys.stderr, *, explain: bool = False
) -> None:
    handler = logging.StreamHandler(stream)
    if explain:
        handler.addFilter(ExplainFilter())
    if fmt == "auto":
        fmt = default_format(stream)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    elif fmt == "journal":
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s", datefmt="%Y-%m-%dT%H:%M:%S"
            )
        )
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(levels.get("", logging.INFO))
    for name, level in levels.items():
        if name:
            logging.getLogger(f"snakeswan.{name}").setLevel(level)
