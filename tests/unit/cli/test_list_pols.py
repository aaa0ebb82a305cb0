"""``snakeswan list-pols``: the human rendering of the daemon's policy listing, and no daemon."""

from __future__ import annotations

from pathlib import Path

import pytest

from snakeswan.cli.list_pols import render_policies
from snakeswan.cli.main import main

POLS = {
    "policies": [
        {
            "conn": "%ike",
            "child": "bypass",
            "action": "bypass",
            "local_ts": "10.231.0.1/32[udp/500]",
            "remote_ts": "0.0.0.0/0",
            "priority": 0,
            "installed": False,
        },
        {
            "conn": "gw",
            "child": "block",
            "action": "discard",
            "local_ts": "10.231.1.0/24",
            "remote_ts": "10.231.2.7/32",
            "priority": 4099,
            "installed": False,
        },
        {
            "conn": "gw",
            "child": "net",
            "action": "protect",
            "local_ts": "10.231.1.0/24",
            "remote_ts": "10.231.2.0/24",
            "priority": 4163,
            "installed": True,
        },
    ],
    "drops": {"discard": 3},
    "unrouted": 0,
    "table": 220,
    "fwmark": 0x42,
    "rules": ["-4 not fwmark 0x42 lookup 220 priority 220"],
}


def test_render_policies() -> None:
    assert render_policies(POLS).splitlines() == [
        "(own IKE, ESP and AH): PASS",
        "  10.231.0.1/32[udp/500] === 0.0.0.0/0",
        "gw/block: DROP",
        "  10.231.1.0/24 === 10.231.2.7/32",
        "gw/net: PROTECT, SA installed",
        "  10.231.1.0/24 === 10.231.2.0/24",
        "drops: discard 3; unrouted (no policy) 0",
        "routes in table 220, our sockets marked 0x42",
        "  rule -4 not fwmark 0x42 lookup 220 priority 220",
    ]
    assert "routes in table" not in render_policies({**POLS, "table": None, "rules": []})
    workers = [
        {"worker": 0, "pid": 10, "handed_out": 2, "handed_in": 0, "handoff_lost": 0},
        {"worker": 1, "pid": 11, "tun_read": 5, "esp_read": 7},
        {"worker": 2, "pid": 12},
    ]
    assert render_policies({**POLS, "workers": workers}).splitlines()[-3:] == [
        "data-plane worker 0 (pid 10): handed out 2, handed in 0, handoff lost 0",
        "data-plane worker 1 (pid 11): tun read 5, esp read 7",
        "data-plane worker 2 (pid 12): no report yet",
    ]


def test_list_pols_without_daemon(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--control", str(tmp_path / "none.sock"), "list-pols"]) == 1
    assert "daemon is not running" in capsys.readouterr().err
