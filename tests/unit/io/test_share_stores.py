"""daemon.cluster_state.ShareStores: each record goes to the store of the share its SA's address
belongs to; checkpoints follow their IKE record; records of shares not owned, or of addresses
that are no share's, are not written; deletes go where the record went; scans merge in key order."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from snakeswan.config.cluster import ClusterConfig, ShareConfig
from snakeswan.daemon.cluster_state import ShareStores, read_key
from snakeswan.errors import LocalError
from snakeswan.io.kvstore import MemoryKvStore

CFG = ClusterConfig(
    endpoints=("http://10.231.9.1:2379",),
    node="gw1",
    key_file="/k",
    shares=(
        ShareConfig("a", ipaddress.ip_interface("10.231.9.10/24"), "eth0"),
        ShareConfig("b", ipaddress.ip_interface("10.231.9.11/24"), "eth0"),
    ),
)


def ike(local: str, *spis: int) -> bytes:
    rec = {"v": 1, "kind": "ike", "local": [local, 4500], "children": [{"spi_in": s} for s in spis]}
    return json.dumps(rec).encode()


def test_records_follow_their_share() -> None:
    router = ShareStores(CFG)
    a, b = MemoryKvStore(), MemoryKvStore()
    router.stores.update(a=a, b=b)
    router.apply({"ike/01": ike("10.231.9.10", 0x1111), "ike/02": ike("10.231.9.11", 0x2222)})
    router.apply({"seq/00001111": b"c1", "seq/00002222": b"c2", "seq/00003333": b"orphan"})
    assert dict(a.scan("")) == {"ike/01": ike("10.231.9.10", 0x1111), "seq/00001111": b"c1"}
    assert dict(b.scan("")) == {"ike/02": ike("10.231.9.11", 0x2222), "seq/00002222": b"c2"}
    assert router.unrouted == 1  # the checkpoint of an IPsec SA no record holds
    assert [k for k, _ in router.scan("ike/")] == ["ike/01", "ike/02"]
    router.apply({}, ["ike/02", "seq/00002222", "ike/unknown"])
    assert list(b.scan("")) == [] and len(list(a.scan(""))) == 2


def test_not_owned_and_no_share_are_not_written() -> None:
    router = ShareStores(CFG)
    a = MemoryKvStore()
    router.stores["a"] = a
    router.apply({"ike/02": ike("10.231.9.11"), "ike/03": ike("10.231.9.99"), "ike/04": b"not json"})
    assert list(a.scan("")) == [] and router.unrouted == 3
    router.stores.pop("a")  # share lost: even its own records are no longer written
    router.apply({"ike/01": ike("10.231.9.10")})
    assert list(a.scan("")) == []


def test_cluster_key_is_never_created(tmp_path: Path) -> None:
    path = tmp_path / "k"
    with pytest.raises(LocalError, match="copy the same key"):
        read_key(str(path))
    path.write_bytes(b"short")
    with pytest.raises(LocalError, match="5 bytes"):
        read_key(str(path))
    path.write_bytes(bytes(range(32)))
    assert read_key(str(path)) == bytes(range(32))
