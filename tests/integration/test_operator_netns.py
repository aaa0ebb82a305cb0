"""A daemon with its data plane leaves nothing behind: after SIGTERM, SIGINT or `snakeswan stop`
the namespace's links, rules and routes (every table) are what they were before it started, while
an IPsec SA, a trap and a pass shunt were in place; and `snakeswan up` through the real CLI waits for
the tunnel that then carries traffic."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.daemons import ROOT, DaemonProcess
from tests.netns import Netns, ping, site_to_site

pytestmark = pytest.mark.netns

CONF = """
[connections.gw]
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
proposals = ["aes128-sha256-modp2048"]
local = {{ auth = "psk" }}
remote = {{ auth = "psk" }}
[connections.gw.children.net]
local_ts = ["{lnet}"]
remote_ts = ["{rnet}"]
esp_proposals = ["aes128gcm16"]
start_action = "trap"
[connections.gw.children.web]
mode = "pass"
local_ts = ["{lnet}[tcp/5201]"]
remote_ts = ["{rnet}[tcp]"]
[secrets.ike-gw]
id = ["{local}", "{remote}"]
secret = "operator-netns-psk"
"""


def state(ns: Netns) -> dict[str, str]:
    """What a daemon may change in its namespace: links, policy rules, routes of every table."""
    # link names only: a veth's carrier may still be coming up when the first picture is taken
    return {
        "links": " ".join(
            line.split(":")[1].strip() for line in ns.run("ip", "-o", "link").stdout.splitlines()
        ),
        "rules4": ns.run("ip", "-4", "rule", "show").stdout,
        "rules6": ns.run("ip", "-6", "rule", "show").stdout,
        "routes4": ns.run("ip", "-4", "route", "show", "table", "all").stdout,
        "routes6": ns.run("ip", "-6", "route", "show", "table", "all").stdout,
    }


def cli(control: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snakeswan.cli.main", "--control", control, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "stop"])
def test_shutdown_removes_everything_the_daemon_made(topology: Any, tmp_path: Path, how: str) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    before = state(west), state(east)
    e = DaemonProcess(
        tmp_path,
        "east",
        CONF.format(local="10.231.0.2", remote="10.231.0.1", lnet="10.231.2.0/24", rnet="10.231.1.0/24"),
        netns=east.name,
        log_level="info",
    )
    topo.on_close(e.stop)
    w = DaemonProcess(
        tmp_path,
        "west",
        CONF.format(local="10.231.0.1", remote="10.231.0.2", lnet="10.231.1.0/24", rnet="10.231.2.0/24"),
        netns=west.name,
        log_level="info",
    )
    topo.on_close(w.stop)
    up = cli(w.control, "up", "gw/net")
    assert up.returncode == 0, up.stdout + up.stderr
    assert up.stdout.splitlines()[-1].startswith("IKE SA #1 gw established; IPsec SA gw/net established")
    assert ping(west, "10.231.1.1", "10.231.2.1", count=3) >= 2
    running = state(west)
    assert "snakeswan0" in running["links"] and "lookup 220" in running["rules4"]
    assert "ipproto tcp sport 5201" in running["rules4"] and "10.231.2.0/24" in running["routes4"]
    for d in (w, e):
        if how == "stop":
            r = cli(d.control, "stop")
            assert r.returncode == 0 and r.stdout == "daemon stopped\n", r.stderr
        else:
            d.proc.send_signal(getattr(signal, how))
        assert d.proc.wait(15) == 0, d.log()
        assert not Path(d.control).exists()
    for ns, old in zip((west, east), before, strict=True):
        now = state(ns)
        for key, text in old.items():
            assert now[key] == text, f"{ns.name} {key}: before\n{text}\nafter\n{now[key]}"
    assert "stopped" in w.log() and "Traceback" not in w.log() + e.log()
