"""ISAKMP cookies (RFC 2408 section 2.5.3): a hash over the peer's and our addresses and ports and a
local secret that rotates, so that cookies cannot be predicted and state is only made for peers that
can receive at their address."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from snakeswan.crypto.algorithms import hash_by_name
from snakeswan.ike.events import Address

_SHA256 = hash_by_name("sha256")


class CookieJar:
    """Makes cookies; the secret changes every ``rotate`` seconds."""

    def __init__(self, rng: Callable[[int], bytes], rotate: float = 3600.0) -> None:
        self._rng = rng
        self._rotate = rotate
        self._secret = rng(32)
        self._born: float | None = None
        self._counter = 0

    def make(self, local: Address, remote: Address, other: bytes, now: float) -> bytes:
        """An 8-byte cookie: prf(secret, counter | addresses | ports | the other cookie)[:8]."""
        if self._born is None:
            self._born = now
        elif now - self._born >= self._rotate:
            self._secret, self._born = self._rng(32), now
        self._counter += 1
        data = (
            self._counter.to_bytes(8, "big")
            + ipaddress.ip_address(remote[0]).packed
            + remote[1].to_bytes(2, "big")
            + ipaddress.ip_address(local[0]).packed
            + local[1].to_bytes(2, "big")
            + other
        )
        cookie = _SHA256.prf(self._secret, data)[:8]
        return cookie if cookie != bytes(8) else b"\x00" * 7 + b"\x01"
