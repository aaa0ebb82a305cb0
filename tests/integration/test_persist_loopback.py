"""The state file of a real daemon on loopback (no root, IKE only): created 0600 with its key on
first start, SAs restored after ``kill -9`` (and usable: a rekey runs on the restored ISAKMP SA),
and every way a state file can be unusable (not SQLite, damaged, another schema version, a record
that does not unseal) gives one clear log line and a clean start, never a crash."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from tests.daemons import DaemonProcess, wait_for
from tests.integration.test_daemon_loopback import configs


def _pair(tmp_path: Path) -> tuple[DaemonProcess, DaemonProcess, str, str]:
    ca, cb = configs(False)
    a = DaemonProcess(tmp_path, "a", ca, log_level="info")
    b = DaemonProcess(tmp_path, "b", cb, log_level="info")
    return a, b, ca, cb


def _up(a: DaemonProcess, b: DaemonProcess) -> None:
    a.cmd("up", conn="lo")
    wait_for(lambda: b.sas() and b.sas()[0]["children"] and a.sas()[0]["children"], what="the SAs")


def test_first_start_creates_private_state_and_key(tmp_path: Path) -> None:
    a, b, _, _ = _pair(tmp_path)
    try:
        state, key = Path(a.control + ".state"), Path(a.control + ".state.key")
        assert state.exists() and key.exists()
        assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.stat().st_size == 32
        assert stat.S_IMODE(state.stat().st_mode) == 0o600
        assert "0 IKE SA(s) and 0 IPsec SA(s) restored" in a.log()
        _up(a, b)
        icookie = a.sas()[0]["icookie"]
        db = sqlite3.connect(str(state))
        keys = [k for (k,) in db.execute("SELECT key FROM kv")]
        values = b"".join(v for (v,) in db.execute("SELECT value FROM kv"))
        db.close()
        assert [k for k in keys if k.startswith("ike/")] == [f"ike/{icookie}{a.sas()[0]['rcookie']}"]
        assert b'"sealed"' in values and b"skeyid" not in values  # secrets sealed at rest
        a.cmd("down", conn="lo")
        wait_for(lambda: not a.sas(), what="the SAs gone")
        db = sqlite3.connect(str(state))
        assert db.execute("SELECT count(*) FROM kv WHERE key LIKE 'ike/%'").fetchone()[0] == 0
        db.close()
    finally:
        a.stop()
        b.stop()


def test_kill9_restart_restores_and_the_sa_works(tmp_path: Path) -> None:
    a, b, ca, _ = _pair(tmp_path)
    a2 = None
    try:
        _up(a, b)
        before = a.sas()[0]
        a.proc.kill()
        a.proc.wait(5)
        a.stop()
        a2 = DaemonProcess(tmp_path, "a", ca, log_level="info")
        assert "1 IKE SA(s) and 1 IPsec SA(s) restored" in a2.log(), a2.log()
        after = a2.sas()[0]
        assert (after["icookie"], after["rcookie"]) == (before["icookie"], before["rcookie"])
        assert after["children"][0]["spi_in"] == before["children"][0]["spi_in"]
        a2.cmd("rekey", conn="lo")  # a Quick Mode under the restored keys and IVs
        wait_for(lambda: len(b.sas()[0]["children"]) == 2, what="the rekeyed IPsec SA on the peer")
        assert len(b.sas()) == 1 and b.sas()[0]["icookie"] == before["icookie"]
    finally:
        for d in (a2, a, b):
            if d is not None:
                d.stop()


def _damage_not_sqlite(path: Path) -> None:
    path.write_bytes(b"definitely not SQLite " * 300)


def _damage_schema(path: Path) -> None:
    db = sqlite3.connect(str(path))
    db.execute("UPDATE meta SET value = '99' WHERE name = 'schema'")
    db.commit()
    db.close()


def _damage_pages(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[100:] = b"\xa5" * (len(data) - 100)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "expect"),
    [
        (_damage_not_sqlite, "moved aside"),
        (_damage_schema, "schema version 99"),
        (_damage_pages, "moved aside"),
    ],
    ids=["not-sqlite", "old-version", "corrupt"],
)
def test_unusable_state_file_gives_a_clean_start(tmp_path: Path, damage: object, expect: str) -> None:
    a, b, ca, _ = _pair(tmp_path)
    a2 = None
    try:
        _up(a, b)
        a.proc.kill()
        a.proc.wait(5)
        a.stop()
        state = Path(a.control + ".state")
        for suffix in ("-wal", "-shm"):  # what kill -9 left in the WAL is checkpointed into the file
            db = sqlite3.connect(str(state))
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.close()
            Path(str(state) + suffix).unlink(missing_ok=True)
        damage(state)  # type: ignore[operator]
        a2 = DaemonProcess(tmp_path, "a", ca, log_level="info")
        log = a2.log()
        warn = [line for line in log.splitlines() if "WARNING" in line and "state" in line]
        assert len(warn) == 1 and expect in warn[0], log
        assert "0 IKE SA(s) and 0 IPsec SA(s) restored" in log
        assert a2.sas() == [] and a2.proc.poll() is None
        aside = [p for p in os.listdir(tmp_path) if ".state.unusable-" in p]
        assert aside, os.listdir(tmp_path)
        a2.cmd("up", conn="lo")  # and the clean state file works
        wait_for(lambda: a2.sas() and a2.sas()[0]["children"], what="a new tunnel")
    finally:
        for d in (a2, a, b):
            if d is not None:
                d.stop()


def test_records_that_do_not_unseal_are_dropped_with_one_line(tmp_path: Path) -> None:
    a, b, ca, _ = _pair(tmp_path)
    a2 = None
    try:
        _up(a, b)
        a.proc.kill()
        a.proc.wait(5)
        a.stop()
        Path(a.control + ".state.key").write_bytes(os.urandom(32))  # another key: nothing unseals
        a2 = DaemonProcess(tmp_path, "a", ca, log_level="info")
        warn = [line for line in a2.log().splitlines() if "WARNING" in line]
        assert len(warn) == 1 and "could not be used and were removed" in warn[0], a2.log()
        assert "does not unseal" in warn[0] or "unseal" in warn[0]
        assert a2.sas() == []
    finally:
        for d in (a2, a, b):
            if d is not None:
                d.stop()


def test_state_none_writes_nothing(tmp_path: Path) -> None:
    ca, _ = configs(False)
    ca = ca.replace("[daemon]\n", '[daemon]\nstate = "none"\n', 1)
    a = DaemonProcess(tmp_path, "a", ca, log_level="info")
    try:
        assert not Path(a.control + ".state").exists() and "persistence off" in a.log()
    finally:
        a.stop()
