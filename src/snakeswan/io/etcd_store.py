"""The state store on etcd: :class:`EtcdKvStore` implements :class:`~snakeswan.io.kvstore.KvStore`.

Layout: every key of one store lives under a prefix, ``/snakeswan/<cluster>/state/<share>/``
(see :mod:`snakeswan.io.leadership` for what a share is); the record keys the daemon uses
(``ike/<cookies>``, ``child/<spi>``...) follow it unchanged, values are the sealed records as they
come (etcd sees no key material in the clear).

``apply(puts, deletes)`` is one etcd transaction, so atomic on every member. etcd refuses a
transaction of more than ``--max-txn-ops`` operations (128 by default): a larger batch is split
into transactions of ``max_ops`` each, applied in order; each record is still written whole, but
such a batch is atomic only per chunk (raise ``--max-txn-ops`` on the members and ``max_ops`` here
to keep big batches whole).

Fencing: built with ``guard=(key, value)`` (the share's owner key and our node name), every
transaction also compares that key's value: a node that lost the share (its lease expired while
it was cut off, another node took over) has its writes refused with :class:`NotOwner` instead of
overwriting the new owner's state. The guard costs nothing: it is part of the same transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence

from snakeswan.io.etcd_client import EtcdClient, EtcdError, delete_op, put_op, value_is
from snakeswan.io.kvstore import KvStore, StoreError

__all__ = ["EtcdKvStore", "NotOwner", "WriteBehind"]

log = logging.getLogger("snakeswan.cluster")

MAX_TXN_OPS = 128  # etcd's default --max-txn-ops


class NotOwner(StoreError):
    """A guarded write was refused: the owner key no longer names us (another node took over)."""


class EtcdKvStore:
    """``EtcdKvStore(client, "/snakeswan/lab/state/vip1/", guard=(b".../owner/vip1", b"gw1"))``."""

    def __init__(
        self,
        client: EtcdClient,
        prefix: str,
        *,
        guard: tuple[bytes, bytes] | None = None,
        max_ops: int = MAX_TXN_OPS,
    ) -> None:
        if not prefix.endswith("/"):
            raise StoreError(f"etcd store prefix {prefix!r} must end with '/'")
        self.client = client
        self.prefix = prefix
        self.guard = guard
        self.max_ops = max(1, max_ops)
        self.writes = 0  # transactions committed
        self._closed = False

    def apply(self, puts: Mapping[str, bytes], deletes: Sequence[str] = ()) -> None:
        self._check()
        ops = [delete_op(self._key(k)) for k in deletes]
        ops += [put_op(self._key(k), v) for k, v in puts.items()]
        compare = [value_is(*self.guard)] if self.guard else []
        for i in range(0, len(ops), self.max_ops):
            ok, _ = self.client.txn(compare, ops[i : i + self.max_ops])
            if not ok:
                raise NotOwner(
                    f"etcd refused a write under {self.prefix}: {self.guard[0].decode()} no longer names "
                    f"{self.guard[1].decode()} (another node owns this state now)"
                    if self.guard
                    else f"etcd transaction under {self.prefix} failed"
                )
            self.writes += 1

    def scan(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        self._check()
        cut = len(self.prefix)
        for kv in self.client.scan(self._key(prefix)):
            try:
                key = kv.key.decode("ascii")
            except UnicodeDecodeError:
                raise EtcdError(f"etcd key {kv.key!r} under {self.prefix} is not ASCII") from None
            yield key[cut:], kv.value

    def clear(self) -> None:
        """Remove every key of this store (a share handed back empty)."""
        self._check()
        self.client.delete_prefix(self.prefix.encode("ascii"))

    def close(self) -> None:
        self._closed = True

    def _key(self, key: str) -> bytes:
        try:
            return (self.prefix + key).encode("ascii")
        except UnicodeEncodeError:
            raise StoreError(f"state store key {key!r} is not ASCII") from None

    def _check(self) -> None:
        if self._closed:
            raise StoreError("the state store is closed")


class WriteBehind:
    """A :class:`KvStore` that returns from ``apply`` at once and writes in a thread of its own.

    etcd answers a transaction in milliseconds (a raft round and an fsync on a majority): the
    daemon's loop must not wait for it, or every handshake and every checkpoint round waits too
    (bench/failover.py measures both ways). Pending writes are one dict, key -> value or None (a
    delete), so a key written twice before the thread gets to it is written once, and memory is
    bounded by the number of keys, not by how long etcd is away. The thread takes everything
    pending and applies it (in transactions of the inner store's ``max_ops``); when etcd cannot be
    reached it puts back what is not newer and tries again after :data:`RETRY` seconds; when the
    write is fenced (:class:`NotOwner`) it drops everything: the share is not ours any more.

    A batch stays atomic when it fits one transaction and nothing else is pending; an ``apply``
    that returned may not be in etcd yet: :meth:`flush` waits for it (a planned handover calls it
    before giving the share up). ``scan`` reads the inner store directly.
    """

    RETRY = 0.2

    def __init__(self, inner: KvStore) -> None:
        self.inner = inner
        self.errors = 0  # failed attempts
        self.last_error: str | None = None
        self._pending: dict[str, bytes | None] = {}
        self._busy = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="snakeswan-etcd-writer", daemon=True)
        self._thread.start()

    def apply(self, puts: Mapping[str, bytes], deletes: Sequence[str] = ()) -> None:
        with self._cond:
            if self._closed:
                raise StoreError("the state store is closed")
            for key in deletes:
                self._pending[key] = None
            self._pending.update(puts)
            self._cond.notify_all()

    def scan(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        return self.inner.scan(prefix)

    def flush(self, timeout: float) -> bool:
        """Wait until everything applied so far is in etcd (True) or ``timeout`` passed (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def close(self) -> None:
        """Stop the thread; what is still pending is dropped (see :meth:`flush`)."""
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._cond.notify_all()
        self.inner.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closed)
                if self._closed:
                    return
                batch, self._pending, self._busy = self._pending, {}, True
            retry = self._write(batch)
            with self._cond:
                self._busy = False
                if retry and not self._closed:
                    for key, value in batch.items():
                        self._pending.setdefault(key, value)  # a newer write wins
                self._cond.notify_all()
            if retry:
                time.sleep(self.RETRY)

    def _write(self, batch: dict[str, bytes | None]) -> bool:
        """Apply ``batch``; True when it should be tried again."""
        puts = {k: v for k, v in batch.items() if v is not None}
        deletes = [k for k, v in batch.items() if v is None]
        try:
            self.inner.apply(puts, deletes)
        except NotOwner as e:
            self._failed(str(e))
            return False
        except StoreError as e:
            self._failed(str(e))
            return True
        if self.last_error is not None:
            log.info("state store on etcd writable again")
            self.last_error = None
        return False

    def _failed(self, why: str) -> None:
        self.errors += 1
        if self.last_error is None:
            log.error("state store on etcd: %s", why)
        self.last_error = why
