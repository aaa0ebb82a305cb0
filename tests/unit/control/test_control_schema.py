"""The control protocol's request parsing: each malformed request gets a code and a message naming
what is wrong (never an exception other than ProtocolError), each valid one its typed arguments."""

from __future__ import annotations

import json
from typing import Any

import pytest

from snakeswan.control.protocol import COMMANDS, MAX_REQUEST, VERSION, Code, ProtocolError, encode
from snakeswan.control.schema import SCHEMA, parse_request


def req(obj: Any) -> bytes:
    return json.dumps(obj).encode()


BAD: list[tuple[str, bytes, Code, str]] = [
    ("args a list", req({"command": "up", "args": [1]}), Code.BAD_ARGS, "'args' must be an object"),
    ("args a string", req({"command": "up", "args": "x"}), Code.BAD_ARGS, "'args' must be an object"),
    (
        "child a number",
        req({"command": "down", "args": {"conn": "c", "child": 123}}),
        Code.BAD_ARGS,
        "argument 'child' must be a non-empty string, not a number",
    ),
    ("conn missing", req({"command": "up", "args": {}}), Code.BAD_ARGS, "argument 'conn' is required"),
    ("conn empty", req({"command": "up", "args": {"conn": ""}}), Code.BAD_ARGS, "not an empty string"),
    ("conn a list", req({"command": "rekey", "args": {"conn": ["a"]}}), Code.BAD_ARGS, "not a list"),
    (
        "conn too long",
        req({"command": "up", "args": {"conn": "x" * 300}}),
        Code.BAD_ARGS,
        "longer than 256",
    ),
    (
        "wait a string",
        req({"command": "up", "args": {"conn": "c", "wait": "yes"}}),
        Code.BAD_ARGS,
        "true or false",
    ),
    (
        "timeout a bool",
        req({"command": "up", "args": {"conn": "c", "timeout": True}}),
        Code.BAD_ARGS,
        "number of seconds, not a boolean",
    ),
    (
        "timeout negative",
        req({"command": "up", "args": {"conn": "c", "timeout": -1}}),
        Code.BAD_ARGS,
        "between",
    ),
    (
        "timeout huge",
        req({"command": "up", "args": {"conn": "c", "timeout": 1e300}}),
        Code.BAD_ARGS,
        "between",
    ),
    ("timeout NaN", b'{"command":"up","args":{"conn":"c","timeout":NaN}}', Code.BAD_ARGS, "between"),
    (
        "unknown arg",
        req({"command": "list-sas", "args": {"ike": "x"}}),
        Code.BAD_ARGS,
        "unknown argument 'ike'",
    ),
    (
        "timeout on down",
        req({"command": "down", "args": {"conn": "c", "timeout": 1}}),
        Code.BAD_ARGS,
        "unknown",
    ),
    ("unknown command", req({"command": "frobnicate"}), Code.UNKNOWN_COMMAND, "unknown command 'frobnicate'"),
    ("command a number", req({"command": 1}), Code.BAD_REQUEST, "'command' must be a string"),
    ("no command", req({"args": {}}), Code.BAD_REQUEST, "'command' must be a string"),
    ("unknown field", req({"command": "stop", "cmd": 1}), Code.BAD_REQUEST, "unknown request field 'cmd'"),
    ("a list", req([1, 2]), Code.BAD_REQUEST, "must be a JSON object"),
    ("a string", req("up"), Code.BAD_REQUEST, "must be a JSON object"),
    ("deep nesting", b"[" * 100000, Code.BAD_JSON, "nested too deeply"),
    ("deep objects", b'{"a":' * 100000, Code.BAD_JSON, "nested too deeply"),
    ("not JSON", b"up lo", Code.BAD_JSON, "not JSON"),
    ("not UTF-8", b'{"command":"\xff\xfe"}', Code.BAD_JSON, "not JSON"),
    (
        "future version",
        req({"version": VERSION + 1, "command": "stop"}),
        Code.UNSUPPORTED_VERSION,
        "version 3",
    ),
    ("version a string", req({"version": "2", "command": "stop"}), Code.BAD_REQUEST, "'version'"),
    ("version zero", req({"version": 0, "command": "stop"}), Code.BAD_REQUEST, "'version'"),
]


@pytest.mark.parametrize(("what", "line", "code", "needle"), BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_a_code_and_a_message(what: str, line: bytes, code: Code, needle: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request(line)
    assert info.value.code is code and needle in info.value.message, info.value.message
    assert len(info.value.message) < 400  # a message, not an echo of the request


def test_valid_requests_are_typed() -> None:
    r = parse_request(
        encode({"command": "up", "args": {"conn": "c", "child": None, "wait": True, "timeout": 5}})
    )
    assert (r.command, r.args, r.version) == ("up", {"conn": "c", "wait": True, "timeout": 5.0}, VERSION)
    assert r.streamed is False
    old = parse_request(b'{"command":"list-sas","args":{}}')  # version 1: no version field
    assert old.version == 1 and not old.streamed
    assert parse_request(encode({"command": "list-sas", "args": None})).streamed
    assert parse_request(encode({"command": "down", "args": {"conn": "c", "child": "n"}})).args == {
        "conn": "c",
        "child": "n",
    }


def test_every_command_has_a_schema_and_encode_carries_the_version() -> None:
    assert set(SCHEMA) == set(COMMANDS)
    line = encode({"ok": True, "result": 1})
    assert line.endswith(b"\n") and json.loads(line) == {"version": VERSION, "ok": True, "result": 1}
    assert MAX_REQUEST >= 4096
