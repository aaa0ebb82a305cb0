"""The arguments each control command takes: names, types, which are required (as vici's message
definitions do for strongSwan). :func:`parse_request` turns one request line into a
:class:`Request` or raises :class:`ProtocolError` with the code and a message naming what is wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from snakeswan.control.protocol import COMMANDS, VERSION, Code, ProtocolError, decode

MAX_NAME = 256  # a connection or child name
MAX_TIMEOUT = 24 * 3600.0


@dataclass(frozen=True)
class Arg:
    name: str
    kind: str  # "name" (a non-empty string), "bool", "seconds" (a positive number)
    required: bool = False


_TARGET = (Arg("conn", "name", required=True), Arg("child", "name"))
SCHEMA: dict[str, tuple[Arg, ...]] = {
    "up": (*_TARGET, Arg("wait", "bool"), Arg("timeout", "seconds")),
    "down": (*_TARGET, Arg("wait", "bool")),
    "rekey": _TARGET,
    "list-sas": (),
    "list-conns": (),
    "list-pols": (),
    "list-pools": (),
    "reload": (),
    "log": (Arg("history", "bool"),),
    "stop": (),
}
STREAMED = frozenset({"list-sas", "list-conns"})  # lists that grow with the number of SAs
assert set(SCHEMA) == set(COMMANDS)


@dataclass(frozen=True)
class Request:
    command: str
    args: dict[str, Any]
    version: int

    @property
    def streamed(self) -> bool:
        """The answer is a list sent one item per line (version 2 clients)."""
        return self.command in STREAMED and self.version >= 2


def parse_request(line: bytes) -> Request:
    obj = decode(line)
    unknown = sorted(set(obj) - {"command", "args", "version"})
    if unknown:
        raise ProtocolError(Code.BAD_REQUEST, f"unknown request field {unknown[0]!r}")
    version = obj.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ProtocolError(Code.BAD_REQUEST, "'version' must be a positive integer")
    if version > VERSION:
        raise ProtocolError(
            Code.UNSUPPORTED_VERSION,
            f"protocol version {version} not supported (the daemon speaks {VERSION})",
        )
    command = obj.get("command")
    if not isinstance(command, str):
        raise ProtocolError(Code.BAD_REQUEST, "'command' must be a string naming the command")
    schema = SCHEMA.get(command)
    if schema is None:
        shown = command if len(command) <= MAX_NAME else command[:MAX_NAME] + "..."
        raise ProtocolError(Code.UNKNOWN_COMMAND, f"unknown command {shown!r}; known: {', '.join(COMMANDS)}")
    args = obj.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ProtocolError(Code.BAD_ARGS, f"{command}: 'args' must be an object of named arguments")
    return Request(command, _check_args(command, schema, args), version)


def _check_args(command: str, schema: tuple[Arg, ...], args: dict[str, Any]) -> dict[str, Any]:
    known = {a.name: a for a in schema}
    for name in args:
        if name not in known:
            expected = ", ".join(known) or "none"
            raise ProtocolError(
                Code.BAD_ARGS, f"{command}: unknown argument {name[:MAX_NAME]!r} (arguments: {expected})"
            )
    out: dict[str, Any] = {}
    for a in schema:
        value = args.get(a.name)
        if value is None:
            if a.required:
                raise ProtocolError(Code.BAD_ARGS, f"{command}: argument {a.name!r} is required")
            continue
        out[a.name] = _check(command, a, value)
    return out


def _check(command: str, a: Arg, value: Any) -> Any:
    where = f"{command}: argument {a.name!r}"
    if a.kind == "name":
        if not isinstance(value, str) or not value:
            raise ProtocolError(Code.BAD_ARGS, f"{where} must be a non-empty string, not {_kind(value)}")
        if len(value) > MAX_NAME:
            raise ProtocolError(Code.BAD_ARGS, f"{where} is longer than {MAX_NAME} characters")
        return value
    if a.kind == "bool":
        if not isinstance(value, bool):
            raise ProtocolError(Code.BAD_ARGS, f"{where} must be true or false, not {_kind(value)}")
        return value
    # seconds
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(Code.BAD_ARGS, f"{where} must be a number of seconds, not {_kind(value)}")
    if not math.isfinite(value) or not 0 < value <= MAX_TIMEOUT:
        raise ProtocolError(Code.BAD_ARGS, f"{where} must be between 0 and {MAX_TIMEOUT:g} seconds")
    return float(value)


def _kind(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list"}
    if isinstance(value, str) and not value:
        return "an empty string"
    return names.get(type(value), "an object" if isinstance(value, dict) else type(value).__name__)
