"""Man pages rendered from what the program knows: ``snakeswan(8)`` from the CLI's argument parser,
``snakeswan.toml(5)`` from the configuration reference (``config/reference.py``, held to the
loader's key tables). ``python -m snakeswan.cli.manpages DIR`` writes both; a test keeps
``docs/man/`` current and renders them with groff."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from snakeswan import __version__
from snakeswan.cli.main import build_parser
from snakeswan.config.reference import REFERENCE


def _esc(text: str) -> str:
    """troff: backslashes, leading dots and quotes, and markdown backticks dropped."""
    text = text.replace("\\", "\\e").replace("`", "")
    return "\\&" + text if text.startswith((".", "'")) else text


def _options(p: argparse.ArgumentParser) -> list[str]:
    lines: list[str] = []
    for action in p._actions:  # argparse has no public iterator over its actions
        if (
            isinstance(action, argparse._SubParsersAction | argparse._HelpAction)
            or action.help == argparse.SUPPRESS
        ):
            continue
        names = ", ".join(action.option_strings) or action.dest
        meta = (
            f" {action.metavar or action.dest.upper()}" if action.option_strings and action.nargs != 0 else ""
        )
        lines += [".TP", f"\\fB{_esc(names)}\\fR{_esc(meta)}", _esc(action.help or "")]
    return lines


def man8() -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = [
        f'.TH SNAKESWAN 8 "" "snakeswan {__version__}" "System Administration"',
        ".SH NAME",
        "snakeswan \\- IPsec with IKEv1: daemon, control and analysis tools",
        ".SH SYNOPSIS",
        "\\fBsnakeswan\\fR [\\fB--control\\fR \\fIPATH\\fR] \\fIVERB\\fR [\\fIoptions\\fR]",
        ".SH DESCRIPTION",
        _esc(parser.description or ""),
        "The daemon reads its configuration (see \\fBsnakeswan.toml\\fR(5)); the other verbs talk to it",
        "over its control socket, or work offline (check, analyze, diagram, demo, load).",
        ".SH VERBS",
    ]
    for name, p in sub.choices.items():
        out += [".SS " + _esc(name), _esc(p.description or "")]
        out += _options(p)
    out += [
        ".SH EXIT STATUS",
        "0 on success, 1 when the operation failed (the reason on one line), 2 for a bad configuration.",
        ".SH SEE ALSO",
        "\\fBsnakeswan.toml\\fR(5), \\fBswanctl\\fR(8), \\fBipsec.conf\\fR(5)",
    ]
    return "\n".join(out) + "\n"


def man5() -> str:
    out = [
        f'.TH SNAKESWAN.TOML 5 "" "snakeswan {__version__}" "File Formats"',
        ".SH NAME",
        "snakeswan.toml \\- snakeswan configuration",
        ".SH DESCRIPTION",
        "TOML with swanctl.conf's names. An unknown key, or a value snakeswan does not act on",
        "(marked fail closed), is refused at load with the file, the key and the reason;",
        "\\fBsnakeswan check -c FILE\\fR validates a file offline.",
    ]
    for section, keys in REFERENCE.items():
        out.append(".SH " + _esc(section.upper()))
        for key, (kind, default, what) in keys.items():
            out += [".TP", f"\\fB{_esc(key)}\\fR ({_esc(kind)}, default {_esc(default)})", _esc(what)]
    out += [".SH SEE ALSO", "\\fBsnakeswan\\fR(8), \\fBswanctl.conf\\fR(5)"]
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    target = Path(argv[0] if argv else "docs/man")
    target.mkdir(parents=True, exist_ok=True)
    (target / "snakeswan.8").write_text(man8())
    (target / "snakeswan.toml.5").write_text(man5())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
