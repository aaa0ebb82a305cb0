"""``snakeswan rekey CONN[/CHILD]``: rekey IPsec SAs now (as ``swanctl --rekey --child``)."""

from __future__ import annotations

import argparse
from typing import Any

from snakeswan.cli.common import add_verb, control_path, split_target
from snakeswan.control.client import request


def add_parser(sub: Any) -> None:
    p = add_verb(sub, "rekey", "rekey the IPsec SAs of CONN, or of CONN/CHILD, now (make before break)", run)
    p.add_argument("target", metavar="CONN[/CHILD]")


def run(args: argparse.Namespace) -> int:
    conn, child = split_target(args.target)
    count = request(control_path(args), "rekey", conn=conn, child=child)
    print(f"rekeying {count} IPsec SA{'s' if count != 1 else ''} of {args.target}")
    return 0
