"""The ``snakeswan`` command: one module per verb, dispatched from here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from snakeswan import __version__
from snakeswan.cli import demo


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snakeswan",
        description="IPsec with IKEv1 in Python: negotiate, inspect and script IPsec tunnels.",
    )
    parser.add_argument("--version", action="version", version=f"snakeswan {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    demo.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 2
    rc: int = args.run(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
