"""What the verbs share: the control socket option and turning errors into messages and exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from snakeswan.control.client import ControlError
from snakeswan.control.protocol import DEFAULT_SOCKET
from snakeswan.errors import ConfigError, LocalError

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def add_control_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--control",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help=f"the daemon's control socket (default {DEFAULT_SOCKET})",
    )


def control_path(args: argparse.Namespace) -> str:
    return str(getattr(args, "control", None) or DEFAULT_SOCKET)


def guarded(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Print an error as one line on stderr and return its exit code (2: bad config)."""

    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except ConfigError as e:
            print(f"snakeswan: {e}", file=sys.stderr)
            return EXIT_USAGE
        except (ControlError, LocalError) as e:
            print(f"snakeswan: {e}", file=sys.stderr)
            return EXIT_FAIL
        except OSError as e:  # a file or device the command needs: one line, no traceback
            where = f"{e.filename}: " if e.filename else ""
            print(f"snakeswan: {where}{e.strerror or e}", file=sys.stderr)
            return EXIT_FAIL

    return run


def print_record(rec: dict[str, Any]) -> None:
    """One streamed log record, as ``snakeswan log`` prints it."""
    print(f"{rec.get('subsystem', '?')}: {rec.get('text', '')}", flush=True)


def split_target(text: str) -> tuple[str, str | None]:
    """``CONN[/CHILD]``."""
    conn, _, child = text.partition("/")
    return conn, child or None


def add_verb(
    sub: Any, name: str, help_text: str, run: Callable[[argparse.Namespace], int]
) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    add_control_option(p)
    p.set_defaults(run=guarded(run))
    return p
