"""The state store's interface: a small key/value store that SA state is persisted to.

The sans-I/O core never sees a store: the daemon turns engine and data plane state into records
(bytes, key material sealed before it gets here) and writes them through this interface; at
start it reads them back. Two drivers implement it: SQLite for one machine (the default) and
etcd for a pair or cluster of gateways. Both must give the same guarantees:

- ``apply(puts, deletes)`` is atomic: after a crash either all of a batch is visible or none;
- ``scan(prefix)`` yields every live key under ``prefix`` with its value, in key order;
- keys are ``/``-separated ASCII paths (``ike/<cookies hex>``, ``child/<spi hex>``,
  ``lease/<pool>/<identity>``...); values are opaque bytes;
- a store that cannot be read (missing, corrupt, another version) raises :class:`StoreError`
  from its constructor or its first ``scan``, never anything else.

:class:`MemoryKvStore` is the double that tests and the library use.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

__all__ = ["KvStore", "MemoryKvStore", "StoreError"]


class StoreError(Exception):
    """The state store could not be opened, read or written (what and where in the message)."""


class KvStore(Protocol):
    def apply(self, puts: Mapping[str, bytes], deletes: Sequence[str] = ()) -> None:
        """Write ``puts`` and remove ``deletes`` in one atomic step."""

    def scan(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        """Every key starting with ``prefix`` and its value, in key order."""

    def close(self) -> None:
        """Flush and release the store; further calls are errors."""


class MemoryKvStore:
    """A dict behind the :class:`KvStore` interface (tests, the library, ``store = "none"``)."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._closed = False

    def apply(self, puts: Mapping[str, bytes], deletes: Sequence[str] = ()) -> None:
        self._check()
        for key in deletes:
            self._data.pop(key, None)
        self._data.update(puts)

    def scan(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        self._check()
        for key in sorted(k for k in self._data if k.startswith(prefix)):
            yield key, self._data[key]

    def close(self) -> None:
        self._closed = True

    def _check(self) -> None:
        if self._closed:
            raise StoreError("the state store is closed")
