"""The daemon's once-a-second walks over every IPsec SA (counter checkpoints for the state store,
inbound activity for DPD) stay cheap for the idle SAs of a hub holding thousands: they report
exactly what moved, and an idle pair builds no object (bench/throughput_many.py measured these
two walks as the gateway's whole idle cost with 10,000 SAs)."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

import pytest

from snakeswan.daemon import persistence
from snakeswan.daemon.dataplane import DataPlane
from snakeswan.daemon.persistence import Persistence
from snakeswan.io.kvstore import MemoryKvStore
from snakeswan.ipsec import Processor
from tests.unit.ipsec.helpers import counter_rng, sa_params

N = 300


def hub() -> tuple[Processor, dict[int, Any]]:
    """A processor with N SA pairs installed, each under a policy key of its own (one per peer),
    and the data plane's view of them (``children``: inbound SPI -> the IKE SA's id)."""
    proc = Processor(counter_rng())
    children: dict[int, Any] = {}
    for i in range(N):
        spi_in, spi_out = 0x1000 + 2 * i, 0x1001 + 2 * i
        proc.install(sa_params("aes128gcm16", spi_in), sa_params("aes128gcm16", spi_out), ("hub", f"lan@{i}"))
        children[spi_in] = SimpleNamespace(ike_sa=i)
    return proc, children


def activity(plane: Any) -> list[int]:
    return DataPlane.inbound_activity(plane)


def test_inbound_activity_names_the_sas_that_received_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proc, children = hub()
    plane = SimpleNamespace(processor=proc, children=children, _inbound_seen={})

    def counters(*args: object) -> dict[str, int]:
        raise AssertionError("a counters dict built per SA per second")

    monkeypatch.setattr(proc, "counters", counters)
    assert activity(plane) == []
    proc.pair(0x1000 + 2 * 7)[0].packets += 3  # type: ignore[index]
    proc.pair(0x1000 + 2 * 250)[0].packets += 1  # type: ignore[index]
    proc.pair(0x1000 + 2 * 9)[1].packets += 5  # type: ignore[index]  # outbound only: no sign of life
    assert sorted(activity(plane)) == [7, 250]
    assert activity(plane) == []  # nothing new since


def test_checkpoints_only_build_records_for_pairs_that_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    proc, children = hub()
    plane = SimpleNamespace(processor=proc, children=children)
    store = MemoryKvStore()
    persist = Persistence(None, lambda: plane, store, os.urandom(32), lambda: 0.0)  # type: ignore[arg-type,return-value]
    taken: list[int] = []
    take = persistence.checkpoint.take

    def counting(sa_in: Any, sa_out: Any, prev: Any) -> Any:
        taken.append(sa_in.spi)
        return take(sa_in, sa_out, prev)

    monkeypatch.setattr(persistence.checkpoint, "take", counting)
    assert persist.checkpoint() == N and len(taken) == N  # the first: every pair
    taken.clear()
    assert persist.checkpoint() == 0 and taken == []  # all idle: nothing built
    proc.pair(0x1000 + 2 * 42)[1].seq += 10  # type: ignore[index]
    proc.pair(0x1000 + 2 * 43)[0].replay.top = 99  # type: ignore[index]
    assert persist.checkpoint() == 2 and sorted(taken) == [0x1000 + 2 * 42, 0x1000 + 2 * 43]
    assert persistence.seq_key(0x1000 + 2 * 42) in dict(store.scan("seq/"))
