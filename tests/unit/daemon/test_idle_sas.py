"""The daemon's once-a-second work over the IPsec SAs (counter checkpoints for the state store,
inbound activity for DPD) costs what moved, not what is installed: the processor lists each SA at
its first packet after a look (Processor.take_moved), so a hub's thousands of idle SAs are never
visited (bench/throughput_many.py measured these walks as a gateway's whole idle cost when they
went over every SA)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from snakeswan.daemon import persistence
from snakeswan.daemon.dataplane import DataPlane
from snakeswan.daemon.persistence import Persistence
from snakeswan.io.kvstore import MemoryKvStore
from snakeswan.ipsec import Processor, SendIp
from snakeswan.ipsec.esp import EspCodec, encapsulate
from tests.unit.ipsec.helpers import counter_rng, ip_packet, sa_params

N = 300
ALG = "aes128gcm16"
TO_HUB = ip_packet("10.2.0.7", "10.1.0.5")  # from a peer's network into the hub's
FROM_HUB = ip_packet("10.1.0.5", "10.2.0.7")


class Info:
    def __init__(self, ike_sa: int) -> None:
        self.ike_sa = ike_sa


def spi_in(i: int) -> int:
    return 0x1000 + 2 * i


def hub() -> tuple[Processor, DataPlane]:
    """A processor with N SA pairs installed, each under a policy key of its own (one per peer),
    and a data plane around it (no TUN or sockets: only what the once-a-second work reads)."""
    proc = Processor(counter_rng())
    plane = DataPlane.__new__(DataPlane)
    plane.processor, plane.children = proc, {}
    plane._received, plane._moved = set(), set()
    for i in range(N):
        proc.install(sa_params(ALG, spi_in(i)), sa_params(ALG, spi_in(i) + 1), ("hub", f"lan@{i}"), now=0.0)
        plane.children[spi_in(i)] = Info(i)  # type: ignore[assignment]
    return proc, plane


def receive(proc: Processor, i: int, count: int = 1) -> None:
    """``count`` genuine ESP packets from peer ``i`` into the hub."""
    peer = EspCodec(spi_in(i), *_keys())
    first = proc.sad.inbound[(spi_in(i), 50)].replay.top + 1
    wire = [encapsulate(peer, TO_HUB, 4, first + n, os.urandom) for n in range(count)]
    delivered, _ = proc.inbound_esp_many(wire, 1.0)
    assert len(delivered) == count


def send(proc: Processor, i: int) -> None:
    (out,) = proc.outbound_via([FROM_HUB], ("hub", f"lan@{i}"), 1.0)
    assert isinstance(out, SendIp)


def _keys() -> tuple[int, int | None, int | None, bytes, bytes]:
    p = sa_params(ALG, 0x1000)
    return p.transform_id, p.key_length, p.auth, p.encryption_key, p.integrity_key


def no_walks(proc: Processor, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make a per-SA walk fail the test, and count the pairs looked up."""
    looked: list[int] = []
    pair = proc.pair

    def counted(spi: int) -> Any:
        looked.append(spi)
        return pair(spi)

    def counters(*args: object) -> dict[str, int]:
        raise AssertionError("a counters dict built per SA per second")

    monkeypatch.setattr(proc, "counters", counters)
    monkeypatch.setattr(proc, "pair", counted)
    return looked


def test_inbound_activity_names_the_sas_that_received_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proc, plane = hub()
    looked = no_walks(proc, monkeypatch)
    assert plane.inbound_activity() == {}
    receive(proc, 7, 3)
    receive(proc, 250)
    send(proc, 9)  # outbound only: no sign of life
    assert plane.inbound_activity() == {7: [spi_in(7)], 250: [spi_in(250)]}
    assert plane.inbound_activity() == {}  # nothing new since
    receive(proc, 7)
    assert plane.inbound_activity() == {7: [spi_in(7)]}
    assert looked == []  # DPD's look visits no pair


def test_moved_pairs_are_kept_for_each_consumer_and_forgotten_when_gone() -> None:
    proc, plane = hub()
    receive(proc, 1)
    send(proc, 2)
    assert plane.inbound_activity() == {1: [spi_in(1)]}  # DPD looked first: the checkpoints still see both
    assert plane.moved() == {spi_in(1), spi_in(2)}
    assert plane.moved() == set()
    receive(proc, 3)
    plane.children.pop(spi_in(3))  # as child_down does, with processor.remove
    proc.remove(spi_in(3))
    assert plane.moved() == set() and plane.inbound_activity() == {}


def test_checkpoints_only_build_records_for_pairs_that_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    proc, plane = hub()
    store = MemoryKvStore()
    persist = Persistence(None, lambda: plane, store, os.urandom(32), lambda: 0.0)  # type: ignore[arg-type]
    taken: list[int] = []
    take = persistence.checkpoint.take

    def counting(sa_in: Any, sa_out: Any, prev: Any) -> Any:
        taken.append(sa_in.spi)
        return take(sa_in, sa_out, prev)

    monkeypatch.setattr(persistence.checkpoint, "take", counting)
    looked = no_walks(proc, monkeypatch)
    assert persist.checkpoint() == 0 and taken == []  # nothing moved: nothing visited or built
    send(proc, 42)
    receive(proc, 43)
    assert persist.checkpoint() == 2 and sorted(taken) == [spi_in(42), spi_in(43)]
    assert sorted(looked) == [spi_in(42), spi_in(43)]
    records = dict(store.scan("seq/"))
    assert set(records) == {persistence.seq_key(spi_in(42)), persistence.seq_key(spi_in(43))}
    taken.clear()
    assert persist.checkpoint() == 0 and taken == []  # all idle again
