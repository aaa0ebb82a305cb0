"""What the data plane asks when an IPsec SA goes, answered without walking every SA: which
policies a child has (``PolicyKeys``: by its name, the keys ``child``, ``child#N`` and the per-peer
``child@...``) and whether another installed SA still needs a policy (``ChildKeys``: SAs counted
per policy key and per configured child). On a hub holding 10,000 SAs these questions were walks
over all of them on every deletion, so a daemon stopping (10,000 deletions) took a minute."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

Key = tuple[str, str]  # (connection, the policy's child name: child, child#N, child@...)


def _names(key: Key) -> tuple[Key, Key]:
    """The names a key is found by: its own, and its child's without the ``#N`` of a pair."""
    conn, child = key
    return (conn, child), (conn, child.partition("#")[0])


class PolicyKeys:
    """The keys of the policies the data plane installed, indexed by the child names that
    :meth:`DataPlane.unprotect` is given (the key's second half, or it without ``#N``)."""

    def __init__(self) -> None:
        self._keys: set[Key] = set()
        self._by_name: dict[Key, dict[Key, None]] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __iter__(self) -> Iterator[Key]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: Key) -> None:
        if key in self._keys:
            return
        self._keys.add(key)
        for name in _names(key):
            self._by_name.setdefault(name, {})[key] = None

    def discard(self, key: Key) -> None:
        if key not in self._keys:
            return
        self._keys.discard(key)
        for name in _names(key):
            keys = self._by_name.get(name)
            if keys is not None:
                keys.pop(key, None)
                if not keys:
                    del self._by_name[name]

    def named(self, conn: str, child: str) -> list[Key]:
        """The keys of ``conn`` whose child name is ``child`` or is ``child#N``."""
        return list(self._by_name.get((conn, child), ()))


class ChildKeys:
    """Installed IPsec SAs (by inbound SPI) counted per policy key and per (connection, child)."""

    def __init__(self) -> None:
        self._of: dict[int, tuple[Key, Key]] = {}
        self._keys: Counter[Key] = Counter()
        self._children: Counter[Key] = Counter()

    def add(self, spi_in: int, key: Key, conn: str, child: str) -> None:
        self.discard(spi_in)
        self._of[spi_in] = (key, (conn, child))
        self._keys[key] += 1
        self._children[conn, child] += 1

    def discard(self, spi_in: int) -> None:
        entry = self._of.pop(spi_in, None)
        if entry is None:
            return
        for counter, k in ((self._keys, entry[0]), (self._children, entry[1])):
            counter[k] -= 1
            if counter[k] <= 0:
                del counter[k]

    def has_key(self, key: Key) -> bool:
        """An installed SA uses the policy ``key``."""
        return key in self._keys

    def has_child(self, conn: str, child: str) -> bool:
        """An installed SA belongs to the configured child ``conn``/``child``."""
        return (conn, child) in self._children
