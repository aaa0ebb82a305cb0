"""The daemon as an operator meets it, on loopback (no root needed): a log reader that goes away
does not kill it (SIGPIPE), a second daemon on the same control socket or the same ports is refused
with one line and the first keeps working, `up` waits and says how it ended (a wrong PSK exits 1),
`stop`, SIGHUP reload, and a socket left behind by a dead daemon is taken over."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.daemons import ROOT, DaemonProcess, wait_for
from tests.integration.test_daemon_loopback import configs

ENV = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
CLI = [sys.executable, "-m", "snakeswan.cli.main"]


def run(cmd: list[str], timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, env=ENV)


def cli(control: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run([*CLI, "--control", control, *args], timeout)


def daemon(config: Path | str, control: Path | str, *prefix: str) -> subprocess.CompletedProcess[str]:
    """A daemon that is expected to refuse to start."""
    return run([*prefix, *CLI, "daemon", "-c", str(config), "--control", str(control)])


def pair(tmp_path: Path, *, psk_b: str | None = None) -> tuple[DaemonProcess, DaemonProcess]:
    ca, cb = configs(False)
    if psk_b is not None:
        cb = cb.replace("loopback-test-psk", psk_b)
    a = DaemonProcess(tmp_path, "a", ca, log_level="info")
    try:
        b = DaemonProcess(tmp_path, "b", cb, log_level="info")
    except BaseException:
        a.stop()
        raise
    return a, b


def test_log_reader_going_away_does_not_kill_the_daemon(tmp_path: Path) -> None:
    a, b = pair(tmp_path)
    try:
        # `snakeswan log | head -2`: head exits after two lines, the log client dies of SIGPIPE and
        # the daemon's next writes to that connection fail with EPIPE
        pipeline = subprocess.Popen(
            f"{sys.executable} -m snakeswan.cli.main --control {a.control} log | head -2",
            shell=True,
            stdout=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        # a raw reader that closes at once as well
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(a.control)
            s.sendall(b'{"command":"log","args":{}}\n')
        time.sleep(0.5)  # let the pipeline connect
        assert cli(a.control, "up", "lo").returncode == 0
        out, _ = pipeline.communicate(timeout=20)
        assert len(out.splitlines()) == 2 and out.startswith("ike: ")
        for _ in range(3):  # more records for the dead readers
            assert cli(a.control, "down", "lo/net").returncode == 0
            assert cli(a.control, "up", "lo/net").returncode == 0
        assert a.proc.poll() is None, a.log()
        assert len(a.sas()[0]["children"]) == 1
    finally:
        b.stop()
        assert a.stop() == 0


def test_second_daemon_is_refused_and_the_first_keeps_working(tmp_path: Path) -> None:
    a, b = pair(tmp_path)
    try:
        # the same control socket: the lock says who holds it; nothing of the first is touched
        same_control = daemon(a.config_path, a.control)
        assert same_control.returncode == 1
        err = same_control.stderr.strip().splitlines()
        assert len(err) == 1 and f"another snakeswan daemon (pid {a.proc.pid})" in err[0], err
        # another control socket but the same UDP ports: the bind fails (no SO_REUSEADDR)
        same_ports = daemon(a.config_path, tmp_path / "second.sock")
        assert same_ports.returncode == 1
        err = same_ports.stderr.strip().splitlines()
        assert len(err) == 1 and "cannot open UDP port" in err[0] and "in use" in err[0], err
        assert not (tmp_path / "second.sock").exists()
        # the first daemon still owns its socket and its ports: a full negotiation works
        assert os.path.exists(a.control) and a.proc.poll() is None
        up = cli(a.control, "up", "lo")
        assert up.returncode == 0, up.stderr
        assert "IPsec SA lo/net established" in up.stdout
        assert wait_for(lambda: [s for s in b.sas() if s["children"]], what="B's IPsec SA")
    finally:
        b.stop()
        assert a.stop() == 0


def test_up_waits_for_the_outcome(tmp_path: Path) -> None:
    a, b = pair(tmp_path, psk_b="not-the-same-psk")
    try:
        wrong = cli(a.control, "up", "lo", "--timeout", "30")
        assert wrong.returncode == 1, wrong.stdout
        assert wrong.stderr == "snakeswan: lo: phase1 failed: peer sent AUTHENTICATION_FAILED\n"
        assert len(wrong.stderr.strip().splitlines()) == 1
        assert "ike: sent sa=1 exchange=main_mode msg=MM1" in wrong.stdout  # the log lines streamed
        assert "msg=MM5" in wrong.stdout
        assert a.sas() == []
        # --async: the old behaviour, exit 0 once the negotiation started
        started = cli(a.control, "up", "lo", "--async")
        assert started.returncode == 0 and "initiating lo: IKE SA #" in started.stdout
        b.stop()
        # nobody answers: --timeout ends the wait with exit 1 and says so
        silent = cli(a.control, "up", "lo", "--timeout", "1")
        assert silent.returncode == 1 and "no outcome within 1 s" in silent.stderr
        # unknown names: one line, exit 1
        bad = cli(a.control, "up", "nope")
        assert bad.returncode == 1 and bad.stderr == "snakeswan: no connection named 'nope'\n"
    finally:
        b.stop()
        assert a.stop() == 0


def test_up_and_down_stream_and_succeed(tmp_path: Path) -> None:
    a, b = pair(tmp_path)
    try:
        up = cli(a.control, "up", "lo/net")
        assert up.returncode == 0, up.stderr
        lines = up.stdout.splitlines()
        assert lines[0].startswith("ike: initiate sa=1 conn=lo")
        assert lines[-1].startswith("IKE SA #1 lo established; IPsec SA lo/net established (SPIs")
        again = cli(a.control, "up", "lo/net")  # already up: success at once
        assert again.returncode == 0 and "IPsec SA lo/net established" in again.stdout
        listed = cli(a.control, "list-sas", "--ike", "lo", "--child", "net", "--json")
        assert listed.returncode == 0 and '"name": "net"' in listed.stdout
        none = cli(a.control, "list-sas", "--ike", "other", "--json")
        assert none.returncode == 0 and none.stdout.strip() == "[]"
        down = cli(a.control, "down", "lo")
        assert down.returncode == 0
        assert "ike_sa_deleted sa=1" in down.stdout and down.stdout.endswith("deleted 1 SA of lo\n")
        nothing = cli(a.control, "down", "lo")
        assert nothing.returncode == 1 and nothing.stderr == "snakeswan: no SA of lo to delete\n"
    finally:
        b.stop()
        assert a.stop() == 0


def test_stop_verb_and_sighup_reload(tmp_path: Path) -> None:
    ca, _ = configs(False)
    a = DaemonProcess(tmp_path, "a", ca, log_level="info")
    try:
        a.config_path.write_text(ca.replace("connections.lo", "connections.renamed"))
        a.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: [c["name"] for c in a.cmd("list-conns")] == ["renamed"], what="SIGHUP reload")
        a.config_path.write_text("not [toml")
        a.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload on SIGHUP failed" in a.log(), what="the failed reload logged")
        assert [c["name"] for c in a.cmd("list-conns")] == ["renamed"]  # kept the running one
        stop = cli(a.control, "stop")
        assert stop.returncode == 0 and stop.stdout == "daemon stopped\n"
        assert a.proc.wait(5) == 0 and not os.path.exists(a.control)
        for line in a.log().splitlines():  # timestamps and level names, each line once
            assert line[:4].isdigit() and line[10] == "T" and line.split()[1] in ("INFO", "WARNING", "ERROR")
        assert len(set(a.log().splitlines())) == len(a.log().splitlines())
    finally:
        a.stop()


def test_stale_socket_taken_over_live_or_foreign_path_refused(tmp_path: Path) -> None:
    ca, _ = configs(False)
    stale = tmp_path / "a.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stale))
    s.close()  # a socket file nobody listens on: what a killed daemon leaves
    a = DaemonProcess(tmp_path, "a", ca)
    assert a.stop() == 0
    (tmp_path / "b.sock").write_text("not a socket")
    (tmp_path / "b.toml").write_text(ca)
    r = daemon(tmp_path / "b.toml", tmp_path / "b.sock")
    assert r.returncode == 1 and r.stderr.strip().endswith("exists and is not a socket; not removing it")
    assert (tmp_path / "b.sock").read_text() == "not a socket"


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv to drop privileges"
)
def test_unprivileged_daemon_with_unwritable_control_path() -> None:
    ca, _ = configs(False)
    with tempfile.TemporaryDirectory() as d:
        os.chown(d, 65534, 65534)  # another user's directory, and we lose the right to write anyway
        os.chmod(d, 0o755)
        conf = Path(d) / "a.toml"
        conf.write_text(ca)
        # root without CAP_DAC_OVERRIDE: file permissions apply as to an ordinary user
        drop = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search")
        r = daemon(conf, f"{d}/run/control.sock", *drop)
        assert not os.path.exists(f"{d}/run")
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith(f"snakeswan: cannot create {d}/run: Permission denied"), r.stderr
    assert "--control" in r.stderr and len(r.stderr.strip().splitlines()) == 1
