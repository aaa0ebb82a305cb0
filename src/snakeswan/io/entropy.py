"""Randomness for the data plane's IVs, fetched from the OS in blocks.

The processor asks for 8 bytes (an AES-GCM IV) or a block (a CBC IV) per packet; one ``getrandom``
system call per packet is a measurable part of the per-packet cost, so :class:`BufferedRandom`
reads a block at a time and hands out slices of it. Every byte is used once; the bytes are no
different from ``os.urandom``'s (IVs are public, this only moves the system call).
"""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["BufferedRandom"]


class BufferedRandom:
    """``rng(n)``: ``n`` bytes from ``source`` (default ``os.urandom``), read ``block`` at a time;
    a request bigger than ``block`` goes to ``source`` directly."""

    __slots__ = ("_block", "_buf", "_pos", "_source")

    def __init__(self, source: Callable[[int], bytes] = os.urandom, block: int = 4096) -> None:
        if block < 1:
            raise ValueError(f"block of {block} bytes")
        self._source = source
        self._block = block
        self._buf = b""
        self._pos = 0

    def __call__(self, n: int) -> bytes:
        pos = self._pos
        end = pos + n
        if end > len(self._buf):
            if n > self._block:
                return self._source(n)
            self._buf = self._source(self._block)
            pos, end = 0, n
        self._pos = end
        return self._buf[pos:end]
