"""The ``snakeswan`` command: help, bad configuration (exit 2, one clear message), no daemon (exit 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from snakeswan.cli.main import main

GOOD = """
[connections.gw]
local_addrs = ["10.231.0.1"]
remote_addrs = ["10.231.0.2"]
proposals = ["aes128-sha256-modp2048"]
local = { auth = "psk" }
remote = { auth = "psk" }
[connections.gw.children.net]
local_ts = ["10.231.1.0/24"]
remote_ts = ["10.231.2.0/24"]
esp_proposals = ["aes128gcm16-modp2048"]
[secrets.ike-gw]
id = ["10.231.0.1", "10.231.0.2"]
secret = "x"
"""

BAD = [
    ("unknown top-level key", GOOD + "\n[bogus]\nx = 1\n", "bogus"),
    (
        "unknown connection key",
        GOOD.replace("proposals =", "propsals = ['aes128-sha256-modp2048']\nproposals ="),
        "propsals",
    ),
    ("bad proposal", GOOD.replace("aes128-sha256-modp2048", "aes128-sha257-modp2048"), "sha257"),
    ("bad esp proposal", GOOD.replace("aes128gcm16-modp2048", "aes128gcm17"), "aes128gcm17"),
    ("bad mode", GOOD.replace("esp_proposals", 'mode = "tunel"\nesp_proposals'), "tunel"),
    ("bad traffic selector", GOOD.replace("10.231.1.0/24", "10.231.1.0/33"), "local_ts"),
    ("bad address", GOOD.replace('"10.231.0.2"]', '"10.231.0.256"]', 1), "remote_addrs"),
    ("missing secret", GOOD.split("[secrets", maxsplit=1)[0], "secret"),
    (
        "bad duration",
        GOOD.replace("[connections.gw.children", 'rekey_time = "4x"\n[connections.gw.children'),
        "rekey_time",
    ),
    ("not TOML", "this is [not toml", "TOML"),
]


def test_help_lists_every_verb(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for verb in ("daemon", "up", "down", "list-sas", "list-conns", "reload", "log", "demo"):
        assert verb in out


def test_no_verb_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2


@pytest.mark.parametrize(("what", "text", "needle"), BAD, ids=[b[0] for b in BAD])
def test_bad_config_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str, text: str, needle: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    rc = main(["daemon", "-c", str(path), "--control", str(tmp_path / "c.sock")])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("snakeswan: ") and str(path) in err and needle in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "c.sock").exists()  # nothing started


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["daemon", "-c", str(tmp_path / "nope.toml")])
    assert rc == 2 and "nope.toml" in capsys.readouterr().err


@pytest.mark.parametrize("verb", [["up", "gw"], ["down", "gw/net"], ["list-sas"], ["list-conns"], ["reload"]])
def test_no_daemon_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str], verb: list[str]) -> None:
    rc = main(["--control", str(tmp_path / "none.sock"), *verb])
    assert rc == 1
    assert "daemon is not running" in capsys.readouterr().err


def test_demo_negotiates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--in-memory"]) == 0
    out = capsys.readouterr().out
    assert "== tunnel negotiated" in out and "ESP SA 10.1.0.0/24 === 10.2.0.0/24" in out
    assert (
        main(["demo", "--in-memory", "--aggressive", "--ike", "aes256-sha1-ecp256", "--esp", "aes256-sha256"])
        == 0
    )
