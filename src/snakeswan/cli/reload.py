"""``snakeswan reload``: the daemon re-reads its configuration file."""

from __future__ import annotations

import argparse
from typing import Any

from snakeswan.cli.common import add_verb, control_path
from snakeswan.control.client import request


def add_parser(sub: Any) -> None:
    add_verb(sub, "reload", "re-read the daemon's configuration file", run)


def run(args: argparse.Namespace) -> int:
    names = request(control_path(args), "reload")
    print(f"reloaded: {len(names)} connection{'s' if len(names) != 1 else ''} ({', '.join(names)})")
    return 0
