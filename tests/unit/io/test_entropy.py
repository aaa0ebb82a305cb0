"""BufferedRandom: slices of blocks from the source, every byte used once."""

from __future__ import annotations

import itertools

import pytest

from snakeswan.io.entropy import BufferedRandom


def test_slices_of_blocks_each_byte_once() -> None:
    calls: list[int] = []
    counter = itertools.count()

    def source(n: int) -> bytes:
        calls.append(n)
        return bytes(next(counter) & 0xFF for _ in range(n))

    rng = BufferedRandom(source, block=20)
    got = [rng(8), rng(8), rng(8), rng(3), rng(30), rng(16)]
    assert [len(g) for g in got] == [8, 8, 8, 3, 30, 16]
    assert calls == [20, 20, 30, 20]  # 8+8 from the first block, 8+3 from the second, 30 direct
    assert got[0] + got[1] == bytes(range(16))
    assert got[2] + got[3] == bytes(range(20, 31))
    assert got[5] == bytes(range(70, 86))


def test_default_source_and_bad_block() -> None:
    rng = BufferedRandom()
    values = {rng(8) for _ in range(1000)}
    assert len(values) == 1000 and all(len(v) == 8 for v in values)
    assert rng(0) == b""
    with pytest.raises(ValueError):
        BufferedRandom(block=0)
