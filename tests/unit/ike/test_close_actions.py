"""close_action (a Delete from the peer) and dpd_action follow-ups, between two engines with a fake
clock: ``none`` forgets the child, ``trap`` leaves it to the data plane's policy (the event says so),
``start`` negotiates it again at once."""

from __future__ import annotations

import pytest

from snakeswan.ike.events import ChildSaDeleted, ChildSaEstablished, IkeSaEstablished
from tests.pair import A_ADDR, B_ADDR, Pair, site_config

LAN_A, LAN_B = "10.231.1.0/24", "10.231.2.0/24"


def pair(close_a: str = "none", *, life: str = "1h", dpd_action: str = "clear", dpd: bool = False) -> Pair:
    timing = {"dpd_delay": "10s", "dpd_timeout": "20s"} if dpd else {}
    a = site_config(
        A_ADDR, B_ADDR, LAN_A, LAN_B, life_time=life, close_action=close_a, dpd_action=dpd_action, **timing
    )
    b = site_config(B_ADDR, A_ADDR, LAN_B, LAN_A, life_time=life)
    p = Pair(a, b)
    p.a.engine.initiate("site", now=p.now)
    p.run(max_time=1)
    assert len(p.of(p.a, ChildSaEstablished)) == 1
    return p


def only_child(p: Pair, side: str) -> tuple[int, int]:
    s = p.a if side == "a" else p.b
    (sa,) = s.engine.ike_sas
    (c,) = sa.children
    return c.spi_in, c.spi_out


def b_deletes_child(p: Pair) -> None:
    sa = p.b.engine.ike_sas[0]
    p.b.engine.delete_child(sa.unique_id, sa.children[0].spi_in, p.now)


@pytest.mark.parametrize("action", ["none", "trap"])
def test_peer_deletes_child_none_or_trap_does_not_renegotiate(action: str) -> None:
    p = pair(action)
    b_deletes_child(p)
    p.run(max_time=30)
    (gone,) = p.of(p.a, ChildSaDeleted)
    assert gone.reason == "deleted by peer" and gone.then == action
    assert len(p.of(p.a, ChildSaEstablished)) == 1  # nothing negotiated again
    assert p.a.engine.ike_sas[0].children == [] and p.b.engine.ike_sas[0].children == []
    assert not list(p.a.engine.tracer.find("child_restart"))


def test_peer_deletes_child_start_renegotiates_at_once() -> None:
    p = pair("start")
    old = only_child(p, "a")
    b_deletes_child(p)
    p.run(max_time=1)
    (gone,) = p.of(p.a, ChildSaDeleted)
    assert gone.then == "start" and gone.spi_in == old[0]
    assert len(p.of(p.a, ChildSaEstablished)) == 2
    new_a, new_b = only_child(p, "a"), only_child(p, "b")
    assert new_a == (new_b[1], new_b[0]) and new_a != old  # one fresh pair, crosswise
    assert len(p.a.engine.ike_sas) == 1  # under the same ISAKMP SA


def test_peer_deletes_ike_sa_start_negotiates_a_new_one() -> None:
    p = pair("start")
    p.b.engine.delete_ike(p.b.engine.ike_sas[0].unique_id, p.now)
    p.run(max_time=2)
    assert [e.then for e in p.of(p.a, ChildSaDeleted)] == ["start"]
    assert len(p.of(p.a, IkeSaEstablished)) == 2 and len(p.of(p.a, ChildSaEstablished)) == 2
    assert len(p.a.engine.ike_sas) == len(p.b.engine.ike_sas) == 1
    new_a, new_b = only_child(p, "a"), only_child(p, "b")
    assert new_a == (new_b[1], new_b[0])


def test_peer_deletes_ike_sa_none_leaves_nothing() -> None:
    p = pair("none")
    p.b.engine.delete_ike(p.b.engine.ike_sas[0].unique_id, p.now)
    p.run(max_time=30)
    assert [e.then for e in p.of(p.a, ChildSaDeleted)] == ["none"]
    assert p.a.engine.ike_sas == [] and len(p.of(p.a, IkeSaEstablished)) == 1


def test_delete_after_a_rekey_is_no_close() -> None:
    """The peer deletes the old SA of a rekey: the child lives on in its successor, nothing restarts."""
    a = site_config(A_ADDR, B_ADDR, LAN_A, LAN_B, life_time="100s", close_action="start")
    b = site_config(B_ADDR, A_ADDR, LAN_B, LAN_A, life_time="100s")
    p = Pair(a, b)
    p.b.engine.initiate("site", now=p.now)  # B is the child's initiator: B rekeys and deletes
    p.run(max_time=100)  # rekey at 90 s, old deleted 5 s later
    deleted = p.of(p.a, ChildSaDeleted)
    assert len(deleted) == 1 and deleted[0].reason == "deleted by peer" and deleted[0].then == "none"
    assert len(p.of(p.a, ChildSaEstablished)) == 2  # the original and the rekey, no restart
    assert len(p.a.engine.ike_sas[0].children) == 1


@pytest.mark.parametrize(("dpd_action", "then"), [("clear", "none"), ("trap", "trap"), ("restart", "start")])
def test_dpd_action_is_carried_by_the_event(dpd_action: str, then: str) -> None:
    p = pair(dpd=True, dpd_action=dpd_action)
    p.drop = lambda d, n: p.wire[n][0] == "b"  # B goes silent
    p.run(max_time=31)
    (gone,) = p.of(p.a, ChildSaDeleted)
    assert "DPD" in gone.reason and gone.then == then
    restarted = list(p.a.engine.tracer.find("child_restart"))
    assert bool(restarted) == (then == "start")
    assert len(p.a.engine.ike_sas) == (1 if then == "start" else 0)  # restart: a new MM under way


def test_local_delete_is_none_whatever_close_action() -> None:
    p = pair("start")
    sa = p.a.engine.ike_sas[0]
    p.a.engine.delete_child(sa.unique_id, sa.children[0].spi_in, p.now)
    p.run(max_time=10)
    (gone,) = p.of(p.a, ChildSaDeleted)
    assert gone.then == "none" and len(p.of(p.a, ChildSaEstablished)) == 1
