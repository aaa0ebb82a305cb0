"""The SQLite state store: the KvStore contract, atomic batches, a file for root only, and a
clear StoreError for a file that is not ours (damaged, another schema version)."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from snakeswan.io.kvstore import MemoryKvStore, StoreError
from snakeswan.io.sqlite_store import SqliteKvStore


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_contract(tmp_path: Path, kind: str) -> None:
    store = SqliteKvStore(str(tmp_path / "state.db")) if kind == "sqlite" else MemoryKvStore()
    store.apply({"ike/b": b"2", "ike/a": b"1", "seq/01": b"x", "ikf": b"no"})
    assert list(store.scan("ike/")) == [("ike/a", b"1"), ("ike/b", b"2")]
    store.apply({"ike/c": b"3"}, ["ike/a", "missing"])
    assert [k for k, _ in store.scan("ike/")] == ["ike/b", "ike/c"]
    assert [k for k, _ in store.scan("")] == ["ike/b", "ike/c", "ikf", "seq/01"]
    store.close()
    with pytest.raises(StoreError):
        store.apply({"x": b""})


def test_survives_reopen_and_is_private(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    s = SqliteKvStore(path)
    s.apply({"ike/a": b"\x00\xff"})
    s.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    s2 = SqliteKvStore(path)
    assert list(s2.scan("ike/")) == [("ike/a", b"\x00\xff")]
    s2.close()


def test_batch_is_atomic(tmp_path: Path) -> None:
    s = SqliteKvStore(str(tmp_path / "state.db"))
    s.apply({"ike/a": b"1"})

    class Boom(dict):  # type: ignore[type-arg]
        def items(self):  # type: ignore[no-untyped-def]
            yield ("ike/b", b"2")
            raise RuntimeError("crash in the middle of a batch")

    with pytest.raises(RuntimeError):
        s.apply(Boom(), ["ike/a"])
    assert list(s.scan("")) == [("ike/a", b"1")]  # neither the delete nor the first put
    s.close()


def test_not_sqlite_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreError, match=r"state\.db"):
        SqliteKvStore(str(path))


def test_truncated_file_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    s = SqliteKvStore(str(path))
    s.apply({f"ike/{i:04d}": os.urandom(2000) for i in range(200)})
    s.close()
    data = path.read_bytes()
    path.write_bytes(data[:100] + b"\x55" * 5000 + data[5100:])  # header kept, pages overwritten
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    with pytest.raises(StoreError, match=r"state\.db"):
        s2 = SqliteKvStore(str(path))
        list(s2.scan(""))


def test_other_schema_version_is_a_store_error(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    SqliteKvStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '99' WHERE name = 'schema'")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="schema version 99"):
        SqliteKvStore(path)
