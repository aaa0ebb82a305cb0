"""The daemon's side of a cluster (``[cluster]``): which shares this node owns, and what changes
when it wins or loses one.

Every 0.1 s one *round* runs in a worker thread, because each etcd request blocks: every
``lease_ttl / 4`` it refreshes the node's lease (a new one when etcd says it is gone) and checks
that the owner keys of its shares still name it; every round it reads the owner key of each other
share (a read: no raft proposal) and campaigns for those that have none (a transaction).
A share in ``prefer`` is campaigned for from the start; any other only once the node has been
up for one lease TTL (so that at a cold start each share goes to the node that prefers it, and
later a dead node's shares go to whoever sees them free first).
The round's outcome is applied on the loop thread:

- **won** a share: its virtual address is added and announced by gratuitous ARP (three rounds,
  0.2 s apart); the address is added with a lifetime of one lease TTL, renewed with each lease
  refresh, so that a node killed with ``kill -9`` (its host still up) stops answering for it by
  the time the lease ends and another node takes it (a start also removes what a crash left); then
  ``hooks.take_share`` restores the share's SAs from its store (an
  :class:`~snakeswan.io.etcd_store.EtcdKvStore` fenced by the owner key, written by a thread of
  its own: :class:`~snakeswan.io.etcd_store.WriteBehind`) and serves them:
  the peers see the same SAs at the same address, nothing is negotiated again;
- **lost** it (the lease could not be refreshed for a whole TTL, or the owner key names another
  node): the address goes first (we never answer for it without owning it), then
  ``hooks.drop_share`` forgets its SAs without a Delete (the new owner carries them on).

A node that cannot reach etcd at all keeps what it had until its lease runs out by its own clock
(:meth:`Lease.valid`), then gives everything up: a node cut off from etcd and one cut off from the
peers cannot both serve an address for long; the new owner's takeover needs etcd, which the cut
off node has lost. On stop the node resigns each share (its keys deleted at once, so a planned stop
hands over without waiting for a TTL) and revokes its lease.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

from snakeswan.config.cluster import ClusterConfig, ShareConfig
from snakeswan.errors import LocalError
from snakeswan.io.etcd_client import EtcdClient, EtcdError
from snakeswan.io.etcd_store import EtcdKvStore, WriteBehind
from snakeswan.io.kvstore import KvStore
from snakeswan.io.leadership import Leadership, Lease, owner_key, state_prefix
from snakeswan.io.vip import GARP_GAP, GARP_ROUNDS, add_address, gratuitous_arp, remove_address

__all__ = ["ClusterHooks", "ClusterNode", "Round"]

log = logging.getLogger("snakeswan.cluster")
TICK = 0.1  # a round: the lease refreshed every TTL/4, free shares looked for every tick


class ClusterHooks(Protocol):
    def take_share(self, share: ShareConfig, store: KvStore) -> int:
        """Restore and serve the SAs in ``store`` (written there from now on); how many."""

    def drop_share(self, share: ShareConfig) -> int:
        """Forget the share's SAs without telling the peers; how many."""


@dataclass(slots=True)
class Round:
    """What one round found: shares won and lost, the owner of each share, etcd's state."""

    won: list[str] = field(default_factory=list)
    refreshed: bool = False  # the lease was refreshed: the owned addresses' lifetimes too
    lost: list[str] = field(default_factory=list)
    owners: dict[str, str | None] = field(default_factory=dict)
    error: str | None = None


