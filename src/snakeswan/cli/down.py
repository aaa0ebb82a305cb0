"""``snakeswan down CONN[/CHILD]``: delete a connection's SAs (Delete payloads are sent), printing
what the deletion logged; exit 1 when there was nothing to delete."""

from __future__ import annotations

import argparse
from typing import Any

from snakeswan.cli.common import add_verb, control_path, print_record, split_target
from snakeswan.control.client import call, request


def add_parser(sub: Any) -> None:
    p = add_verb(sub, "down", "delete the SAs of CONN (all of it) or CONN/CHILD (that IPsec SA)", run)
    p.add_argument("target", metavar="CONN[/CHILD]")
    p.add_argument(
        "--timeout", type=float, default=30.0, metavar="SECONDS", help="wait this long for the daemon"
    )
    p.add_argument("--async", dest="no_wait", action="store_true", help="only the count, no log lines")


def run(args: argparse.Namespace) -> int:
    conn, child = split_target(args.target)
    path = control_path(args)
    if args.no_wait:
        count = request(path, "down", timeout=args.timeout, conn=conn, child=child)
    else:
        request_args = {"conn": conn, "child": child, "wait": True}
        count = call(path, "down", request_args, print_record, timeout=args.timeout)
    print(f"deleted {count} SA{'s' if count != 1 else ''} of {args.target}")
    return 0
