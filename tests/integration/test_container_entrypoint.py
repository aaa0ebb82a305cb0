"""The container recipe (contrib/container): no container engine runs here, so its entry point is
run as the image would run it, in a network namespace: a bad configuration exits 2 with the
reason, a good one gives a daemon that answers on its control socket and stops cleanly on SIGTERM
(what `docker stop` sends). The Dockerfile names the files it copies; they must exist."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from snakeswan.control.client import request
from tests.daemons import ROOT

pytestmark = pytest.mark.netns
ENTRY = ROOT / "contrib" / "container" / "entrypoint.sh"

CONFIG = """
[connections.gw]
remote_addrs = ["%any"]
local = { auth = "psk", id = "gw.container" }
remote = { auth = "psk" }
[connections.gw.children.net]
local_ts = ["10.231.2.0/24"]
[secrets.ike-x]
secret = "container-psk"
"""


def _env(tmp_path: Path, config: str) -> dict[str, str]:
    conf = tmp_path / "snakeswan.toml"
    conf.write_text(config)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "snakeswan"  # the image's console script, here this checkout's code
    shim.write_text(f'#!/bin/sh\nPYTHONPATH={ROOT / "src"} exec python3 -m snakeswan.cli.main "$@"\n')
    shim.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SNAKESWAN_CONFIG": str(conf),
        "SNAKESWAN_CONTROL": str(tmp_path / "run" / "control.sock"),
    }


def test_the_dockerfile_copies_what_exists() -> None:
    text = (ROOT / "contrib" / "container" / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for name in line.split():
            assert (ROOT / name).exists(), name


def test_entrypoint_refuses_a_bad_config(tmp_path: Path) -> None:
    env = _env(tmp_path, CONFIG.replace("remote_addrs", "remote_adrs"))
    done = subprocess.run(
        ["sh", str(ENTRY)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2 and "remote_adrs" in done.stderr


def test_entrypoint_runs_the_daemon_and_stops_on_sigterm(topology: Any, tmp_path: Path) -> None:
    ns = topology().add("box")
    env = _env(tmp_path, CONFIG)
    proc = ns.popen("sh", str(ENTRY), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sock = env["SNAKESWAN_CONTROL"]
    deadline = time.monotonic() + 30
    conns = None
    while time.monotonic() < deadline and conns is None:
        try:
            conns = request(sock, "list-conns", timeout=2)
        except Exception:
            time.sleep(0.2)
    assert conns and conns[0]["name"] == "gw"
    proc.send_signal(signal.SIGTERM)  # exec: the daemon itself gets it, as with docker stop
    assert proc.wait(timeout=30) == 0
    assert "snakeswan0" not in ns.run("ip", "link", "show").stdout