class ClusterNode:
    def __init__(self, config: ClusterConfig, hooks: ClusterHooks) -> None:
        self.config = config
        self.hooks = hooks
        self.client = EtcdClient(config.endpoints, timeout=config.timeout)
        self.store_client = EtcdClient(config.endpoints, timeout=config.timeout)  # loop-thread writes
        self.lease = Lease(self.client, config.lease_ttl)
        self.leadership = Leadership(self.client, config.name, config.node)
        self.shares = {s.name: s for s in config.shares}
        self.owned: set[str] = set()
        self.owners: dict[str, str | None] = {}
        self.stores: dict[str, WriteBehind] = {}
        self.etcd_error: str | None = None
        self.takeovers = 0
        self._started = time.monotonic()
        self._refreshed = 0.0
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="snakeswan-etcd")
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def tick(self) -> float:
        return TICK

    def start(self) -> None:
        """Start the rounds; first remove the shares' addresses a crashed run of ours may have left
        (we own nothing yet: answering for an address we do not own would fight its owner)."""
        for share in self.shares.values():
            try:
                if remove_address(share.address, share.interface):
                    log.warning(
                        "cluster: removed %s from %s (left by an earlier run)", share.address, share.interface
                    )
            except LocalError as e:
                log.error("cluster: cannot clear %s on %s: %s", share.address, share.interface, e)
        self._started = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            owned = frozenset(self.owned)
            result = await loop.run_in_executor(self._pool, self._round, owned)
            if self._stopping:
                break
            self._apply(result)
            await asyncio.sleep(self.tick)

    # ---- one round, in the worker thread ----------------------------------------------------

    def _round(self, owned: frozenset[str]) -> Round:
        result = Round()
        now = time.monotonic()
        try:
            refresh = now - self._refreshed >= self.config.lease_ttl / 4 or not self.lease.id
            if refresh:
                self._refreshed = now
                result.refreshed = self.lease.keepalive(now)
                if not result.refreshed:
                    self.lease.grant(time.monotonic())
                    node, lease = self.config.node, self.lease
                    log.info("cluster: node %s has lease %x (TTL %ds)", node, lease.id, lease.ttl)
            patient = time.monotonic() - self._started >= self.lease.ttl
            for name in self.shares:
                if name in owned:
                    if refresh and not self.leadership.holds(name, self.lease):
                        result.lost.append(name)
                    continue
                owner = self.leadership.owner(name)  # a read: no raft round unless it is free
                if owner is None and (patient or name in self.config.prefer):
                    owner = self.leadership.campaign(name, self.lease)
                elif owner == self.config.node and not self.leadership.holds(name, self.lease):
                    # ours from before a restart, on the old lease: onto this one
                    owner = self.config.node if self.leadership.reclaim(name, self.lease) else None
                result.owners[name] = owner
                if owner == self.config.node:
                    result.won.append(name)
        except EtcdError as e:
            result.error = str(e)
        if not self.lease.valid(time.monotonic()):
            result.lost = sorted(owned)
            result.won = []
        return result

    # ---- applying it, on the loop thread ----------------------------------------------------

    def _apply(self, result: Round) -> None:
        if result.error != self.etcd_error:
            if result.error:
                log.warning("cluster: etcd: %s", result.error)
            else:
                log.info("cluster: etcd reachable again")
            self.etcd_error = result.error
        self.owners.update(result.owners)
        for name in result.lost:
            self._lose(
                name, "lease lost" if result.error or not self.lease.id else "owner key names another node"
            )
        for name in result.won:
            self._win(name)
        if result.refreshed:
            for name in sorted(self.owned - set(result.won)):
                self._add_address(self.shares[name])

    def _add_address(self, share: ShareConfig) -> None:
        """The address for one lease TTL: refreshed with the lease, it outlives the process by
        that much at most (after ``kill -9`` the host stops answering for it as the lease ends)."""
        try:
            add_address(share.address, share.interface, self.lease.ttl)
        except LocalError as e:
            log.error("cluster: share %s: cannot add %s: %s", share.name, share.address, e)

    def _win(self, name: str) -> None:
        share = self.shares[name]
        t0 = time.monotonic()
        self.owned.add(name)
        self.owners[name] = self.config.node
        self._add_address(share)
        self._announce(share, GARP_ROUNDS)
        store = WriteBehind(
            EtcdKvStore(
                self.store_client,
                state_prefix(self.config.name, name),
                guard=(owner_key(self.config.name, name), self.config.node.encode()),
            )
        )
        self.stores[name] = store
        restored = self.hooks.take_share(share, store)
        self.takeovers += 1
        log.warning(
            "cluster: node %s took share %s (%s on %s): %d IKE SAs restored in %.0f ms",
            self.config.node,
            name,
            share.address,
            share.interface,
            restored,
            (time.monotonic() - t0) * 1000,
        )

    def _announce(self, share: ShareConfig, rounds: int) -> None:
        if rounds <= 0 or share.name not in self.owned:
            return
        try:
            gratuitous_arp(share.address, share.interface)
        except LocalError as e:
            log.warning("cluster: %s", e)
        if rounds > 1:
            asyncio.get_running_loop().call_later(GARP_GAP, self._announce, share, rounds - 1)

    def _lose(self, name: str, why: str) -> None:
        if name not in self.owned:
            return
        share = self.shares[name]
        self.owned.discard(name)
        store = self.stores.pop(name, None)
        try:
            remove_address(share.address, share.interface)
        except LocalError as e:
            log.error("cluster: cannot remove %s from %s: %s", share.address, share.interface, e)
        dropped = self.hooks.drop_share(share)
        if store is not None:
            store.close()  # what was not written is not ours to write any more
        log.warning(
            "cluster: node %s gave up share %s (%s): %d IKE SAs forgotten",
            self.config.node,
            name,
            why,
            dropped,
        )

    # ---- stop ---------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Hand every share over at once: address removed, owner key deleted, lease revoked."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
        loop = asyncio.get_running_loop()
        for name in sorted(self.owned):  # the next owner must read our last writes
            store = self.stores.get(name)
            if store is not None and not await loop.run_in_executor(
                None, store.flush, self.config.timeout * 3
            ):
                log.warning("cluster: share %s: last writes not in etcd (%s)", name, store.last_error)
            self._lose(name, "stopping")
        try:
            await asyncio.wait_for(
                loop.run_in_executor(self._pool, self._resign_all), self.config.timeout * 3
            )
        except (TimeoutError, EtcdError) as e:
            log.warning("cluster: could not resign cleanly (%s); the lease expires in %ds", e, self.lease.ttl)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()
        self.store_client.close()

    def _resign_all(self) -> None:
        for name in self.shares:
            self.leadership.resign(name)
        self.lease.revoke()

    def status(self) -> dict[str, object]:
        """For ``list-sas`` and logs: this node, the shares it owns, who owns the others."""
        return {
            "node": self.config.node,
            "cluster": self.config.name,
            "owned": sorted(self.owned),
            "owners": dict(sorted(self.owners.items())),
            "etcd_error": self.etcd_error,
            "lease": self.lease.id,
        }
