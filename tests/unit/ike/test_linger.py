"""Completed Quick Modes (ike/linger.py): a responder's is forgotten at QM3 but for its message
ID, an initiator's stays the peer's retransmission budget to answer a repeated QM2; a late copy
of a forgotten exchange's message is dropped, never taken for a new exchange."""

from __future__ import annotations

from snakeswan.ike import linger
from snakeswan.ike.events import ChildSaEstablished, Datagram
from snakeswan.wire.enums import ExchangeType
from tests.pair import Pair
from tests.unit.ike.test_pair_negative import pair


def quick_modes(p: Pair, sender: str) -> list[Datagram]:
    return [d for s, d in p.wire if s == sender and d.data[18] == ExchangeType.QUICK_MODE]


def drops(p: Pair, side: str, reason: str) -> int:
    engine = (p.a if side == "a" else p.b).engine
    return sum(1 for r in engine.tracer.records if r.event == "drop" and r.fields.get("reason") == reason)


def test_the_responder_forgets_a_quick_mode_at_qm3_and_drops_its_late_copies() -> None:
    p = pair()
    p.run(max_time=5)
    assert len(p.of(p.b, ChildSaEstablished)) == 1
    sa = p.b.engine.ike_sas[0]
    qm1, qm3 = quick_modes(p, "a")
    mid = int.from_bytes(qm1.data[20:24], "big")
    assert sa.exchanges == {} and list(sa.done_mids) == [mid]
    for late in (qm1, qm3):  # a late copy of QM1 would otherwise start a second Quick Mode
        p.b.engine.receive_datagram(late.data, late.src, late.dst, p.now)
    assert p.b.engine.datagrams_to_send(p.now) == []
    assert drops(p, "b", "exchange already complete") == 2
    assert len(sa.children) == 1


def test_the_initiator_keeps_its_quick_mode_for_a_lost_qm3_then_forgets_it() -> None:
    p = pair()
    p.run(max_time=5)
    sa = p.a.engine.ike_sas[0]
    (qm2,) = quick_modes(p, "b")
    _qm1, qm3 = quick_modes(p, "a")
    mid = int.from_bytes(qm2.data[20:24], "big")
    assert mid in sa.exchanges and sa.done_mids == {}
    assert sa.prune_at is not None and sa.prune_at - sa.exchanges[mid].done_at == linger.LINGER  # type: ignore[operator]
    # our QM3 was lost: the responder sends QM2 again, and gets QM3 again
    p.a.engine.receive_datagram(qm2.data, qm2.src, qm2.dst, p.now)
    assert [d.data for d in p.a.engine.datagrams_to_send(p.now)] == [qm3.data]
    p.run(max_time=linger.LINGER + 1)  # the engine's timer fires at prune_at
    assert mid not in sa.exchanges and list(sa.done_mids) == [mid] and sa.prune_at is None
    p.a.engine.receive_datagram(qm2.data, qm2.src, qm2.dst, p.now)
    assert p.a.engine.datagrams_to_send(p.now) == []
    assert drops(p, "a", "exchange already complete") == 1


def test_done_mids_are_bounded() -> None:
    p = pair()
    p.run(max_time=5)
    sa = p.b.engine.ike_sas[0]
    sa.done_mids.clear()
    for mid in range(1, 3 * linger.DONE_MIDS):
        sa.exchanges[mid] = sa.phase1  # type: ignore[assignment]
        linger.forget(sa, mid)
    # the newest DONE_MIDS message IDs, oldest first; the exchanges themselves are gone
    assert list(sa.done_mids) == list(range(2 * linger.DONE_MIDS, 3 * linger.DONE_MIDS))
    assert not set(sa.exchanges) & set(range(1, 3 * linger.DONE_MIDS))
