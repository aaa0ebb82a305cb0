"""``snakeswan diagram [LOG]``: the sequence diagram of IKE SAs' lives (phase 1, phase 2,
Transactions, DPD, deletes, retransmissions) from a saved log (the daemon's, in any of its formats,
or ``snakeswan log``'s output; ``-`` for stdin) or, without LOG, from the records a live daemon kept.
As terminal text (default), SVG or an HTML page with the explanation of each message."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import Any

from snakeswan.analysis import diagram
from snakeswan.analysis.records import Entry, parse_lines, parse_text
from snakeswan.cli.common import add_verb, control_path
from snakeswan.control.client import stream


def add_parser(sub: Any) -> None:
    p = add_verb(sub, "diagram", "sequence diagram of IKE SAs from a log or a live daemon", run)
    p.add_argument("log", nargs="?", metavar="LOG", help="a saved log (- for stdin); default: the daemon's")
    p.add_argument("--sa", metavar="N", help="only IKE SA #N (its unique id, as list-sas shows it)")
    p.add_argument("--format", choices=("text", "svg", "html"), default="text", help="default: text")
    p.add_argument("--explain", action="store_true", help="text: what each message is for, under it")
    p.add_argument("-o", "--output", metavar="FILE", help="write there instead of stdout")


def live_entries(path: str) -> list[Entry]:
    out = []
    for rec in stream(path, "log", history=True):
        if rec.get("event") == "history_end":
            break
        entry = parse_text(str(rec.get("subsystem", "")), str(rec.get("text", "")))
        if entry is not None:
            out.append(entry)
    return out


def render(entries: Iterable[Entry], fmt: str, sa: str | None, explain: bool) -> str:
    entries = list(entries)
    items = diagram.steps(entries, sa)
    left, right = "us", f"peer {diagram.peer_of(entries)}"
    if fmt == "svg":
        return diagram.render_svg(items, left, right)
    if fmt == "html":
        return diagram.render_html(items, left, right, f"IKE SA {('#' + sa) if sa else 'negotiations'}")
    return diagram.render_text(items, left, right, explain=explain)


def run(args: argparse.Namespace) -> int:
    if args.log == "-":
        entries = list(parse_lines(sys.stdin))
    elif args.log:
        with open(args.log, encoding="utf-8", errors="replace") as f:
            entries = list(parse_lines(f))
    else:
        entries = live_entries(control_path(args))
    out = render(entries, args.format, args.sa, args.explain)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(out)
    else:
        sys.stdout.write(out)
    return 0
