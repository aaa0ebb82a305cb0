"""``snakeswan log``: follow the daemon's trace (every message sent and received) until Ctrl-C;
``--explain`` says under each message what it is for; ``--history`` starts with the records the
daemon kept."""

from __future__ import annotations

import argparse
from typing import Any

from snakeswan.analysis.explain import explain
from snakeswan.analysis.records import parse_text
from snakeswan.cli.common import add_verb, control_path
from snakeswan.control.client import stream


def add_parser(sub: Any) -> None:
    p = add_verb(sub, "log", "follow the daemon's trace", run)
    p.add_argument(
        "--explain",
        action="store_true",
        help="under each message, what it is for (cookies, SA offer, KE/nonce, NAT-D, ID+HASH, HASH(1..3))",
    )
    p.add_argument("--history", action="store_true", help="first print the records the daemon kept")
    p.add_argument("--no-follow", action="store_true", help="with --history: stop after the kept records")


def explained(subsystem: str, text: str) -> str | None:
    entry = parse_text(subsystem, text)
    return explain(entry) if entry is not None else None


def run(args: argparse.Namespace) -> int:
    try:
        for rec in stream(control_path(args), "log", history=bool(args.history)):
            if rec.get("event") == "history_end":
                if args.no_follow:
                    break
                continue
            sub, text = str(rec.get("subsystem", "?")), str(rec.get("text", ""))
            print(f"{sub}: {text}", flush=True)
            why = explained(sub, text) if args.explain else None
            if why:
                print(f"    = {why}", flush=True)
    except KeyboardInterrupt:
        pass
    return 0
