"""The ``snakeswan`` command: one module per verb, dispatched from here."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from snakeswan import __version__
from snakeswan.cli import (
    analyze,
    capture,
    check,
    daemon,
    demo,
    diagram,
    down,
    list_conns,
    list_pols,
    list_pools,
    list_sas,
    load,
    log,
    rekey,
    reload,
    stop,
    up,
)
from snakeswan.cli.common import add_control_option

VERBS = (
    daemon,
    up,
    down,
    rekey,
    list_sas,
    list_conns,
    list_pols,
    list_pools,
    reload,
    stop,
    log,
    check,
    demo,
    load,
    diagram,
    analyze,
    capture,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snakeswan",
        description="IPsec with IKEv1 in Python: negotiate, inspect and script IPsec tunnels.",
    )
    parser.add_argument("--version", action="version", version=f"snakeswan {__version__}")
    add_control_option(parser)
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb in VERBS:
        verb.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `snakeswan list-sas | head` ends quietly
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 2
    try:
        rc: int = args.run(args)
    except KeyboardInterrupt:  # Ctrl-C while `up` waits: the daemon goes on; no traceback
        print("snakeswan: interrupted", file=sys.stderr)
        return 130
    return rc


if __name__ == "__main__":
    sys.exit(main())
