"""``snakeswan list-pools [--json]``: virtual IP pools and their leases (as ``swanctl --list-pools
--leases``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from snakeswan.cli.common import add_verb, control_path
from snakeswan.control.client import request


def add_parser(sub: Any) -> None:
    p = add_verb(sub, "list-pools", "list the virtual IP pools and their leases", run)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    pools = request(control_path(args), "list-pools")
    if args.json:
        print(json.dumps(pools, indent=2))
        return 0
    for p in pools:
        print(f"{p['name']:<16} {p['base']:<32} {p['online']} / {p['offline']} / {p['size']}")
        for lease in p["leases"]:
            state = "online" if lease["online"] else "offline"
            print(f"  {lease['address']:<39} {state:<8} '{lease['identity']}'")
    return 0
