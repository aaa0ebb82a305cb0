"""``snakeswan daemon``: run the IKE daemon in the foreground."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from snakeswan.cli.common import add_verb, control_path
from snakeswan.daemon.daemon import Daemon

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def add_parser(sub: Any) -> None:
    p = add_verb(sub, "daemon", "run the IKEv1 daemon in the foreground (logs go to stderr)", run)
    p.add_argument("-c", "--config", required=True, metavar="FILE", help="configuration file (TOML)")
    p.add_argument("--log-level", choices=sorted(LEVELS), default="info", help="log verbosity (default info)")
    p.add_argument(
        "--keylog",
        metavar="FILE",
        help="append Wireshark decryption lines (IKEv1 and ESP keys) to FILE: secret material, "
        "handle with care",
    )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=LEVELS[args.log_level], stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s"
    )
    daemon = Daemon(args.config, control_path=control_path(args), keylog_path=args.keylog)
    return daemon.run()
