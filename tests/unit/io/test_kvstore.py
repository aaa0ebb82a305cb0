"""The store interface's in-memory double: atomic batches, prefix scans in key order, closed is closed."""

from __future__ import annotations

import pytest

from snakeswan.io.kvstore import MemoryKvStore, StoreError


def test_apply_scan_and_delete() -> None:
    store = MemoryKvStore()
    store.apply({"ike/b": b"2", "ike/a": b"1", "child/01": b"c"})
    assert list(store.scan("ike/")) == [("ike/a", b"1"), ("ike/b", b"2")]
    store.apply({"ike/c": b"3"}, deletes=["ike/a", "ike/missing"])
    assert [k for k, _ in store.scan("")] == ["child/01", "ike/b", "ike/c"]


def test_closed_store_refuses() -> None:
    store = MemoryKvStore()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.apply({"k": b"v"})
