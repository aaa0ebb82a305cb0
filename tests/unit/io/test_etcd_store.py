"""io.etcd_client / io.etcd_store / io.leadership against a real etcd member on loopback.

The store keeps the KvStore contract (atomic batches, prefix scans in key order, paging, deletes);
guarded writes are refused once the owner key names another node; leadership: one winner per
share, the loser learns who won, keepalive keeps the key, an expired lease frees it for the
other node, resign hands it over at once; a dead endpoint in the list is skipped.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence

import pytest

from snakeswan.io.etcd_client import EtcdClient, EtcdError, EtcdUnavailable, put_op, range_end
from snakeswan.io.etcd_store import EtcdKvStore, NotOwner, WriteBehind
from snakeswan.io.kvstore import MemoryKvStore, StoreError
from snakeswan.io.leadership import Leadership, Lease, owner_key, state_prefix
from tests.etcd import Cluster, local_etcd


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with local_etcd(tmp_path_factory.mktemp("etcd")) as cluster:
        yield cluster


@pytest.fixture
def client(etcd: Cluster) -> Iterator[EtcdClient]:
    c = EtcdClient(etcd.endpoints, timeout=2.0)
    yield c
    c.close()


def _prefix(request: pytest.FixtureRequest) -> str:
    return f"/t/{request.node.name}/{time.monotonic_ns()}/"


def test_range_end() -> None:
    assert range_end(b"a/") == b"a0"
    assert range_end(b"a\xff") == b"b"
    assert range_end(b"") == b"\0"


def test_apply_scan_delete(client: EtcdClient, request: pytest.FixtureRequest) -> None:
    store = EtcdKvStore(client, _prefix(request))
    store.apply({"ike/b": b"2", "ike/a": b"\x00\xff1", "child/01": b"c"})
    assert list(store.scan("ike/")) == [("ike/a", b"\x00\xff1"), ("ike/b", b"2")]
    store.apply({"ike/c": b"3"}, deletes=["ike/a", "ike/missing"])
    assert [k for k, _ in store.scan("")] == ["child/01", "ike/b", "ike/c"]
    assert store.writes == 2
    other = EtcdKvStore(client, _prefix(request))  # another prefix sees nothing of it
    assert list(other.scan("")) == []
    store.clear()
    assert list(store.scan("")) == []


def test_batch_is_one_transaction_and_big_batches_are_chunked(
    client: EtcdClient, request: pytest.FixtureRequest
) -> None:
    store = EtcdKvStore(client, _prefix(request), max_ops=100)
    puts = {f"child/{i:05x}": bytes([i % 256]) * 50 for i in range(250)}
    store.apply(puts)
    assert store.writes == 3  # 250 operations in transactions of 100
    got = dict(store.scan("child/"))
    assert got == puts
    # paging: a scan larger than one range request still sees every key, in order
    keys = [kv.key for kv in client.scan(store.prefix.encode(), page=7)]
    assert len(keys) == 250 and keys == sorted(keys)


def test_txn_refused_by_etcd_is_an_error_not_a_retry(
    client: EtcdClient, request: pytest.FixtureRequest
) -> None:
    store = EtcdKvStore(client, _prefix(request), max_ops=1000)  # etcd's --max-txn-ops is 128
    with pytest.raises(EtcdError, match="too many operations"):
        store.apply({f"k{i}": b"v" for i in range(200)})
    assert not isinstance(EtcdError("x"), EtcdUnavailable)
    assert list(store.scan("")) == []  # nothing of the refused batch


def test_non_ascii_key_refused(client: EtcdClient, request: pytest.FixtureRequest) -> None:
    store = EtcdKvStore(client, _prefix(request))
    with pytest.raises(StoreError, match="not ASCII"):
        store.apply({"ike/é": b"x"})
    store.close()
    with pytest.raises(StoreError, match="closed"):
        list(store.scan(""))


def test_guarded_writes_fence_a_node_that_lost_the_share(
    client: EtcdClient, request: pytest.FixtureRequest
) -> None:
    cluster = request.node.name
    key = owner_key(cluster, "vip")
    gw1 = Leadership(client, cluster, "gw1")
    lease = Lease(client, ttl=5)
    lease.grant(time.monotonic())
    assert gw1.campaign("vip", lease) == "gw1"
    store = EtcdKvStore(client, state_prefix(cluster, "vip"), guard=(key, b"gw1"))
    store.apply({"ike/01": b"a"})
    # gw1 is cut off, its lease expires, gw2 takes the share (simulated: the key changes hands)
    client.txn([], [put_op(key, b"gw2")])
    with pytest.raises(NotOwner, match="gw1"):
        store.apply({"ike/01": b"stale"}, deletes=["ike/02"])
    assert dict(store.scan("")) == {"ike/01": b"a"}
    lease.revoke()


def test_campaign_keepalive_expiry_and_resign(client: EtcdClient, request: pytest.FixtureRequest) -> None:
    cluster = request.node.name
    gw1, gw2 = Leadership(client, cluster, "gw1"), Leadership(client, cluster, "gw2")
    l1, l2 = Lease(client, ttl=2), Lease(client, ttl=2)
    t0 = time.monotonic()
    l1.grant(t0)
    l2.grant(t0)
    assert l1.ttl >= 2 and l1.valid(t0) and not l1.valid(t0 + l1.ttl + 0.01)
    assert gw1.campaign("vip", l1) == "gw1"
    assert gw2.campaign("vip", l2) == "gw1"  # the loser learns who holds it
    assert gw1.holds("vip", l1) and not gw2.holds("vip", l2)
    assert gw1.campaign("vip", l1) == "gw1"  # a retried campaign is not a loss
    # keepalives for 3 s (more than the TTL): the key stays
    end = time.monotonic() + 3.0
    while time.monotonic() < end:
        sent = time.monotonic()
        assert l1.keepalive(sent) and l2.keepalive(sent)
        assert l1.valid_until <= sent + l1.ttl
        time.sleep(0.4)
    assert gw2.owner("vip") == "gw1"
    # gw1 stops refreshing (it died): within TTL (+ etcd's expiry sweep) gw2 can win
    died = time.monotonic()
    while gw2.campaign("vip", l2) != "gw2":
        assert time.monotonic() - died < l1.ttl + 2.0, "the dead node's lease did not expire"
        l2.keepalive(time.monotonic())
        time.sleep(0.1)
    assert time.monotonic() - died >= l1.ttl - 0.5
    assert not l1.keepalive(time.monotonic()) and not l1.valid(time.monotonic())
    # resign hands the share over at once
    assert not gw1.resign("vip")  # not gw1's any more: nothing deleted
    assert gw2.resign("vip")
    assert gw2.owner("vip") is None
    l2.revoke()


def test_dead_endpoint_is_skipped(etcd: Cluster, request: pytest.FixtureRequest) -> None:
    # a member that refuses connections first in the list: the request goes to the next one
    c = EtcdClient(["http://127.0.0.1:1", *etcd.endpoints], timeout=1.0)
    store = EtcdKvStore(c, _prefix(request))
    store.apply({"k": b"v"})
    assert list(store.scan("")) == [("k", b"v")]
    assert c.failovers == 1
    dead = EtcdClient(["http://127.0.0.1:1", "http://127.0.0.1:2"], timeout=0.5)
    with pytest.raises(EtcdUnavailable, match=r"127\.0\.0\.1:1.*127\.0\.0\.1:2"):
        dead.get(b"k")
    with pytest.raises(EtcdError, match="bad etcd endpoint"):
        EtcdClient(["https://x:1"])


def test_a_restarted_node_reclaims_its_key(client: EtcdClient, request: pytest.FixtureRequest) -> None:
    cluster = request.node.name
    old, new = Lease(client, ttl=30), Lease(client, ttl=30)
    old.grant(time.monotonic())
    new.grant(time.monotonic())
    node = Leadership(client, cluster, "gw1")
    assert node.campaign("a", old) == "gw1"
    assert not node.holds("a", new) and node.owner("a") == "gw1"
    assert node.reclaim("a", new) and node.holds("a", new)
    old.revoke()  # the old lease going takes nothing with it now
    assert node.owner("a") == "gw1"
    assert not Leadership(client, cluster, "gw2").reclaim("a", new)
    new.revoke()


def test_lease_revoked_frees_the_key(client: EtcdClient, request: pytest.FixtureRequest) -> None:
    cluster = request.node.name
    node = Leadership(client, cluster, "gw1")
    lease = Lease(client, ttl=30)
    lease.grant(time.monotonic())
    assert node.campaign("a", lease) == "gw1" and node.campaign("b", lease) == "gw1"
    lease.revoke()
    assert node.owner("a") is None and node.owner("b") is None
    assert not lease.keepalive(time.monotonic())


class _Flaky:
    """An inner store failing ``fail`` times (unavailable), or fenced, then working."""

    def __init__(self, fail: int = 0, fenced: bool = False) -> None:
        self.data = MemoryKvStore()
        self.fail, self.fenced, self.calls = fail, fenced, 0

    def apply(self, puts: Mapping[str, bytes], deletes: Sequence[str] = ()) -> None:
        self.calls += 1
        if self.fenced:
            raise NotOwner("owner key names gw2")
        if self.fail:
            self.fail -= 1
            raise EtcdUnavailable("no etcd member answered")
        self.data.apply(puts, deletes)

    def scan(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        return self.data.scan(prefix)

    def close(self) -> None:
        pass


def test_write_behind_coalesces_and_flushes(client: EtcdClient, request: pytest.FixtureRequest) -> None:
    inner = EtcdKvStore(client, _prefix(request))
    wb = WriteBehind(inner)
    for i in range(200):  # the loop goes on while etcd writes
        wb.apply({f"seq/{i % 10:02d}": str(i).encode()}, deletes=["gone"] if i == 5 else ())
    assert wb.flush(5.0)
    got = dict(wb.scan("seq/"))
    assert got == {f"seq/{k:02d}": str(190 + k).encode() for k in range(10)}  # the last value of each
    assert inner.writes < 200  # coalesced
    wb.apply({}, ["seq/00"])
    assert wb.flush(5.0) and "seq/00" not in dict(wb.scan("seq/"))
    wb.close()
    with pytest.raises(StoreError, match="closed"):
        wb.apply({"k": b"v"})


def test_write_behind_retries_while_etcd_is_away_and_newer_wins() -> None:
    inner = _Flaky(fail=3)
    wb = WriteBehind(inner)
    wb.RETRY = 0.05
    wb.apply({"ike/01": b"old"})
    time.sleep(0.02)
    wb.apply({"ike/01": b"new", "ike/02": b"x"})
    assert wb.flush(5.0)
    assert dict(inner.data.scan("")) == {"ike/01": b"new", "ike/02": b"x"}
    assert wb.errors == 3 and wb.last_error is None and inner.calls >= 4
    wb.close()


def test_write_behind_drops_everything_when_fenced() -> None:
    inner = _Flaky(fenced=True)
    wb = WriteBehind(inner)
    wb.apply({"ike/01": b"a"})
    assert wb.flush(5.0)  # nothing left: not retried
    assert inner.calls == 1 and "gw2" in (wb.last_error or "")
    assert list(inner.data.scan("")) == []
    wb.close()
