"""Virtual IP leases from the configured pools (Mode Config, gateway side).

A small model the engine asks (DESIGN.md, "Growing the house"): each identity (the XAUTH user
name, else the IKE identity) keeps the address it had for as long as the daemon runs, so that a
client that reconnects gets the same virtual IP (strongSwan's mem_pool does the same). An address
is *online* while an IKE SA holds it and *offline* once released; a new identity gets a free address
or, once the pool has no address left that was never used, the oldest offline one. Every lookup is a
dict (by identity, by address), so the cost does not grow with the number of leases.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass

from snakeswan.config.model import Pool
from snakeswan.config.traffic import IPAddress


@dataclass(frozen=True, slots=True)
class Lease:
    pool: str
    identity: str
    address: IPAddress
    online: bool


class PoolLeases:
    """The leases of one pool."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self._next = 0  # offset of the next address never handed out
        self._by_identity: dict[str, IPAddress] = {}
        self._owner: dict[IPAddress, str] = {}
        self._online: dict[IPAddress, int] = {}  # address -> holders (IKE SAs) now
        self._offline: OrderedDict[IPAddress, None] = OrderedDict()  # oldest release first

    def acquire(self, identity: str, requested: IPAddress | None = None) -> IPAddress | None:
        """The address of ``identity`` (its old one if it had one), None if the pool is exhausted.
        A specific ``requested`` address is honoured when it is free or already this identity's."""
        address = self._by_identity.get(identity)
        if address is None and requested is not None and self._free(requested):
            address = requested
        if address is None:
            address = self._fresh()
        if address is None:
            return None
        self._bind(identity, address)
        self._online[address] = self._online.get(address, 0) + 1
        self._offline.pop(address, None)
        return address

    def release(self, address: IPAddress) -> None:
        held = self._online.get(address, 0)
        if held <= 1:
            self._online.pop(address, None)
            if address in self._owner:
                self._offline[address] = None
        else:
            self._online[address] = held - 1

    def _free(self, address: IPAddress) -> bool:
        """In the pool, and neither online nor remembered for another identity."""
        if address.version != self.pool.start.version or not int(self.pool.start) <= int(address) <= int(
            self.pool.end
        ):
            return False
        return address not in self._owner

    def _fresh(self) -> IPAddress | None:
        while self._next < self.pool.size:
            address = ipaddress.ip_address(int(self.pool.start) + self._next)
            self._next += 1
            if address not in self._owner:
                return address
        if self._offline:  # reuse the address released longest ago
            address, _ = self._offline.popitem(last=False)
            del self._by_identity[self._owner.pop(address)]
            return address
        return None

    def _bind(self, identity: str, address: IPAddress) -> None:
        old = self._owner.get(address)
        if old is not None and old != identity:
            del self._by_identity[old]
        self._owner[address] = identity
        self._by_identity[identity] = address

    def leases(self) -> list[Lease]:
        return [
            Lease(self.pool.name, identity, address, address in self._online)
            for address, identity in self._owner.items()
        ]

    @property
    def online(self) -> int:
        return len(self._online)


class Leases:
    """All pools' leases; pools come from the configuration (a reload keeps the leases of pools
    whose range did not change)."""

    def __init__(self, pools: tuple[Pool, ...] = ()) -> None:
        self._pools: dict[str, PoolLeases] = {}
        self.configure(pools)

    def configure(self, pools: tuple[Pool, ...]) -> None:
        old = self._pools
        self._pools = {}
        for pool in pools:
            kept = old.get(pool.name)
            same = kept is not None and (kept.pool.start, kept.pool.end) == (pool.start, pool.end)
            self._pools[pool.name] = kept if same and kept is not None else PoolLeases(pool)
            self._pools[pool.name].pool = pool

    def acquire(
        self, pool_names: tuple[str, ...], identity: str, version: int, requested: IPAddress | None = None
    ) -> tuple[str, IPAddress] | None:
        """An address of IP ``version`` for ``identity`` from the first of ``pool_names`` that has
        one: (pool name, address), or None when they are all exhausted."""
        for name in pool_names:
            pool = self._pools.get(name)
            if pool is None or pool.pool.start.version != version:
                continue
            wanted = requested if requested is not None and requested.version == version else None
            address = pool.acquire(identity, wanted)
            if address is not None:
                return name, address
        return None

    def release(self, pool_name: str, address: IPAddress) -> None:
        pool = self._pools.get(pool_name)
        if pool is not None:
            pool.release(address)

    def pool(self, name: str) -> Pool | None:
        p = self._pools.get(name)
        return p.pool if p else None

    def listing(self) -> list[dict[str, object]]:
        """What ``list-pools`` shows: each pool's range, size, leases online/offline."""
        out: list[dict[str, object]] = []
        for name, p in self._pools.items():
            out.append(
                {
                    "name": name,
                    "base": f"{p.pool.start}-{p.pool.end}",
                    "size": p.pool.size,
                    "online": p.online,
                    "offline": len(p.leases()) - p.online,
                    "leases": [
                        {"identity": lease.identity, "address": str(lease.address), "online": lease.online}
                        for lease in p.leases()
                    ],
                }
            )
        return out
