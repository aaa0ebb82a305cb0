"""Fuzzing the control protocol (a short run in CI; ``bench/fuzz_control.py`` runs it long).

Grammar-aware: requests are built from the protocol's own pieces (known and unknown commands,
argument names from the schemas, values of every JSON type, nesting) and then mutated as bytes
(truncated, a byte flipped, garbage inserted, nesting piled up). Asserted:

- :func:`parse_request` only ever raises :class:`ProtocolError` (with a code of the protocol);
- the daemon's control server, in process, answers every such request with exactly one line
  that is a JSON object with ``ok`` and, when not ok, a known ``code`` and a message without a
  traceback; it keeps serving (and no command with side effects runs from fuzz input: ``stop``,
  ``reload``, ``up`` and ``down`` are answered only after their arguments were checked).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snakeswan.control.protocol import COMMANDS, Code, ProtocolError
from snakeswan.control.schema import SCHEMA, parse_request
from snakeswan.errors import LocalError

CODES = {str(c) for c in Code}
NAMES = sorted({a.name for args in SCHEMA.values() for a in args} | {"x", "", "wait", "args"})

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
requests = st.fixed_dictionaries(
    {},
    optional={
        "command": st.sampled_from([*COMMANDS, "frobnicate", ""]) | json_values,
        "args": st.dictionaries(st.sampled_from(NAMES), json_values, max_size=5) | json_values,
        "version": st.sampled_from([1, 2, 3, 0, -1, "2", None, True]),
        "extra": json_values,
    },
)


def mutate(data: bytes, how: int, where: int, byte: int) -> bytes:
    if not data:
        return data
    i = where % len(data)
    return [
        data,
        data[:i],  # truncated
        data[:i] + bytes([data[i] ^ (byte or 1)]) + data[i + 1 :],  # one byte flipped
        data[:i] + bytes([byte]) * 7 + data[i:],  # garbage inserted
        b"[" * (where % 5000) + data,  # nesting piled up
        data.replace(b":", b"::", 1),
    ][how % 6]


fuzz_lines = st.builds(
    mutate,
    requests.map(lambda r: json.dumps(r).encode()),
    st.integers(0, 5),
    st.integers(0, 1 << 16),
    st.integers(0, 255),
)

SHORT = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SHORT
@given(fuzz_lines)
def test_parse_request_raises_only_protocol_errors(line: bytes) -> None:
    try:
        req = parse_request(line)
    except ProtocolError as e:
        assert str(e.code) in CODES and e.message
        return
    assert req.command in COMMANDS and isinstance(req.args, dict)
    known = {a.name for a in SCHEMA[req.command]}
    assert set(req.args) <= known


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import signal  # noqa: PLC0415

    from tests.unit.control.test_control_server import Running  # noqa: PLC0415

    old = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    r = Running(Path(tmp_path_factory.mktemp("ctl")))
    r.daemon.control._command = _no_side_effects(r.daemon.handle_command)

    async def no_wait(writer: Any, args: dict[str, Any]) -> None:
        raise LocalError("up with wait: not under fuzzing")

    r.daemon.control._up_waiting = no_wait
    yield r
    r.close()
    signal.signal(signal.SIGPIPE, old)


def _no_side_effects(real: Any) -> Any:
    def handle(command: str, args: dict[str, Any]) -> Any:
        if command in ("stop", "reload", "up", "down", "rekey"):  # checked valid: nothing to undo
            return True
        return real(command, args)

    return handle


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(fuzz_lines)
def test_the_server_answers_every_request_with_one_line(server: Any, line: bytes) -> None:
    try:
        if parse_request(line.replace(b"\n", b" ")).command == "log":
            return  # a valid log request streams until the client closes: not a one-line answer
    except ProtocolError:
        pass
    answers = server.raw(line.replace(b"\n", b" ") + b"\n")
    if line.strip() == b"":
        assert answers == []
        return
    if len(answers) > 1:  # a streamed list: items, then the count
        assert all(a.get("ok") for a in answers) and answers[-1].get("items") == len(answers) - 1
        return
    (a,) = answers
    assert isinstance(a, dict) and a["version"] == 2 and isinstance(a["ok"], bool)
    if not a["ok"]:
        assert a["code"] in CODES and "Traceback" not in a["error"]


CORPUS = sorted((Path(__file__).parent / "corpus" / "control").glob("*.bin"))


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_regressions(server: Any, path: Path) -> None:
    """Inputs that once broke the control protocol (the issue's probes; bench/fuzz_control.py saves
    any new failure here): a code and a message, never a traceback."""
    line = path.read_bytes()
    with pytest.raises(ProtocolError):
        parse_request(line)
    (a,) = server.raw(line + b"\n")
    assert a["ok"] is False and a["code"] in CODES and "Traceback" not in a["error"]


def test_the_server_still_serves_after_the_fuzzing(server: Any) -> None:
    from snakeswan.control.client import request  # noqa: PLC0415

    assert request(server.path, "list-conns")[0]["name"] == "gw"
    assert server.daemon.control.clients == 0 or server.call(_settled(server))


async def _settled(server: Any) -> bool:
    import asyncio  # noqa: PLC0415

    for _ in range(100):
        if server.daemon.control.clients == 0:
            return True
        await asyncio.sleep(0.01)
    return False
