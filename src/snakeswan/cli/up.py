"""``snakeswan up CONN[/CHILD]``: negotiate a connection (or one of its children), stream its log
lines and exit 0 only once every requested IPsec SA is established, like ``swanctl --initiate``."""

from __future__ import annotations

import argparse
from typing import Any

from snakeswan.cli.common import add_verb, control_path, print_record, split_target
from snakeswan.control.client import call, request


def add_parser(sub: Any) -> None:
    p = add_verb(
        sub, "up", "initiate a connection: CONN or CONN/CHILD; wait for the outcome (exit 1 on failure)", run
    )
    p.add_argument("target", metavar="CONN[/CHILD]")
    p.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="give up waiting after this long (exit 1; the daemon keeps negotiating); default 60",
    )
    p.add_argument(
        "--async",
        dest="no_wait",
        action="store_true",
        help="return as soon as the daemon started the negotiation (no outcome, no log lines)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="do not print the log lines, only the outcome")


def run(args: argparse.Namespace) -> int:
    conn, child = split_target(args.target)
    path = control_path(args)
    if args.no_wait:
        result = request(path, "up", conn=conn, child=child)
        print(f"initiating {args.target}: IKE SA #{result['ike_sa']}")
        return 0
    request_args = {"conn": conn, "child": child, "wait": True, "timeout": args.timeout}
    on_record = (lambda _rec: None) if args.quiet else print_record
    result = call(path, "up", request_args, on_record, timeout=args.timeout + 10.0)
    print(result["message"], flush=True)
    return 0
