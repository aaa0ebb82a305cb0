"""``snakeswan list-pols [--json]``: the data plane's policies in lookup order (trap, pass and drop
policies, the bypass of our own IKE traffic), its drop counters and the policy-routing rules, like
``swanctl --list-pols``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from snakeswan.cli.common import add_verb, control_path
from snakeswan.control.client import request

_LABELS = {"protect": "PROTECT", "bypass": "PASS", "discard": "DROP"}


def add_parser(sub: Any) -> None:
    p = add_verb(sub, "list-pols", "list the data plane's policies and drop counters", run)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--all",
        action="store_true",
        help="also the bypass policies of our own IKE, ESP and AH traffic (--json always has them)",
    )


def hide_own_bypass(pols: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The listing without the daemon's own bypass policies (``%ike``), and how many were hidden."""
    kept = [p for p in pols["policies"] if p["conn"] != "%ike"]
    return {**pols, "policies": kept}, len(pols["policies"]) - len(kept)


def render_policies(pols: dict[str, Any]) -> str:
    lines = []
    for p in pols["policies"]:
        name = f"{p['conn']}/{p['child']}" if p["conn"] != "%ike" else "(own IKE, ESP and AH)"
        state = ", SA installed" if p["installed"] else ""
        lines.append(f"{name}: {_LABELS.get(p['action'], p['action'])}{state}")
        lines.append(f"  {p['local_ts']} === {p['remote_ts']}")
    drops = ", ".join(f"{k} {v}" for k, v in sorted(pols["drops"].items())) or "none"
    lines.append(f"drops: {drops}; unrouted (no policy) {pols['unrouted']}")
    if pols["table"] is not None:
        lines.append(f"routes in table {pols['table']}, our sockets marked {pols['fwmark']:#x}")
    lines += [f"  rule {rule}" for rule in pols["rules"]]
    for w in pols.get("workers", []):  # [daemon] workers > 1
        counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in w.items() if k not in ("worker", "pid"))
        lines.append(f"data-plane worker {w['worker']} (pid {w['pid']}): {counts or 'no report yet'}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    pols = request(control_path(args), "list-pols")
    if args.json:  # scripts get every policy, ours included (they carry conn "%ike")
        print(json.dumps(pols, indent=2))
        return 0
    hidden = 0
    if not args.all:
        pols, hidden = hide_own_bypass(pols)
    print(render_policies(pols))
    if hidden:
        print(f"({hidden} bypass policies of our own IKE, ESP and AH traffic not shown; --all shows them)")
    return 0
