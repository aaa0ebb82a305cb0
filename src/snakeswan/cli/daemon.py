"""``snakeswan daemon``: run the IKE daemon in the foreground."""

from __future__ import annotations

import argparse
from typing import Any

from snakeswan.cli import logsetup
from snakeswan.cli.common import add_verb, control_path
from snakeswan.daemon.daemon import Daemon


def add_parser(sub: Any) -> None:
    p = add_verb(sub, "daemon", "run the IKEv1 daemon in the foreground (logs go to stderr)", run)
    p.add_argument("-c", "--config", required=True, metavar="FILE", help="configuration file (TOML)")
    p.add_argument(
        "--log-level",
        type=logsetup.parse_levels,
        default="info",
        metavar="LEVELS",
        help="log verbosity: debug, info (default), warning or error, optionally per subsystem as in "
        "'info,ike=debug,dataplane=warning'",
    )
    p.add_argument(
        "--log-format",
        choices=logsetup.FORMATS,
        default="auto",
        help="text (timestamps, levels), json (one object a line) or journal (priority prefixes for "
        "systemd's journal); auto (default): journal when stderr is the journal, else text",
    )
    p.add_argument(
        "--keylog",
        metavar="FILE",
        help="append Wireshark decryption lines (IKEv1 and ESP keys) to FILE: secret material, "
        "handle with care",
    )
    p.add_argument(
        "--impair",
        action="append",
        metavar="ACTION:MESSAGE[.PAYLOAD][:COUNT]",
        help="misbehave on purpose, to test a peer (labs and tests only; logged loudly): ACTION is "
        "drop, duplicate, corrupt, truncate, wrong-spi, replay, delay[=S] or reorder[=S] for a message; "
        "omit, duplicate or corrupt for a PAYLOAD (SA, KE, NONCE, ID, HASH, SIG, CERT, CR, N, D, VID, "
        "ATTR, NAT-D, NAT-OA), bad-hash and bad-sig for a message's HASH/SIG; MESSAGE MM1..6, AM1..3, "
        "QM1..3, INFO<n> or TR<n>; COUNT transmissions (default 1, * for all). Repeatable",
    )

    p.add_argument(
        "--explain",
        action="store_true",
        help="log under each message what it is for (cookies, SA offer, KE/nonce, NAT-D, ID+HASH...)",
    )

    p.add_argument(
        "--explain-keys",
        action="store_true",
        help="log the key derivation step by step WITH VALUES (g^xy, SKEYID, SKEYID_d/a/e, IVs, KEYMAT): "
        "secret material, for a lab only",
    )


def run(args: argparse.Namespace) -> int:
    logsetup.configure(args.log_level, args.log_format, explain=args.explain)
    daemon = Daemon(
        args.config,
        control_path=control_path(args),
        keylog_path=args.keylog,
        log_keys=args.explain_keys,
        impair=args.impair,
    )
    return daemon.run()
