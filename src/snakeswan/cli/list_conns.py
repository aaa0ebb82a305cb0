"""``snakeswan list-conns [--json]``: the configured connections."""

from __future__ import annotations

import argparse
import json
from typing import Any

from snakeswan.cli.common import add_verb, control_path
from snakeswan.control.client import request


def add_parser(sub: Any) -> None:
    p = add_verb(sub, "list-conns", "list the configured connections", run)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    conns = request(control_path(args), "list-conns")
    if args.json:
        print(json.dumps(conns, indent=2))
        return 0
    for c in conns:
        print(
            f"{c['name']}: IKEv1 {c['mode']} mode, "
            f"{','.join(c['local_addrs'])} ... {','.join(c['remote_addrs'])}"
        )
        print(f"  local  {_side(c['local'])}   remote {_side(c['remote'])}")
        print(f"  proposals: {', '.join(c['proposals'])}")
        for ch in c["children"]:
            if ch["mode"] in ("pass", "drop"):  # shunts: installed at start, never negotiated
                print(f"  {ch['name']}: {ch['mode'].upper()}")
            else:
                props = ch["esp_proposals"] or ch["ah_proposals"]
                print(f"  {ch['name']}: {ch['mode'].upper()}, start {ch['start_action']}, {', '.join(props)}")
            print(f"    local  {', '.join(ch['local_ts'])}")
            print(f"    remote {', '.join(ch['remote_ts'])}")
    return 0


def _side(side: dict[str, Any]) -> str:
    """``psk '@west'``, or only the method when no ID is configured (then, as strongSwan: the address)."""
    return f"{side['auth']} '{side['id']}'" if side.get("id") is not None else str(side["auth"])
