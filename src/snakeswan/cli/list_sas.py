"""``snakeswan list-sas [--ike NAME] [--child NAME] [--json]``: the IKE and IPsec SAs, like
``swanctl --list-sas``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from snakeswan.cli.common import add_verb, control_path
from snakeswan.control.client import request
from snakeswan.daemon.views import render_sas


def add_parser(sub: Any) -> None:
    p = add_verb(sub, "list-sas", "list IKE SAs and their IPsec SAs", run)
    p.add_argument("--ike", metavar="NAME", help="only the IKE SAs of connection NAME")
    p.add_argument("--child", metavar="NAME", help="only the IPsec SAs of child NAME (and their IKE SAs)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def select(sas: list[dict[str, Any]], ike: str | None, child: str | None) -> list[dict[str, Any]]:
    """The SAs ``--ike``/``--child`` ask for: an IKE SA is kept with its matching children only, and
    only if it has one when ``child`` is given."""
    out = []
    for sa in sas:
        if ike is not None and sa["conn"] != ike:
            continue
        if child is not None:
            children = [c for c in sa["children"] if c["name"] == child]
            if children:
                out.append({**sa, "children": children})
            continue
        out.append(sa)
    return out


def run(args: argparse.Namespace) -> int:
    sas = select(request(control_path(args), "list-sas"), args.ike, args.child)
    print(json.dumps(sas, indent=2) if args.json else render_sas(sas))
    return 0
