"""``snakeswan up CONN[/CHILD]``: negotiate a connection (or one of its children)."""

from __future__ import annotations

import argparse
from typing import Any

from snakeswan.cli.common import add_verb, control_path, split_target
from snakeswan.control.client import request


def add_parser(sub: Any) -> None:
    p = add_verb(sub, "up", "initiate a connection: CONN or CONN/CHILD", run)
    p.add_argument("target", metavar="CONN[/CHILD]")


def run(args: argparse.Namespace) -> int:
    conn, child = split_target(args.target)
    result = request(control_path(args), "up", conn=conn, child=child)
    print(f"initiating {args.target}: IKE SA #{result['ike_sa']}")
    return 0
