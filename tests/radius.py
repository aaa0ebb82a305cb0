"""A real FreeRADIUS 3 server for tests, started in a network namespace on its loopback.

The Debian configuration (``/etc/freeradius/3.0``) is copied to a private directory, its users
file gets the test users (Cleartext-Password), ``clients.conf`` one client (127.0.0.1 with the
test's secret), authentication results are logged ("Login OK: [alice]" / "Login incorrect"), and
the server runs in the foreground as root (no privilege drop: the copy lives in a root-only
temporary directory).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.netns import Netns

RADDB = Path("/etc/freeradius/3.0")


def require_freeradius() -> None:
    if shutil.which("freeradius") is None or not RADDB.is_dir():
        pytest.skip("FreeRADIUS is not installed (Debian freeradius; scripts/setup.sh installs it)")


class FreeRadius:
    def __init__(self, ns: Netns, workdir: Path, users: dict[str, str], secret: str) -> None:
        self.ns = ns
        self.dir = workdir / "raddb"
        self.log_path = workdir / "radius.log"
        shutil.copytree(RADDB, self.dir, symlinks=True)
        conf = self.dir / "radiusd.conf"
        text = conf.read_text()
        for key in ("user = freerad", "group = freerad"):
            text = text.replace(f"\t{key}", f"#\t{key}")
        text = text.replace("\tauth = no", "\tauth = yes")
        conf.write_text(text)
        authorize = self.dir / "mods-config" / "files" / "authorize"
        entries = "".join(f'{u} Cleartext-Password := "{p}"\n' for u, p in users.items())
        authorize.write_text(entries + authorize.read_text())
        (self.dir / "clients.conf").write_text(
            f"client test {{\n\tipaddr = 127.0.0.1\n\tsecret = {secret}\n}}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20) -> FreeRadius:
        self.ns.run("ip", "link", "set", "lo", "up")
        out = self.log_path.open("wb")
        self.proc = self.ns.popen(
            "freeradius", "-f", "-l", "stdout", "-d", str(self.dir), stdout=out, stderr=out
        )
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if "Ready to process requests" in self.log():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"freeradius exited {self.proc.returncode}:\n{self.log()[-3000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"freeradius not ready after {timeout}s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
