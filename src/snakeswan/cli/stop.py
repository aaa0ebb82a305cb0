"""``snakeswan stop``: the daemon deletes its SAs (the peers are told), removes the routes, rules and
TUN device it made and exits; the command returns once it is gone."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import sys
import time
from typing import Any

from snakeswan.cli.common import EXIT_FAIL, add_verb, control_path
from snakeswan.control.client import request


def add_parser(sub: Any) -> None:
    p = add_verb(sub, "stop", "stop the daemon (SAs deleted, routes, rules and device removed)", run)
    p.add_argument(
        "--timeout", type=float, default=30.0, metavar="SECONDS", help="wait this long for it to exit"
    )


def daemon_gone(control: str) -> bool:
    """Has the daemon of ``control`` exited? Its lock (daemon.instance) is free once it has."""
    try:
        fd = os.open(control + ".lock", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return not os.path.exists(control)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    return True


def run(args: argparse.Namespace) -> int:
    path = control_path(args)
    request(path, "stop")
    end = time.monotonic() + args.timeout
    while not daemon_gone(path):
        if time.monotonic() > end:
            print(f"snakeswan: the daemon did not exit within {args.timeout:g} s", file=sys.stderr)
            return EXIT_FAIL
        time.sleep(0.05)
    print("daemon stopped")
    return 0
