"""``snakeswan log``: follow the daemon's trace (every message sent and received) until Ctrl-C."""

from __future__ import annotations

import argparse
from typing import Any

from snakeswan.cli.common import add_verb, control_path
from snakeswan.control.client import stream


def add_parser(sub: Any) -> None:
    add_verb(sub, "log", "follow the daemon's trace", run)


def run(args: argparse.Namespace) -> int:
    try:
        for rec in stream(control_path(args), "log"):
            print(f"{rec.get('subsystem', '?')}: {rec.get('text', '')}", flush=True)
    except KeyboardInterrupt:
        pass
    return 0
