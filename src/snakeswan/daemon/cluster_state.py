"""``[daemon] state = "etcd"``: the daemon's persistence (daemon/persistence.py) writing into the
stores of the shares this node owns, and the cluster node (daemon/cluster.py) deciding which.

:class:`ShareStores` is the :class:`~snakeswan.io.kvstore.KvStore` the persistence writes to. It
routes each record to the store of the share it belongs to: an ``ike/`` record by the SA's local
address (the share whose virtual address it is; read from the record's clear part, nothing is
unsealed), a ``seq/<spi>`` checkpoint by the IKE record that holds that IPsec SA. A record of a
share this node does not own (any more) is not written: only the owner writes, and the stores are
fenced besides (:class:`~snakeswan.io.etcd_store.NotOwner`). SAs on an address that is no share
are not written at all (logged once): they cannot move to another node anyway.

:class:`ClusterState` implements the node's hooks: taking a share restores its SAs from the
share's store into the engine and the data plane (``Daemon.restore``: the outbound sequence numbers
jump ahead, the replay windows close below the checkpoint, as after a restart) and writes them
back through the router (each record is re-sealed under a fresh nonce); dropping a share forgets
its SAs without a Delete (``Engine.forget_ike``): the new owner carries them on.
"""

from __future__ import annotations

import heapq
import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from snakeswan.config.cluster import ClusterConfig, ShareConfig
from snakeswan.crypto.seal import KEY_SIZE
from snakeswan.daemon.cluster import ClusterNode
from snakeswan.daemon.persistence import IKE_PREFIX, Persistence, seq_key
from snakeswan.errors import LocalError
from snakeswan.ike.sa import IkeSa
from snakeswan.io.kvstore import KvStore
from snakeswan.ipsec import checkpoint

if TYPE_CHECKING:
    from snakeswan.daemon.daemon import Daemon

__all__ = ["ClusterState", "ShareStores", "owner_fields", "read_key", "start"]

log = logging.getLogger("snakeswan.cluster")


class ShareStores:
    """One KvStore over the stores of the shares owned now (see the module's docstring)."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.stores: dict[str, KvStore] = {}
        self._share_of: dict[str, str] = {}  # record key -> share
        self.unrouted = 0  # records of SAs on no share's address, or of a share not ours
        self._warned = False

    def apply(self, puts: Mapping[str, bytes], deletes: Sequence[str] = ()) -> None:
        batches: dict[str, tuple[dict[str, bytes], list[str]]] = {n: ({}, []) for n in self.stores}
        for key, data in puts.items():
            share = self._route(key, data)
            if share in batches:
                batches[share][0][key] = data
            else:
                self._unrouted(key, share)
        for key in deletes:
            share = self._share_of.pop(key, None)
            if share in batches:
                batches[share][1].append(key)
        for share, (p, d) in batches.items():
            if p or d:
                self.stores[share].apply(p, d)

    def _route(self, key: str, data: bytes) -> str | None:
        if key.startswith(IKE_PREFIX):
            try:
                rec: Any = json.loads(data)
                share = self.config.share_of(str(rec["local"][0]))
            except (ValueError, KeyError, IndexError, TypeError):
                return None
            if share is None:
                return None
            self._share_of[key] = share.name
            for child in rec.get("children") or []:
                if isinstance(child, dict) and isinstance(child.get("spi_in"), int):
                    self._share_of[seq_key(child["spi_in"])] = share.name
            return share.name
        return self._share_of.get(key)

    def _unrouted(self, key: str, share: str | None) -> None:
        self.unrouted += 1
        if not self._warned:
            self._warned = True
            why = f"share {share} is not ours" if share else "its SA's address is no share's"
            log.warning("cluster: record %s not written (%s; logged once)", key, why)

    def scan(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        yield from heapq.merge(*(s.scan(prefix) for s in self.stores.values()))

    def close(self) -> None:
        for s in self.stores.values():
            s.close()
        self.stores.clear()


def share_of_sa(config: ClusterConfig, sa: IkeSa) -> ShareConfig | None:
    return config.share_of(sa.local[0])


def owner_fields(daemon: Daemon, sa: IkeSa) -> dict[str, Any]:
    """What ``list-sas`` adds in a cluster: the node serving the SA and its share (None: an
    address that is no share's, served by this node only)."""
    cluster = daemon.config.cluster
    if cluster is None:
        return {}
    share = share_of_sa(cluster, sa)
    return {"node": cluster.node, "share": share.name if share else None}


class ClusterState:
    """The hooks of :class:`ClusterNode` for a daemon."""

    def __init__(self, daemon: Daemon, router: ShareStores) -> None:
        self.daemon = daemon
        self.router = router

    def take_share(self, share: ShareConfig, store: KvStore) -> int:
        self.router.stores[share.name] = store
        try:
            restored = self.daemon.restore(store)
        except LocalError as e:
            log.error("cluster: restoring share %s: %s", share.name, e)
            return 0
        if restored.unusable:
            log.error(
                "cluster: %d record(s) of share %s unusable (%s): is key_file the same on every node?",
                restored.unusable,
                share.name,
                restored.first_problem,
            )
        return restored.ike_sas

    def drop_share(self, share: ShareConfig) -> int:
        self.router.stores.pop(share.name, None)
        engine, now = self.daemon.engine, self.daemon._now()
        gone = [sa.unique_id for sa in engine.ike_sas if sa.local[0] == str(share.address.ip)]
        for sa_id in gone:
            engine.forget_ike(sa_id, now, f"share {share.name} owned by another node")
        self.daemon._pump()
        return len(gone)


def read_key(path: str) -> bytes:
    """The sealing key every node shares: never created here (a node with a key of its own could
    not open the others' records), so a missing or short file stops the daemon."""
    try:
        with open(path, "rb") as f:
            key = f.read(KEY_SIZE + 1)
    except OSError as e:
        raise LocalError(
            f"[cluster] key_file {path}: {e.strerror} (copy the same key to every node)"
        ) from None
    if len(key) != KEY_SIZE:
        raise LocalError(f"[cluster] key_file {path}: {len(key)} bytes, expected {KEY_SIZE} random bytes")
    return key


def start(daemon: Daemon) -> tuple[Persistence, ClusterNode]:
    """Persistence into the owned shares' stores, the checkpoint timer, the cluster node running."""
    cluster = daemon.config.cluster
    loop = daemon._loop
    assert cluster is not None and loop is not None
    key = read_key(cluster.key_file)
    router = ShareStores(cluster)
    persist = Persistence(
        daemon.engine, lambda: daemon.dataplane, router, key, lambda: time.time() - loop.time()
    )
    daemon.persist = persist
    node = ClusterNode(cluster, ClusterState(daemon, router))

    def tick() -> None:
        if daemon.persist is persist:
            persist.checkpoint()
            loop.call_later(checkpoint.INTERVAL, tick)

    loop.call_later(checkpoint.INTERVAL, tick)
    node.start()
    log.info(
        "cluster %s: node %s, shares %s, etcd %s",
        cluster.name,
        cluster.node,
        ", ".join(f"{s.name}={s.address}@{s.interface}" for s in cluster.shares),
        ", ".join(cluster.endpoints),
    )
    return persist, node
