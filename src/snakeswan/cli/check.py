"""``snakeswan check -c FILE``: validate a configuration file offline, as the daemon would load it
(keys, values, proposals, secrets and credentials), without a daemon; exit 2 with the file, the key
and the reason on the first error."""

from __future__ import annotations

import argparse
from typing import Any

from snakeswan.cli.common import guarded
from snakeswan.config.loader import load_config


def add_parser(sub: Any) -> None:
    help_text = "validate a configuration file offline (exit 2 with file, key and reason on an error)"
    p = sub.add_parser("check", help=help_text, description=help_text)
    p.add_argument("-c", "--config", required=True, metavar="FILE", help="configuration file (TOML)")
    p.set_defaults(run=guarded(run))


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    children = sum(len(c.children) + len(c.shunts) for c in config.connections)
    conns = len(config.connections)
    names = ", ".join(c.name for c in config.connections) or "none"
    print(
        f"{args.config}: OK, {conns} connection{'s' if conns != 1 else ''} ({names}), "
        f"{children} child{'ren' if children != 1 else ''}"
    )
    return 0
