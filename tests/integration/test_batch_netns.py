"""RawIp batches between two namespaces: send_many (sendmmsg) and IPv4 receiving (recvmmsg), and
the same with the one-call-per-packet fallback used when the C extension is not built."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from snakeswan.io import batch
from snakeswan.io.rawip import ESP, RawIp
from tests.integration.test_io_drivers import two_sites, wait_receive
from tests.netns import inside

MODES = [
    pytest.param(False, id="fallback"),
    pytest.param(
        True, id="mmsg", marks=pytest.mark.skipif(not batch.HAVE_MMSG, reason="the C extension was not built")
    ),
]


@pytest.mark.netns
@pytest.mark.parametrize("batched", MODES)
def test_send_many_and_batched_receive(topology: Any, batched: bool) -> None:
    west, east = two_sites(topology)
    with inside(west):
        tx = RawIp(ESP)
    with inside(east):
        rx = RawIp(ESP)
    with tx, rx:
        tx.batched = rx.batched = batched
        payloads = [struct.pack("!II", 0xC0FFEE, seq) + bytes([seq]) * (seq * 9) for seq in range(1, 101)]
        sources = ["10.231.0.11" if seq % 3 else "10.231.0.1" for seq in range(1, 101)]
        messages: list[tuple[bytes, str, str | None]] = [
            (p, "10.231.0.2", s) for p, s in zip(payloads, sources, strict=True)
        ]
        # failures in the middle are counted and the rest still goes, in order
        messages.insert(10, (b"bad source", "10.231.0.2", "10.231.5.5"))
        messages.insert(50, (b"wrong family", "::1", None))
        assert tx.send_many(messages) == 100
        assert tx.drops == 2
        got: list[Any] = []
        while len(got) < 100 and (more := wait_receive(rx)):
            got += more
        assert [(p.src, p.dst, p.data) for p in got] == [
            (s, "10.231.0.2", p) for p, s in zip(payloads, sources, strict=True)
        ]
        assert tx.send_many([(payloads[0], "10.231.0.2", None)]) == 1  # a batch of one
        assert [p.data for p in wait_receive(rx)] == [payloads[0]]
