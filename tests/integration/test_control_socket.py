"""The issue's control-socket probes against a running ``snakeswan daemon`` process: each bad request
answered with a code (no traceback in the answer or the log), clients that close without reading,
1,000 clients at once, and the daemon still serving afterwards."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from tests.daemons import DaemonProcess, wait_for
from tests.integration.test_daemon_loopback import configs
from tests.unit.control.test_control_server import many_at_once

PROBES = [
    (b"x" * ((1 << 20) + 10) + b"\n", "line-too-long"),
    (b'{"command":"up","args":[1]}\n', "bad-args"),
    (b'{"command":"up","args":"x"}\n', "bad-args"),
    (b'{"command":"down","args":{"conn":"c","child":123}}\n', "bad-args"),
    (b"[" * 100000 + b"\n", "line-too-long"),
    (b"[" * 60000 + b"\n", "bad-json"),
]


def ask(path: str, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect(path)
        s.sendall(data)
        buf = b""
        while chunk := s.recv(65536):
            buf += chunk
    return buf


def test_probes_against_a_running_daemon(tmp_path: Path) -> None:
    ca, _ = configs(False)
    a = DaemonProcess(tmp_path, "a", ca, log_level="info")
    try:
        for line, code in PROBES:
            answers = [json.loads(x) for x in ask(a.control, line).splitlines()]
            assert [(x["ok"], x["code"]) for x in answers] == [(False, code)], (line[:40], answers)
        for _ in range(50):  # closed without reading the answer
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(a.control)
                s.sendall(b'{"version":2,"command":"list-conns"}\n')
        answers = many_at_once(a.control, 1000, b'{"version":2,"command":"list-sas"}\n')
        assert len(answers) == 1000 and all(x == {"version": 2, "ok": True, "items": 0} for x in answers)
        assert [c["name"] for c in a.cmd("list-conns")] == ["lo"]
        assert a.proc.poll() is None
        assert "Traceback" not in a.log()
    finally:
        assert a.stop() == 0


def test_daemon_impairment_is_loud_and_recovered_from(tmp_path: Path) -> None:
    """``snakeswan daemon --impair drop:MM3 --impair corrupt:QM1``: the first MM3 and QM1 never reach
    the peer intact, the retransmissions do; the log says so, loudly."""
    ca, cb = configs(False)
    a = DaemonProcess(
        tmp_path, "a", ca, log_level="info", args=("--impair", "drop:MM3", "--impair", "corrupt:QM1")
    )
    try:
        b = DaemonProcess(tmp_path, "b", cb, log_level="info")
        try:
            a.cmd("up", conn="lo")
            wait_for(
                lambda: a.sas() and a.sas()[0]["children"],
                timeout=60,
                what="the tunnel despite the impairments",
            )
            log = a.log()
            assert "WARNING" in log and "IMPAIRMENTS ACTIVE" in log and "drop:MM3:1, corrupt:QM1:1" in log
            assert "drop msg=MM3" in log and "corrupt msg=QM1" in log
            assert "snakeswan.impair" in log and "snakeswan.impair" not in b.log()
            assert "IMPAIRMENTS ACTIVE" not in b.log()
        finally:
            b.stop()
    finally:
        assert a.stop() == 0
