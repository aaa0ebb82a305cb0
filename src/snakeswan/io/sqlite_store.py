"""The embedded state store (issue 14): one SQLite file (stdlib ``sqlite3``) behind
:class:`~snakeswan.io.kvstore.KvStore`.

One table ``kv(key TEXT PRIMARY KEY, value BLOB)`` and one ``meta`` row with the schema version.
WAL journal, ``synchronous=NORMAL``: a batch is one transaction, so after a crash (``kill -9``, not
a power cut: NORMAL may lose the last transactions then, never corrupt the file) either all of it
is there or none. A file that is not SQLite, is damaged, or has another schema version raises
:class:`~snakeswan.io.kvstore.StoreError` from the constructor; the daemon then moves it aside and
starts clean.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence

from snakeswan.io.kvstore import StoreError

__all__ = ["SCHEMA_VERSION", "SqliteKvStore"]

SCHEMA_VERSION = 1


class SqliteKvStore:
    def __init__(self, path: str) -> None:
        self.path = path
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # SA state: readable by root only
            os.close(fd)
            self._db: sqlite3.Connection | None = sqlite3.connect(path, isolation_level=None)
            self._setup()
        except (sqlite3.Error, OSError) as e:
            raise StoreError(f"state file {path}: {e}") from None

    def _setup(self) -> None:
        db = self._conn()
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
            row = db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif row[0] != str(SCHEMA_VERSION):
                raise StoreError(
                    f"state file {self.path}: schema version {row[0]}, this version reads {SCHEMA_VERSION}"
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        # a damaged file often opens; make SQLite read every page of it now
        check = db.execute("PRAGMA quick_check").fetchone()
        if check is None or check[0] != "ok":
            raise StoreError(f"state file {self.path}: damaged ({check[0] if check else 'no answer'})")

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("the state store is closed")
        return self._db

    def apply(self, puts: Mapping[str, bytes], deletes: Sequence[str] = ()) -> None:
        if not puts and not deletes:
            return
        db = self._conn()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("DELETE FROM kv WHERE key = ?", ((k,) for k in deletes))
                db.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)", puts.items())
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise StoreError(f"state file {self.path}: write failed: {e}") from None

    def scan(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        db = self._conn()
        # keys are ASCII paths: [prefix, prefix + U+10FFFF) is every key starting with prefix
        try:
            rows = db.execute(
                "SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key",
                (prefix, prefix + "\U0010ffff"),
            ).fetchall()
        except sqlite3.Error as e:
            raise StoreError(f"state file {self.path}: read failed: {e}") from None
        for key, value in rows:
            yield key, bytes(value)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
