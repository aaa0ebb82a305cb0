"""The daemon's persistence against an in-memory store and a data plane double (issue 14):
records follow the SAs' lives, restores rebuild engine and data plane, and the outbound sequence
number never goes back, even through two crashes in a row without a checkpoint between them."""

from __future__ import annotations

import os
from typing import Any

from snakeswan.config.loader import parse_config
from snakeswan.daemon.dataplane import policy_key, sa_params
from snakeswan.daemon.persistence import Persistence
from snakeswan.ike.engine import Engine
from snakeswan.ike.events import ChildSaDeleted, ChildSaEstablished, ChildSaInfo
from snakeswan.io.kvstore import MemoryKvStore
from snakeswan.ipsec.checkpoint import MIN_MARGIN
from snakeswan.ipsec.processor import Processor
from snakeswan.trace import Tracer
from tests.pair import A_ADDR, B_ADDR, Pair, rng_for, site_config

KEY = os.urandom(32)
CA = site_config(A_ADDR, B_ADDR, "10.231.1.0/24", "10.231.2.0/24")
CB = site_config(B_ADDR, A_ADDR, "10.231.2.0/24", "10.231.1.0/24")


class Plane:
    """What the persistence uses of DataPlane: children, processor, child_up, add_vips."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.processor = Processor(os.urandom)
        self.children: dict[int, ChildSaInfo] = {}

    def child_up(self, info: ChildSaInfo, now: float) -> None:
        conn = self.config.connection(info.conn)
        child = conn.child(info.child)
        self.processor.install(
            sa_params(info.spi_in, info.keys_in, info, child),
            sa_params(info.spi_out, info.keys_out, info, child),
            policy_key(conn, child.name, info),
            now=now,
        )
        self.children[info.spi_in] = info

    def add_vips(self, *args: Any) -> None:
        raise AssertionError("no virtual IPs here")

    def resumed(self, spi_in: int, cp: Any) -> None:
        """One data-plane worker: nobody else to tell."""

    def moved(self) -> set[int]:
        """Every pair: these tests move counters by hand, not with packets (the real DataPlane
        names only the pairs that counted packets since: tests/unit/daemon/test_idle_sas.py)."""
        return set(self.children)


def _feed(p: Pair, persist: Persistence, plane: Plane, since: int = 0) -> None:
    for ev in p.a.events[since:]:
        persist.on_event(ev)
        if isinstance(ev, ChildSaEstablished):
            plane.child_up(ev.child, p.now)
    persist.flush()


def _restart(store: MemoryKvStore, now: float, seed: int) -> tuple[Engine, Plane, Persistence]:
    engine = Engine(parse_config(CA, "a.toml"), rng_for(seed), tracer=Tracer())
    plane = Plane(engine.config)
    persist = Persistence(engine, lambda: plane, store, KEY, lambda: 0.0)  # type: ignore[arg-type,return-value]
    r = persist.restore(None, now)
    assert (r.ike_sas, r.children, r.unusable) == (1, 1, 0)
    return engine, plane, persist


def test_records_follow_the_sa_and_sequence_numbers_never_repeat() -> None:
    p = Pair(CA, CB)
    store = MemoryKvStore()
    plane = Plane(p.a.engine.config)
    persist = Persistence(p.a.engine, lambda: plane, store, KEY, lambda: 0.0)  # type: ignore[arg-type,return-value]
    p.a.engine.initiate("site", now=p.now)
    p.run(max_time=1)
    _feed(p, persist, plane)
    assert [k for k, _ in store.scan("ike/")] == [
        f"ike/{p.a.engine.ike_sas[0].icookie.hex()}" + p.a.engine.ike_sas[0].rcookie.hex()
    ]
    spi = next(iter(plane.children))
    sa_in, sa_out = plane.processor.pair(spi)  # type: ignore[misc]
    sa_out.seq, sa_in.replay.top = 5000, 70
    assert persist.checkpoint() == 1 and persist.checkpoint() == 0  # only what moved
    sa_out.seq = 6000  # sent after the checkpoint, then kill -9
    engine, plane2, _ = _restart(store, p.now + 1, seed=9)
    pair2 = plane2.processor.pair(spi)
    assert pair2 is not None
    first = pair2[1].seq
    assert first == 5000 + MIN_MARGIN > 6000
    assert not pair2[0].replay.check(70) and pair2[0].replay.check(71)
    assert engine.ike_sas[0].children[0].spi_in == spi
    pair2[1].seq += 10  # a few packets, and a second crash before any checkpoint
    _, plane3, _ = _restart(store, p.now + 2, seed=10)
    pair3 = plane3.processor.pair(spi)
    assert pair3 is not None and pair3[1].seq > first + 10  # never numbered twice


def test_deleted_sa_leaves_no_record() -> None:
    p = Pair(CA, CB)
    store = MemoryKvStore()
    plane = Plane(p.a.engine.config)
    persist = Persistence(p.a.engine, lambda: plane, store, KEY, lambda: 0.0)  # type: ignore[arg-type,return-value]
    p.a.engine.initiate("site", now=p.now)
    p.run(max_time=1)
    _feed(p, persist, plane)
    spi = next(iter(plane.children))
    plane.processor.pair(spi)[1].seq = 3  # type: ignore[index]
    persist.checkpoint()
    assert list(store.scan("seq/"))
    mark = len(p.a.events)
    p.a.engine.delete_ike(p.a.engine.ike_sas[0].unique_id, p.now)
    p.run(max_time=1)
    assert any(isinstance(e, ChildSaDeleted) for e in p.a.events[mark:])
    _feed(p, persist, plane, mark)
    assert list(store.scan("")) == []


def test_write_all_to_another_store_and_restore_there() -> None:
    """The standby's path: everything written to a store, restored by another daemon's engine."""
    p = Pair(CA, CB)
    plane = Plane(p.a.engine.config)
    persist = Persistence(p.a.engine, lambda: plane, MemoryKvStore(), KEY, lambda: 0.0)  # type: ignore[arg-type,return-value]
    p.a.engine.initiate("site", now=p.now)
    p.run(max_time=1)
    _feed(p, persist, plane)
    shared = MemoryKvStore()
    assert persist.write_all(shared) == 2  # the IKE record and the counters
    standby = Engine(parse_config(CA, "a.toml"), rng_for(3), tracer=Tracer())
    plane2 = Plane(standby.config)
    mine = MemoryKvStore()
    persist2 = Persistence(standby, lambda: plane2, mine, KEY, lambda: 0.0)  # type: ignore[arg-type,return-value]
    r = persist2.restore(shared, p.now, prune=False)
    assert (r.ike_sas, r.children) == (1, 1) and list(plane2.children) == list(plane.children)
    again = persist2.restore(shared, p.now, prune=False)  # a second takeover changes nothing
    assert (again.ike_sas, again.children) == (0, 0) and len(standby.ike_sas) == 1
