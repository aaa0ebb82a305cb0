"""Operator-facing pieces without a daemon process: `check`, one-line errors, the listing filters,
log set-up (levels per subsystem, each line once), the instance lock and the control socket path,
and IPsec SAs refused when the configured data plane is missing."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from snakeswan.cli import logsetup
from snakeswan.cli.list_conns import _side
from snakeswan.cli.list_pols import hide_own_bypass
from snakeswan.cli.list_sas import select
from snakeswan.cli.main import main
from snakeswan.daemon.daemon import Daemon
from snakeswan.daemon.instance import InstanceLock, claim_socket_path
from snakeswan.daemon.waiters import Waiters
from snakeswan.errors import LocalError
from snakeswan.ike.events import (
    ChildSaEstablished,
    ChildSaInfo,
    IkeSaDeleted,
    NegotiationFailed,
    SaKeys,
    XauthResult,
)
from snakeswan.ike.sa import IkeState
from snakeswan.trace import Record
from tests.unit.cli.test_cli import BAD, GOOD
from tests.unit.cli.test_list_pols import POLS


def test_check_good_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "good.toml"
    path.write_text(GOOD)
    assert main(["check", "-c", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: OK, 1 connection (gw), 1 child\n"


@pytest.mark.parametrize(("what", "text", "needle"), BAD, ids=[b[0] for b in BAD])
def test_check_bad_file_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str, text: str, needle: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["check", "-c", str(path)]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.startswith(f"snakeswan: {path}") and needle in out.err
    assert len(out.err.strip().splitlines()) == 1


def test_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-c", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml" in capsys.readouterr().err


def test_demo_bad_proposal_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--in-memory", "--ike", "aes128-sha257-modp2048"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("snakeswan: ") and "sha257" in err and len(err.strip().splitlines()) == 1


def test_list_sas_filters() -> None:
    sas = [
        {"conn": "a", "children": [{"name": "x"}, {"name": "y"}]},
        {"conn": "b", "children": [{"name": "x"}]},
        {"conn": "a", "children": []},
    ]
    assert select(sas, None, None) == sas
    assert select(sas, "a", None) == [sas[0], sas[2]]
    assert select(sas, None, "x") == [
        {"conn": "a", "children": [{"name": "x"}]},
        {"conn": "b", "children": [{"name": "x"}]},
    ]
    assert select(sas, "a", "y") == [{"conn": "a", "children": [{"name": "y"}]}]
    assert select(sas, "b", "y") == []


def test_list_pols_hides_own_bypass() -> None:
    shown, hidden = hide_own_bypass(POLS)
    assert hidden == 1 and [p["child"] for p in shown["policies"]] == ["block", "net"]
    assert shown["drops"] == POLS["drops"] and len(POLS["policies"]) == 3  # the input is unchanged


def test_list_conns_unset_id_is_not_none() -> None:
    assert _side({"auth": "psk", "id": None}) == "psk"
    assert _side({"auth": "pubkey", "id": "@west"}) == "pubkey '@west'"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name in ("snakeswan.ike", "snakeswan.dataplane"):
        logging.getLogger(name).setLevel(logging.NOTSET)


def test_log_levels_per_subsystem(restore_logging: None) -> None:
    levels = logsetup.parse_levels("warning,ike=debug")
    assert levels == {"": logging.WARNING, "ike": logging.DEBUG}
    with pytest.raises(Exception, match="unknown level 'loud'"):
        logsetup.parse_levels("ike=loud")
    out = io.StringIO()
    logsetup.configure(levels, "text", out)
    logging.getLogger("snakeswan.ike").debug("kept")
    logging.getLogger("snakeswan.daemon").info("dropped")
    logging.getLogger("snakeswan.daemon").warning("warned")
    lines = out.getvalue().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "DEBUG   snakeswan.ike: kept",
        "WARNING snakeswan.daemon: warned",
    ]
    assert lines[0][:4].isdigit() and lines[0][10] == "T"  # 2026-11-30T03:21:14.123


def test_log_formats(restore_logging: None) -> None:
    out = io.StringIO()
    logsetup.configure({"": logging.INFO}, "json", out)
    logging.getLogger("snakeswan.daemon").info("hello %s", "there")
    obj = json.loads(out.getvalue())
    assert (obj["level"], obj["logger"], obj["message"]) == ("info", "snakeswan.daemon", "hello there")
    out = io.StringIO()
    logsetup.configure({"": logging.INFO}, "journal", out)
    logging.getLogger("snakeswan.daemon").error("bad")
    assert out.getvalue() == "<3>snakeswan.daemon: bad\n"


CONF = GOOD.replace("[connections.gw]", "[daemon]\nport = 1\nnat_port = 2\n[connections.gw]")


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO])
def test_each_trace_record_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, restore_logging: None, level: int
) -> None:
    path = tmp_path / "d.toml"
    path.write_text(CONF)
    d = Daemon(str(path), control_path=str(tmp_path / "c.sock"))
    caplog.set_level(level)
    d.tracer.emit("ike", "something_happened", sa=7)
    assert [r.getMessage() for r in caplog.records] == ["something_happened sa=7"]


def test_instance_lock(tmp_path: Path) -> None:
    control = str(tmp_path / "run" / "c.sock")
    first, second = InstanceLock(control), InstanceLock(control)
    first.acquire()
    try:
        assert Path(control + ".lock").read_text() == f"{os.getpid()}\n"
        with pytest.raises(LocalError, match=rf"another snakeswan daemon \(pid {os.getpid()}\) is running"):
            second.acquire()
    finally:
        first.release()
    second.acquire()  # free again once its holder let go (or died)
    second.release()


def test_claim_socket_path(tmp_path: Path) -> None:
    path = str(tmp_path / "c.sock")
    claim_socket_path(path)  # nothing there
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as live:
        live.bind(path)
        live.listen(1)
        with pytest.raises(LocalError, match="a daemon is answering on"):
            claim_socket_path(path)
        assert os.path.exists(path)
    claim_socket_path(path)  # closed: stale, removed
    assert not os.path.exists(path)
    Path(path).write_text("x")
    with pytest.raises(LocalError, match="is not a socket"):
        claim_socket_path(path)


def _child() -> ChildSaInfo:
    keys = SaKeys(b"k" * 16, b"")
    return ChildSaInfo(
        "gw", "net", 1, 3, 20, 128, None, 0x1234, 0x5678, keys, keys, "tunnel", False,
        ("10.231.0.1", 500), ("10.231.0.2", 500), "10.231.1.0/24", "10.231.2.0/24",
        3600, None, None, False,
    )  # fmt: skip


def test_ipsec_sa_refused_without_the_configured_data_plane(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "d.toml"
    path.write_text(CONF)
    d = Daemon(str(path), control_path=str(tmp_path / "c.sock"))
    d.dataplane_error = "cannot open /dev/net/tun: Permission denied"
    with pytest.raises(LocalError, match=r"gw: its IPsec SAs need the data plane.*Permission denied.*"):
        d.handle_command("up", {"conn": "gw"})
    # an SA a peer negotiated with us is deleted at once, not left to carry nothing
    caplog.set_level(logging.INFO)
    d._on_event(ChildSaEstablished(_child()), 0.0)
    assert "IPsec SA gw/net could not be installed in the data plane: the data plane is not available" in (
        caplog.text
    )
    assert "IPsec SA gw/net established" not in caplog.text


def test_tun_open_hints_say_what_is_true(tmp_path: Path) -> None:
    from snakeswan.io.tun import Tun, _open_hint  # noqa: PLC0415 - only this test needs the driver

    with pytest.raises(LocalError, match=r"No such file.*load the tun module"):
        Tun("sswtest0", path=str(tmp_path / "missing"))
    assert _open_hint(errno.EACCES).startswith("run as root")  # not the module: it is there


def _drain(w: Any) -> list[dict[str, Any]]:
    out = []
    while not w.queue.empty():
        out.append(w.queue.get_nowait())
    return out


def test_waiter_streams_its_sa_and_ends_with_the_outcome() -> None:
    ws = Waiters()
    w = ws.add("gw", ["net"])
    w.ike_sa = 3
    ws.on_record(Record("ike", "sent", {"sa": 3, "msg": "MM1"}))
    ws.on_record(Record("ike", "sent", {"sa": 4, "msg": "MM1"}))  # another SA's: not ours
    sa = SimpleNamespace(unique_id=3, state=IkeState.CONNECTING, children=[])
    ws.check([sa])
    assert [i["record"]["text"] for i in _drain(w)] == ["sent sa=3 msg=MM1"] and not w.done
    sa.state = IkeState.ESTABLISHED
    ws.check([sa])
    assert not w.done  # the IKE SA alone is not the outcome: its child is asked for
    sa.children = [SimpleNamespace(child="net", spi_in=1, spi_out=2)]
    ws.check([sa])
    (item,) = _drain(w)
    assert item == {
        "ok": True,
        "result": {
            "ike_sa": 3,
            "message": "IKE SA #3 gw established; IPsec SA gw/net established (SPIs 00000001_i 00000002_o)",
        },
    }


def test_waiter_failures() -> None:
    ws = Waiters()
    a, b, c = ws.add("gw", ["net"]), ws.add("ra", []), ws.add("gw", ["net"])
    a.ike_sa, b.ike_sa, c.ike_sa = 1, 2, 5
    ws.on_event(NegotiationFailed(1, "gw", "phase1", "peer sent AUTHENTICATION_FAILED"))
    ws.on_event(XauthResult(2, "ra", "alice", False, "wrong password", server=False))
    ws.fail(5, "IPsec SA gw/net not installed: no data plane")
    ws.on_event(IkeSaDeleted(1, "gw", "later"))  # the first outcome stays
    assert _drain(a) == [{"ok": False, "error": "gw: phase1 failed: peer sent AUTHENTICATION_FAILED"}]
    assert _drain(b)[0] == {"ok": False, "error": "ra: XAUTH of 'alice' failed: wrong password"}
    assert _drain(c) == [{"ok": False, "error": "IPsec SA gw/net not installed: no data plane"}]


def test_log_format_auto_detects_the_journal(tmp_path: Path) -> None:
    with open(tmp_path / "stderr", "w") as stream:
        st = os.fstat(stream.fileno())
        assert logsetup.default_format(stream, {}) == "text"
        assert logsetup.default_format(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}) == "journal"
        assert logsetup.default_format(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}) == "text"
        assert logsetup.default_format(stream, {"JOURNAL_STREAM": "garbage"}) == "text"
    assert logsetup.default_format(io.StringIO(), {"JOURNAL_STREAM": "1:2"}) == "text"
