"""MODP key pairs made ahead of need, by another process (sans-I/O: the driver moves the numbers).

Making a MODP key pair is one modular exponentiation, g^x mod p: ~0.23 ms for MODP-2048, about a
sixth of what a responder spends on a whole Main Mode + Quick Mode, and it does not depend on the
peer. A daemon hands that work to a helper process (``daemon/dh_worker.py``) and keeps a small
stock per group here; an exchange takes a pair from the stock when one is there, and makes its
own when not (the stock is a speed-up, never a condition). Each pair is taken once: nothing here
ever gives the same private value twice. The shared secret (g^y)^x stays in the exchange, since it
needs the peer's value.

:meth:`DhStock.wanted` says how many pairs of each group to ask for: the stock is topped up to
``depth`` once it falls to half of it, counting what was asked for and has not come yet.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from snakeswan.crypto.dh import ModpGroup, ModpKeyPair, dh_group
from snakeswan.errors import CryptoError

__all__ = ["DEFAULT_DEPTH", "DhStock", "modp_groups"]

DEFAULT_DEPTH = 64  # pairs per group: a third of a second at 200 handshakes/s


def modp_groups(groups: Iterable[int]) -> list[int]:
    """The MODP groups among ``groups`` (the others are cheap or unsupported), in order."""
    out: list[int] = []
    for g in groups:
        try:
            impl = dh_group(g)
        except CryptoError:
            continue
        if isinstance(impl, ModpGroup) and g not in out:
            out.append(g)
    return out


class DhStock:
    """Per MODP group: pairs ready to take, and how many have been asked for."""

    def __init__(self, groups: Iterable[int], depth: int = DEFAULT_DEPTH) -> None:
        self.depth = depth
        self._ready: dict[int, deque[ModpKeyPair]] = {}
        self._asked: dict[int, int] = {}
        self.taken = 0  # pairs an exchange took from the stock
        self.missed = 0  # exchanges that found the stock of their group empty
        self.set_groups(groups)

    @property
    def groups(self) -> list[int]:
        return list(self._ready)

    def set_groups(self, groups: Iterable[int]) -> None:
        """Stock these groups (a reload may change them); pairs of groups no longer wanted go."""
        keep = modp_groups(groups)
        for g in list(self._ready):
            if g not in keep:
                del self._ready[g]
                self._asked.pop(g, None)
        for g in keep:
            self._ready.setdefault(g, deque())
            self._asked.setdefault(g, 0)

    def take(self, group: int) -> ModpKeyPair | None:
        """A pair of ``group`` never given before, or None (not stocked, or none ready)."""
        ready = self._ready.get(group)
        if ready is None:
            return None
        if not ready:
            self.missed += 1
            return None
        self.taken += 1
        return ready.popleft()

    def add(self, group: int, x: int, public: bytes) -> None:
        """A pair the helper made; :class:`CryptoError` if it is not one of ``group``'s."""
        ready = self._ready.get(group)
        if ready is None:
            return  # asked for before a reload dropped the group
        self._asked[group] = max(0, self._asked[group] - 1)
        impl = dh_group(group)
        assert isinstance(impl, ModpGroup)
        ready.append(impl.pair(x, public))

    def wanted(self) -> dict[int, int]:
        """How many more of each group to ask for now (counted as asked for)."""
        out: dict[int, int] = {}
        for g, ready in self._ready.items():
            have = len(ready) + self._asked[g]
            if have <= self.depth // 2:
                out[g] = self.depth - have
                self._asked[g] += out[g]
        return out

    def lost(self) -> None:
        """The helper is gone: what was asked for will not come."""
        for g in self._asked:
            self._asked[g] = 0
