"""The daemon's control server in process (a real Unix socket, the daemon's command handler, its
asyncio loop in a thread): bad requests answered with codes, an overlong line, a client that goes
away without reading, ``list-sas`` streamed with 50,000 SAs, 1,000 clients at once."""

from __future__ import annotations

import asyncio
import json
import selectors
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from snakeswan.control.client import ControlError, request
from snakeswan.control.protocol import MAX_REQUEST, VERSION
from snakeswan.daemon import control_server
from snakeswan.daemon.daemon import Daemon
from tests.unit.cli.test_operator import CONF


class Running:
    """A Daemon (not started: no UDP, no data plane) whose control server runs in a loop thread."""

    def __init__(self, tmp_path: Path) -> None:
        path = tmp_path / "d.toml"
        path.write_text(CONF)
        self.path = str(tmp_path / "c.sock")
        self.daemon = Daemon(str(path), control_path=self.path)
        self.loop = asyncio.new_event_loop()
        self.daemon._loop = self.loop
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(self.daemon.control.start())

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def raw(self, data: bytes, *, shut: bool = True) -> list[dict[str, Any]]:
        """Send ``data`` on a fresh connection, return every answer line."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(20)
            s.connect(self.path)
            s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
            buf = b""
            while chunk := s.recv(65536):
                buf += chunk
        return [json.loads(line) for line in buf.splitlines()]

    def close(self) -> None:
        async def stop() -> None:
            self.daemon.control.close()

        self.call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    # as Daemon.run() does (the CLI's main restores the default for `snakeswan list-sas | head`)
    old = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    r = Running(tmp_path)
    try:
        yield r
    finally:
        r.close()
        signal.signal(signal.SIGPIPE, old)


ISSUE_PROBES = [
    (b'{"command":"up","args":[1]}\n', "bad-args"),
    (b'{"command":"up","args":"x"}\n', "bad-args"),
    (b'{"command":"down","args":{"conn":"c","child":123}}\n', "bad-args"),
    (b"[" * 100000 + b"\n", "line-too-long"),  # longer than MAX_REQUEST: refused before parsing
    (b"[" * 50000 + b"\n", "bad-json"),  # under the limit: the parser's recursion is caught
    (b'{"command":"up","args":{"conn":"nope"}}\n', "failed"),
    (b"hello\n", "bad-json"),
    (b'{"command":"frobnicate"}\n', "unknown-command"),
]


@pytest.mark.parametrize(("line", "code"), ISSUE_PROBES, ids=[c for _, c in ISSUE_PROBES])
def test_each_bad_request_is_answered_with_a_code(running: Running, line: bytes, code: str) -> None:
    answers = running.raw(line)
    assert len(answers) == 1 and answers[0]["ok"] is False, answers
    assert answers[0]["code"] == code and answers[0]["version"] == VERSION and answers[0]["error"]
    assert "Traceback" not in answers[0]["error"]
    assert running.daemon.control.clients == 0 or running.call(_settle(running))


async def _clients(r: Running, n: int) -> bool:
    for _ in range(500):
        if r.daemon.control.clients >= n:
            return True
        await asyncio.sleep(0.01)
    return False


async def _settle(r: Running) -> bool:
    for _ in range(100):
        if r.daemon.control.clients == 0:
            return True
        await asyncio.sleep(0.01)
    return False


def test_a_line_over_the_limit_without_newline_is_read_and_refused(running: Running) -> None:
    # 2 MiB, no newline, then EOF: the whole request is read (the client is not left blocked in
    # its send), answered once, and the next client is served
    answers = running.raw(b"x" * (2 << 20))
    assert [a["code"] for a in answers] == ["line-too-long"]
    assert str(MAX_REQUEST) in answers[0]["error"]
    assert request(running.path, "list-conns")[0]["name"] == "gw"


def test_the_client_sees_daemon_errors_with_their_code(running: Running) -> None:
    with pytest.raises(ControlError, match="no connection named 'nope'") as info:
        request(running.path, "up", conn="nope")
    assert info.value.code == "failed"
    with pytest.raises(ControlError, match="argument 'child' must be a non-empty string") as info:
        request(running.path, "down", conn="gw", child=123)
    assert info.value.code == "bad-args"


def test_a_silent_client_times_out(running: Running) -> None:
    running.daemon.control.request_timeout = 0.2
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(running.path)
        s.sendall(b'{"command":')  # and nothing more
        answer = json.loads(s.recv(65536))
    assert answer["code"] == "timeout"


def _many_sas(d: Daemon, n: int) -> None:
    for i in range(n):
        remote = (f"10.231.{i >> 8 & 255}.{i & 255}", 500)
        d.engine._new_sa(False, i.to_bytes(8, "big"), ("10.231.0.1", 500), remote)


def test_list_sas_streams_50000_sas(running: Running) -> None:
    running.call(_in_loop(_many_sas, running.daemon, 50000))
    sas = request(running.path, "list-sas", timeout=120)
    assert len(sas) == 50000
    assert sas[0]["icookie"] == "0000000000000000" and sas[-1]["icookie"] == (49999).to_bytes(8, "big").hex()
    assert len({s["id"] for s in sas}) == 50000
    # a version 1 client gets one line, as before
    old = running.raw(b'{"command":"list-sas","args":{}}\n')
    assert len(old) == 1 and len(old[0]["result"]) == 50000


def test_list_sas_gives_the_loop_a_turn_between_items(running: Running) -> None:
    """While 5,000 SAs are streamed, other callbacks run (the data plane is not stopped)."""
    running.call(_in_loop(_many_sas, running.daemon, 5000))
    ticks = 0

    def tick() -> None:
        nonlocal ticks
        ticks += 1
        running.loop.call_soon(tick)

    running.loop.call_soon_threadsafe(tick)
    before = ticks
    assert len(request(running.path, "list-sas", timeout=60)) == 5000
    # at least one turn per ITEMS_PER_TURN items
    assert ticks - before >= 5000 // control_server.ITEMS_PER_TURN


async def _in_loop(fn: Any, *args: Any) -> Any:
    return fn(*args)


def test_a_client_that_closes_without_reading_costs_only_its_connection(running: Running) -> None:
    running.call(_in_loop(_many_sas, running.daemon, 20000))
    for _ in range(20):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(running.path)
            s.sendall(b'{"version":2,"command":"list-sas"}\n')
        # closed at once, the answer (megabytes) unread
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:  # and one that resets mid-answer
        s.connect(running.path)
        s.sendall(b'{"version":2,"command":"list-sas"}\n')
        s.recv(1000)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    assert len(request(running.path, "list-sas", timeout=60)) == 20000
    assert running.call(_settle(running))


def many_at_once(path: str, n: int, line: bytes, timeout: float = 60.0) -> list[dict[str, Any]]:
    """``n`` connections opened, each sends ``line``, then every answer is read (all concurrent)."""
    sel = selectors.DefaultSelector()
    socks: list[socket.socket] = []
    bufs: dict[int, bytes] = {}
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            socks.append(s)
            s.settimeout(timeout)
            s.connect(path)  # blocking: waits while the accept queue is full
            s.sendall(line)
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
            bufs[s.fileno()] = b""
        answers: list[dict[str, Any]] = []
        open_count = n
        while open_count:
            events = sel.select(timeout)
            assert events, f"{open_count} of {n} clients got no answer within {timeout}s"
            for key, _ in events:
                s = key.fileobj
                assert isinstance(s, socket.socket)
                chunk = s.recv(65536)
                bufs[s.fileno()] += chunk
                if not chunk:
                    sel.unregister(s)
                    open_count -= 1
                    answers += [json.loads(x) for x in bufs[s.fileno()].splitlines()]
        return answers
    finally:
        sel.close()
        for s in socks:
            s.close()


def test_1000_concurrent_clients_are_all_answered(running: Running) -> None:
    answers = many_at_once(running.path, 1000, b'{"version":2,"command":"list-conns"}\n')
    items = [a for a in answers if "item" in a]
    ends = [a for a in answers if "items" in a]
    assert len(items) == 1000 and len(ends) == 1000 and all(a["ok"] for a in answers)


def test_clients_over_the_limit_are_told_busy(running: Running) -> None:
    running.daemon.control.max_clients = 10
    running.daemon.control.request_timeout = 2.0
    holders = []
    try:
        for _ in range(10):  # ten connections that send nothing yet
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(running.path)
            holders.append(s)
        assert running.call(_clients(running, 10))  # the server has taken all ten in
        with pytest.raises(ControlError, match="serves 10 clients at once") as info:
            request(running.path, "list-conns")
        assert info.value.code == "busy" and running.daemon.control.refused == 1
    finally:
        for s in holders:
            s.close()
    assert running.call(_settle(running))
    assert request(running.path, "list-conns")[0]["name"] == "gw"


def test_an_up_that_times_out_says_what_the_peer_sent_unauthenticated() -> None:
    """The peer's plaintext NO-PROPOSAL-CHOSEN no longer ends the negotiation at once (anyone can
    forge it); an `up` whose wait ends before the retransmissions do still learns of it."""
    from snakeswan.daemon.waiters import Waiters  # noqa: PLC0415
    from snakeswan.trace import Record  # noqa: PLC0415

    class Writer:
        lines: list[bytes] = []

        def write(self, data: bytes) -> None:
            self.lines.append(data)

        async def drain(self) -> None:
            pass

    ws = Waiters()

    async def go() -> list[dict[str, Any]]:
        w = ws.add("gw", ["net"])
        w.ike_sa = 1
        ws.on_record(Record("ike", "unauthenticated_notify_ignored", {"sa": 1, "type": "NO_PROPOSAL_CHOSEN"}))
        writer = Writer()
        await w.send_until_done(writer, 0.05)  # type: ignore[arg-type]
        return [json.loads(x) for x in writer.lines]

    record, outcome = asyncio.run(go())
    assert record["record"]["event"] == "unauthenticated_notify_ignored"
    assert outcome["ok"] is False and outcome["code"] == "timeout"
    assert outcome["error"].endswith(
        "; the peer sent NO_PROPOSAL_CHOSEN, unauthenticated (anyone could have)"
    )
