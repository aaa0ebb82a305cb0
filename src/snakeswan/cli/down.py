"""``snakeswan down CONN[/CHILD]``: delete a connection's SAs (Delete payloads are sent)."""

from __future__ import annotations

import argparse
from typing import Any

from snakeswan.cli.common import add_verb, control_path, split_target
from snakeswan.control.client import request


def add_parser(sub: Any) -> None:
    p = add_verb(sub, "down", "delete the SAs of CONN (all of it) or CONN/CHILD (that IPsec SA)", run)
    p.add_argument("target", metavar="CONN[/CHILD]")


def run(args: argparse.Namespace) -> int:
    conn, child = split_target(args.target)
    count = request(control_path(args), "down", conn=conn, child=child)
    print(f"deleted {count} SA{'s' if count != 1 else ''} of {args.target}")
    return 0
