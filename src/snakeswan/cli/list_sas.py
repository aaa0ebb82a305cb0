"""``snakeswan list-sas [--json]``: the IKE and IPsec SAs, like ``swanctl --list-sas``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from snakeswan.cli.common import add_verb, control_path
from snakeswan.control.client import request
from snakeswan.daemon.views import render_sas


def add_parser(sub: Any) -> None:
    p = add_verb(sub, "list-sas", "list IKE SAs and their IPsec SAs", run)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    sas = request(control_path(args), "list-sas")
    print(json.dumps(sas, indent=2) if args.json else render_sas(sas))
    return 0
