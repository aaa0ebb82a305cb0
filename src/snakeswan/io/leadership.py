"""Leadership on etcd: a node's lease, and the owner key of each share it campaigns for.

A *share* is one virtual address and the SAs of the peers that talk to it, with its own state
(an :class:`~snakeswan.io.etcd_store.EtcdKvStore` under ``/snakeswan/<cluster>/state/<share>/``).
An active/standby pair is one share and two nodes; N active nodes are N shares, each node
preferring its own. Exactly one node owns a share at a time: the one whose name is in
``/snakeswan/<cluster>/owner/<share>``, a key attached to that node's lease.

- **campaign**: one transaction, "if the owner key is absent, put our name with our lease"; the
  node that loses reads the winner's name from the same transaction's failure branch.
- **keepalive**: every ``ttl / 4`` the node refreshes its lease. It counts the lease as its own
  until ``sent + ttl`` only, ``sent`` being when the last *answered* refresh was *sent*; etcd
  cannot expire the lease earlier than that, so a node cut off from etcd gives its shares up
  (:meth:`Lease.valid` turns false) before any other node can win them.
- **resign**: delete the owner key if it still names us (a clean stop hands the share over at
  once instead of after a TTL), then revoke the lease.

Every call takes ``now`` (a monotonic clock reading) from the caller and blocks on etcd: the
daemon runs them in a worker thread (``daemon/cluster.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from snakeswan.io.etcd_client import EtcdClient, absent, delete_op, put_op, range_op, unb64, value_is

__all__ = ["Leadership", "Lease", "owner_key", "state_prefix"]


def owner_key(cluster: str, share: str) -> bytes:
    return f"/snakeswan/{cluster}/owner/{share}".encode("ascii")


def state_prefix(cluster: str, share: str) -> str:
    return f"/snakeswan/{cluster}/state/{share}/"


@dataclass(slots=True)
class Lease:
    """One node's lease: its ID, the TTL etcd granted and until when we may count on it."""

    client: EtcdClient
    ttl: int
    id: int = 0
    valid_until: float = 0.0

    def grant(self, now: float) -> None:
        """A new lease (any old one is forgotten: its keys go when it expires)."""
        self.id, self.ttl = self.client.lease_grant(self.ttl)
        self.valid_until = now + self.ttl

    def keepalive(self, sent: float) -> bool:
        """Refresh the lease (``sent``: the clock when the request leaves). False when etcd says
        it is gone; raises :class:`~snakeswan.io.etcd_client.EtcdUnavailable` when no member
        answered (the lease may still be alive: :meth:`valid` says for how long)."""
        if not self.id:
            return False
        ttl = self.client.lease_keepalive(self.id)
        if ttl <= 0:
            self.id, self.valid_until = 0, 0.0
            return False
        self.valid_until = sent + ttl
        return True

    def valid(self, now: float) -> bool:
        return bool(self.id) and now < self.valid_until

    def revoke(self) -> None:
        if self.id:
            self.client.lease_revoke(self.id)
        self.id, self.valid_until = 0, 0.0


class Leadership:
    """The owner keys of a cluster's shares, as seen by node ``node``."""

    def __init__(self, client: EtcdClient, cluster: str, node: str) -> None:
        self.client = client
        self.cluster = cluster
        self.node = node
        self._me = node.encode()

    def owner(self, share: str) -> str | None:
        kv = self.client.get(owner_key(self.cluster, share))
        return kv.value.decode(errors="replace") if kv else None

    def campaign(self, share: str, lease: Lease) -> str | None:
        """Try to own ``share`` with ``lease``; returns the owner afterwards (us if we won, None if
        the key vanished between the two branches, which the next round settles)."""
        key = owner_key(self.cluster, share)
        won, responses = self.client.txn([absent(key)], [put_op(key, self._me, lease.id)], [range_op(key)])
        if won:
            return self.node
        kvs = responses[0].get("response_range", {}).get("kvs", []) if responses else []
        if not kvs:
            return None
        return unb64(kvs[0].get("value")).decode(errors="replace")

    def holds(self, share: str, lease: Lease) -> bool:
        """Whether the owner key names us and hangs on ``lease`` (after a retried campaign, or
        when a restarted node finds its old key still alive on an old lease)."""
        kv = self.client.get(owner_key(self.cluster, share))
        return kv is not None and kv.value == self._me and kv.lease == lease.id

    def reclaim(self, share: str, lease: Lease) -> bool:
        """Move our own owner key onto ``lease``: a node restarted before its old lease ran out
        finds the key under its name on that lease, which nobody refreshes any more."""
        key = owner_key(self.cluster, share)
        won, _ = self.client.txn([value_is(key, self._me)], [put_op(key, self._me, lease.id)])
        return won

    def resign(self, share: str) -> bool:
        """Give ``share`` up if it is ours; True when the key was ours and is gone."""
        key = owner_key(self.cluster, share)
        won, _ = self.client.txn([value_is(key, self._me)], [delete_op(key)])
        return won
