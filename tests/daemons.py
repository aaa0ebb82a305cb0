"""Running ``snakeswan daemon`` processes for tests, and talking to them over their control sockets."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from snakeswan.control.client import ControlError, request

ROOT = Path(__file__).resolve().parents[1]


def free_udp_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` UDP ports free on ``host`` right now (bound and released)."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((host, 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class DaemonProcess:
    """``snakeswan daemon -c CONFIG --control SOCK`` as a subprocess (optionally inside a netns)."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        config: str,
        *,
        netns: str | None = None,
        keylog: bool = False,
        log_level: str = "debug",
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.dir = workdir
        self.config_path = workdir / f"{name}.toml"
        self.config_path.write_text(config)
        self.control = str(workdir / f"{name}.sock")
        self.log_path = workdir / f"{name}.log"
        self.keylog_path = workdir / f"{name}.keys" if keylog else None
        cmd = [sys.executable, "-m", "snakeswan.cli.main", "daemon", "-c", str(self.config_path)]
        cmd += ["--control", self.control, "--log-level", log_level]
        if self.keylog_path:
            cmd += ["--keylog", str(self.keylog_path)]
        cmd += args
        if netns:
            cmd = [shutil.which("ip") or "ip", "netns", "exec", netns, *cmd]  # (env may hide ip)
        env = dict(os.environ, **(env or {}), PYTHONPATH=str(ROOT / "src"))
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 15.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon {self.name} exited {self.proc.returncode}:\n{self.log()}")
            try:
                request(self.control, "list-conns", timeout=2)
                return
            except ControlError:
                time.sleep(0.05)
        raise AssertionError(f"daemon {self.name} did not open its control socket:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def cmd(self, command: str, **args: Any) -> Any:
        return request(self.control, command, timeout=10, **args)

    def sas(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.cmd("list-sas")
        return result

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
