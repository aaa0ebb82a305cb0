"""A blocking client for the daemon's control socket (used by the CLI and by tests)."""

from __future__ import annotations

import errno
import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

from snakeswan.control.protocol import MAX_RESPONSE, VERSION, ProtocolError, decode, encode
from snakeswan.errors import LocalError


class ControlError(LocalError):
    """The daemon is not reachable, or answered with an error (``code``: the protocol's error code,
    ``None`` when the daemon did not answer)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


def _connect(path: str, timeout: float | None) -> socket.socket:
    if not os.path.exists(path):
        raise ControlError(f"the snakeswan daemon is not running (no control socket at {path})")
    deadline = time.monotonic() + (timeout if timeout is not None else 30.0)
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(path)
            return s
        except OSError as e:
            s.close()
            # EAGAIN: the daemon's accept queue is full (many clients at once): try again shortly
            if e.errno == errno.EAGAIN and time.monotonic() < deadline:
                time.sleep(0.01)
                continue
            raise ControlError(f"the snakeswan daemon is not running ({path}: {e.strerror})") from None


def _lines(s: socket.socket) -> Iterator[dict[str, Any]]:
    buf = b""
    while True:
        try:
            chunk = s.recv(1 << 18)
        except TimeoutError:
            raise ControlError(f"the daemon did not answer within {s.gettimeout():g} s") from None
        except OSError as e:
            raise ControlError(f"the control connection failed: {e.strerror}") from None
        if not chunk:
            return
        buf += chunk
        if b"\n" in chunk:
            *lines, buf = buf.split(b"\n")
            for line in lines:
                yield _decode(line)
        if len(buf) > MAX_RESPONSE:
            raise ControlError(f"control response line longer than {MAX_RESPONSE} bytes")


def _decode(line: bytes) -> dict[str, Any]:
    try:
        resp = decode(line)
    except ProtocolError as e:
        raise ControlError(f"the daemon's answer is not understood: {e.message}") from None
    if not resp.get("ok"):
        raise ControlError(str(resp.get("error", "unknown error")), resp.get("code"))
    return resp


def _send(s: socket.socket, command: str, args: dict[str, Any]) -> OSError | None:
    """Send the request. A daemon that refuses us (busy) writes its answer and closes, possibly
    before our request is through: a broken pipe is returned, not raised, so that the caller reads
    that answer first."""
    try:
        s.sendall(encode({"command": command, "args": args}))
    except (BrokenPipeError, ConnectionResetError) as e:
        return e
    except OSError as e:
        raise ControlError(f"the control connection failed: {e.strerror}") from None
    return None


def call(
    path: str,
    command: str,
    args: dict[str, Any],
    on_record: Callable[[dict[str, Any]], None] | None = None,
    timeout: float | None = 30.0,
) -> Any:
    """One request: return its result (a streamed list is collected), or raise ControlError with
    the daemon's reason. Records before the answer (``up``/``down`` with ``wait``) go to
    ``on_record``."""
    with _connect(path, timeout) as s:
        broken = _send(s, command, args)
        items: list[Any] = []
        for resp in _lines(s):
            if resp.get("version") != VERSION:
                raise ControlError(f"the daemon speaks control protocol version {resp.get('version', 1)}, "
                                   f"this client {VERSION}: restart the daemon")  # fmt: skip
            if "record" in resp:
                if on_record is not None:
                    on_record(resp["record"])
                continue
            if "item" in resp:
                items.append(resp["item"])
                continue
            if "items" in resp:
                if resp["items"] != len(items):
                    raise ControlError(f"the daemon announced {resp['items']} items and sent {len(items)}")
                return items
            return resp.get("result")
    if broken is not None:
        raise ControlError(f"the control connection failed: {broken.strerror}")
    raise ControlError("the daemon closed the connection without answering")


def request(path: str, command: str, timeout: float | None = 30.0, **args: Any) -> Any:
    """Send one request and return its result; raise ControlError with the daemon's message."""
    return call(path, command, args, None, timeout)


def stream(path: str, command: str, **args: Any) -> Iterator[dict[str, Any]]:
    """Send a streaming request (``log``) and yield each record until the daemon closes."""
    with _connect(path, None) as s:
        if (broken := _send(s, command, args)) is not None:
            raise ControlError(f"the control connection failed: {broken.strerror}")
        for resp in _lines(s):
            yield resp.get("record", {})
