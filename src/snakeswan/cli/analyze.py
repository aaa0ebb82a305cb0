"""``snakeswan analyze CAPTURE``: a pcap/pcapng capture's IKEv1, explained: messages named and
decrypted with key log lines (``--keys``, as ``daemon --keylog`` writes them, Wireshark's IKEv1
decryption table) or with keys derived from DH shared secrets (``--dh-secrets``, from a gateway's
debug log), phase 1 HASHes checked with ``--psk``, problems listed; or its sequence diagram."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from snakeswan.analysis import diagram, report
from snakeswan.analysis.capture import Analyzer, parse_keylog
from snakeswan.analysis.pcapread import CaptureError, read_capture
from snakeswan.analysis.secrets import parse_dh_secrets
from snakeswan.cli.common import EXIT_FAIL, add_verb


def add_parser(sub: Any) -> None:
    p = add_verb(sub, "analyze", "explain the IKEv1 in a pcap/pcapng capture and the problems found", run)
    p.add_argument("capture", metavar="CAPTURE", help="a pcap or pcapng file")
    p.add_argument("--keys", metavar="FILE", help="key log: <icookie hex>,<encryption key hex> lines")
    p.add_argument(
        "--psk",
        metavar="SECRET",
        help="pre-shared key: check HASH_I/HASH_R (visible in ps: prefer --psk-file)",
    )
    p.add_argument("--psk-file", metavar="FILE", help="read the pre-shared key from FILE (first line)")
    p.add_argument(
        "--dh-secrets",
        metavar="FILE",
        help="DH shared secrets (g^xy): hex lines, our `daemon --explain-keys` log (gxy=...) or a "
        "strongSwan `ike 4` log; with --psk for PSK SAs, alone for signature SAs: decrypts without a "
        "key log and checks every Quick Mode/Informational/Transaction HASH",
    )
    p.add_argument(
        "--write-keys",
        metavar="FILE",
        help="write the keys derived from --dh-secrets as key log lines (Wireshark's IKEv1 table)",
    )
    p.add_argument("--sa", type=int, metavar="N", help="diagram: only IKE SA #N (numbered in capture order)")
    p.add_argument(
        "--format", choices=("text", "diagram", "svg", "html"), default="text", help="default: text"
    )
    p.add_argument("--explain", action="store_true", help="what each message is for, under it")
    p.add_argument("-o", "--output", metavar="FILE", help="write there instead of stdout")


def run(args: argparse.Namespace) -> int:
    with open(args.capture, "rb") as f:
        data = f.read()
    keys = {}
    if args.keys:
        with open(args.keys, encoding="utf-8", errors="replace") as f:
            keys = parse_keylog(f.read())
    psk = args.psk.encode() if args.psk else None
    if args.psk_file:
        with open(args.psk_file, "rb") as f:
            lines = f.read().splitlines()
        psk = lines[0] if lines else b""
    secrets: list[bytes] = []
    if args.dh_secrets:
        with open(args.dh_secrets, encoding="utf-8", errors="replace") as f:
            secrets = parse_dh_secrets(f.read())
        if not secrets:
            print(f"snakeswan: {args.dh_secrets}: no DH secret found in it", file=sys.stderr)
            return EXIT_FAIL
    try:
        contents = read_capture(data)
    except CaptureError as e:
        print(f"snakeswan: {args.capture}: {e}", file=sys.stderr)
        return EXIT_FAIL
    analyzer = Analyzer(keys, psk, secrets)
    for d in contents.datagrams:
        analyzer.feed(d)
    result = analyzer.finish()
    if args.write_keys:
        with open(args.write_keys, "w", encoding="utf-8") as f:
            f.writelines(
                f"{sa.icookie.hex()},{sa.derived.enc_key.hex()}\n" for sa in result.sas if sa.derived
            )
    items = report.steps(result, args.sa)
    if args.format == "text":
        out = report.render_text(
            result, contents.skipped, explain=args.explain, reassembled=contents.reassembled
        )
    elif args.format == "diagram":
        out = diagram.render_text(items, "initiator", "responder", explain=args.explain)
    elif args.format == "svg":
        out = diagram.render_svg(items, "initiator", "responder")
    else:
        out = diagram.render_html(items, "initiator", "responder", f"capture {args.capture}")
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(out)
    else:
        sys.stdout.write(out)
    return 0
