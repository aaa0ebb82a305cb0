"""A blocking client for the daemon's control socket (used by the CLI and by tests)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

from snakeswan.control.protocol import MAX_LINE, decode, encode
from snakeswan.errors import LocalError


class ControlError(LocalError):
    """The daemon is not reachable, or answered with an error."""


def _connect(path: str, timeout: float | None) -> socket.socket:
    if not os.path.exists(path):
        raise ControlError(f"the snakeswan daemon is not running (no control socket at {path})")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise ControlError(f"the snakeswan daemon is not running ({path}: {e.strerror})") from None
    return s


def _lines(s: socket.socket) -> Iterator[bytes]:
    buf = b""
    while True:
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            raise ControlError(f"the daemon did not answer within {s.gettimeout():g} s") from None
        except OSError as e:
            raise ControlError(f"the control connection failed: {e.strerror}") from None
        if not chunk:
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield line
        if len(buf) > MAX_LINE:
            raise ControlError("control response line too long")


def request(path: str, command: str, timeout: float | None = 30.0, **args: Any) -> Any:
    """Send one request and return its result; raise ControlError with the daemon's message."""
    with _connect(path, timeout) as s:
        s.sendall(encode({"command": command, "args": args}))
        for line in _lines(s):
            resp = decode(line)
            if not resp.get("ok"):
                raise ControlError(str(resp.get("error", "unknown error")))
            return resp.get("result")
    raise ControlError("the daemon closed the connection without answering")


def call(
    path: str,
    command: str,
    args: dict[str, Any],
    on_record: Callable[[dict[str, Any]], None],
    timeout: float | None = 30.0,
) -> Any:
    """A request whose answer may be preceded by records (``up``/``down`` with ``wait``): each one
    is passed to ``on_record``; return the result, or raise ControlError with the daemon's reason."""
    with _connect(path, timeout) as s:
        s.sendall(encode({"command": command, "args": args}))
        for line in _lines(s):
            resp = decode(line)
            if not resp.get("ok"):
                raise ControlError(str(resp.get("error", "unknown error")))
            if "record" in resp:
                on_record(resp["record"])
                continue
            return resp.get("result")
    raise ControlError("the daemon closed the connection without answering")


def stream(path: str, command: str, **args: Any) -> Iterator[dict[str, Any]]:
    """Send a streaming request (``log``) and yield each record until the daemon closes."""
    with _connect(path, None) as s:
        s.sendall(encode({"command": command, "args": args}))
        for line in _lines(s):
            resp = decode(line)
            if not resp.get("ok"):
                raise ControlError(str(resp.get("error", "unknown error")))
            yield resp.get("record", {})
