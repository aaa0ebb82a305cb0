"""IPsec SA life cycle between two engines with a fake clock: rekey before expiry (make before
break), deletion of the old SA, hard expiry."""

from __future__ import annotations

from typing import Any

import pytest

from snakeswan.errors import PeerError
from snakeswan.ike import quick_mode
from snakeswan.ike.events import ChildSaDeleted, ChildSaEstablished, ChildSaPreferred, IkeSaEstablished
from snakeswan.wire.enums import NotifyType
from tests.pair import A_ADDR, B_ADDR, Pair, site_config

LAN_A, LAN_B = "10.231.1.0/24", "10.231.2.0/24"


def pair(life: str = "100s") -> Pair:
    a = site_config(A_ADDR, B_ADDR, LAN_A, LAN_B, life_time=life)
    b = site_config(B_ADDR, A_ADDR, LAN_B, LAN_A, life_time=life)
    p = Pair(a, b)
    p.a.engine.initiate("site", now=p.now)
    p.run(max_time=1)
    return p


def test_three_rekeys_leave_one_pair() -> None:
    p = pair("100s")
    start = p.now
    p.run(max_time=280)  # rekey at 90 % of 100 s: t = 90, 180, 270
    est_a = [e.child for e in p.of(p.a, ChildSaEstablished)]
    est_b = [e.child for e in p.of(p.b, ChildSaEstablished)]
    assert len(est_a) == len(est_b) == 4
    # each new SA names the one it replaces, on both sides
    for later, earlier in zip(est_a[1:], est_a, strict=False):
        assert later.replaces == earlier.spi_in and later.initiator
    for later, earlier in zip(est_b[1:], est_b, strict=False):
        assert later.replaces == earlier.spi_in and not later.initiator
    # the old ones were deleted (by A after the overlap; B followed A's Delete)
    del_a = [e for e in p.of(p.a, ChildSaDeleted)]
    del_b = [e for e in p.of(p.b, ChildSaDeleted)]
    assert [e.spi_in for e in del_a] == [c.spi_in for c in est_a[:3]]
    assert all(e.reason == "rekeyed" for e in del_a)
    assert [e.spi_in for e in del_b] == [c.spi_in for c in est_b[:3]]
    assert all(e.reason == "deleted by peer" for e in del_b)
    # exactly one IKE SA and one pair of IPsec SAs left on each side, and they match
    (sa_a,), (sa_b,) = p.a.engine.ike_sas, p.b.engine.ike_sas
    assert len(sa_a.children) == len(sa_b.children) == 1
    ca, cb = sa_a.children[0], sa_b.children[0]
    assert (ca.spi_in, ca.spi_out) == (cb.spi_out, cb.spi_in) and ca.keys_in == cb.keys_out
    rekeys = [r for r in p.a.engine.tracer.find("child_rekey")]
    assert len(rekeys) == 3 and p.now - start >= 270


def test_peer_gone_sa_expires() -> None:
    p = pair("100s")
    p.drop = lambda d, n: True  # nothing gets through any more: the rekey cannot happen
    p.run(max_time=101)
    del_a = p.of(p.a, ChildSaDeleted)
    assert del_a and del_a[0].reason == "expired"
    assert p.a.engine.ike_sas[0].children == []
    del_b = p.of(p.b, ChildSaDeleted)
    assert del_b and del_b[0].reason == "expired"  # the responder's own hard limit


def test_rekey_jitter_within_rand_time() -> None:
    """rekey_time 50m, life_time 1h: strongSwan's rand_time default (life - rekey = 10m) of jitter."""
    a = site_config(A_ADDR, B_ADDR, LAN_A, LAN_B, life_time="1h").replace(
        'rekey_time = "1h"', 'rekey_time = "50m"'
    )
    b = site_config(B_ADDR, A_ADDR, LAN_B, LAN_A, life_time="1h")
    moments = []
    for seed in range(6):
        p = Pair(a, b, seed=seed)
        p.a.engine.initiate("site", now=p.now)
        t0 = p.now
        p.run(max_time=3000.5)
        rk = list(p.a.engine.tracer.find("child_rekey"))
        assert len(rk) == 1
        moments.append(float(rk[0].fields["at"]) - t0)
        assert len(p.of(p.a, ChildSaEstablished)) == 2
    assert all(2400 <= m <= 3000 for m in moments), moments
    assert len({round(m) for m in moments}) >= 4  # jitter, not one fixed moment


def test_isakmp_sa_renewal_keeps_ipsec_sas() -> None:
    a = site_config(A_ADDR, B_ADDR, LAN_A, LAN_B, rekey_time="200s", life_time="1h")
    b = site_config(B_ADDR, A_ADDR, LAN_B, LAN_A, rekey_time="200s", life_time="1h")
    p = Pair(a, b)
    p.a.engine.initiate("site", now=p.now)
    p.run(max_time=1)
    child_a = p.of(p.a, ChildSaEstablished)[0].child
    p.run(max_time=500)  # ISAKMP lifetime 200 s: renewed at 180 s and 360 s
    assert len(list(p.a.engine.tracer.find("ike_rekey"))) == 2
    assert len(p.of(p.a, IkeSaEstablished)) == len(p.of(p.b, IkeSaEstablished)) == 3
    # exactly one ISAKMP SA per side, the newest, holding the one IPsec SA that never went away
    (sa_a,), (sa_b,) = p.a.engine.ike_sas, p.b.engine.ike_sas
    assert (sa_a.icookie, sa_a.rcookie) == (sa_b.icookie, sa_b.rcookie)
    assert [c.spi_in for c in sa_a.children] == [child_a.spi_in]
    assert len(sa_b.children) == 1 and sa_b.children[0].spi_out == child_a.spi_in
    assert sa_a.children[0].ike_sa == sa_a.unique_id
    assert not p.of(p.a, ChildSaDeleted) and not p.of(p.b, ChildSaDeleted)
    renewed_b = list(p.b.engine.tracer.find("ike_renewed"))
    assert len(renewed_b) == 2 and all(int(r.fields["children"]) == 1 for r in renewed_b)
    # the IPsec SA can still be rekeyed under the new ISAKMP SA
    p.run(max_time=3200)
    assert len(p.a.engine.ike_sas) == 1 and len(p.a.engine.ike_sas[0].children) == 1
    assert len(p.of(p.a, ChildSaEstablished)) >= 2


def test_rekey_collision_leaves_one_pair() -> None:
    """Both ends rekey the same IPsec SA at the same moment (e.g. both data planes hit rekey_bytes):
    two new pairs come up; both ends pick the same one as redundant and one working pair is left."""
    p = pair("1h")
    (sa_a,), (sa_b,) = p.a.engine.ike_sas, p.b.engine.ike_sas
    old_a, old_b = sa_a.children[0].spi_in, sa_b.children[0].spi_in
    p.a.engine.rekey_child(sa_a.unique_id, old_a, p.now)
    p.b.engine.rekey_child(sa_b.unique_id, old_b, p.now)
    p.run(max_time=1)
    assert len(p.of(p.a, ChildSaEstablished)) == len(p.of(p.b, ChildSaEstablished)) == 3
    (col_a,) = p.a.engine.tracer.find("child_rekey_collision")
    (col_b,) = p.b.engine.tracer.find("child_rekey_collision")
    spis_a = {c.spi_in: c.spi_out for c in sa_a.children}
    # the same pair is redundant on both sides (A's inbound SPI of it is B's outbound one)
    redundant_a, kept_a = int(col_a.fields["redundant"], 16), int(col_a.fields["kept"], 16)
    redundant_b, kept_b = int(col_b.fields["redundant"], 16), int(col_b.fields["kept"], 16)
    assert spis_a[redundant_a] == redundant_b and spis_a[kept_a] == kept_b
    p.run(max_time=30)
    for side, old, kept in ((p.a, old_a, kept_a), (p.b, old_b, kept_b)):
        (sa,) = side.engine.ike_sas
        assert [c.spi_in for c in sa.children] == [kept]
        gone = {e.spi_in for e in p.of(side, ChildSaDeleted)}
        assert old in gone and len(gone) == 2
        assert all(e.then == "none" for e in p.of(side, ChildSaDeleted))
    ca, cb = sa_a.children[0], sa_b.children[0]
    assert (ca.spi_in, ca.spi_out) == (cb.spi_out, cb.spi_in) and ca.keys_in == cb.keys_out
    # the survivor is rekeyed later as usual (by whichever end initiated it)
    p.run(max_time=3600)
    assert len(p.a.engine.ike_sas[0].children) == 1 and len(p.b.engine.ike_sas[0].children) == 1
    assert not [e for e in p.of(p.a, ChildSaDeleted) if e.reason == "expired"]


def _collide(p: Pair) -> tuple[int, int, int, int]:
    """Both ends rekey at once; returns A's (redundant, kept) inbound SPIs and B's."""
    (sa_a,), (sa_b,) = p.a.engine.ike_sas, p.b.engine.ike_sas
    p.a.engine.rekey_child(sa_a.unique_id, sa_a.children[0].spi_in, p.now)
    p.b.engine.rekey_child(sa_b.unique_id, sa_b.children[0].spi_in, p.now)
    p.run(max_time=1)
    (col_a,) = p.a.engine.tracer.find("child_rekey_collision")
    (col_b,) = p.b.engine.tracer.find("child_rekey_collision")
    return (
        int(col_a.fields["redundant"], 16),
        int(col_a.fields["kept"], 16),
        int(col_b.fields["redundant"], 16),
        int(col_b.fields["kept"], 16),
    )


def test_rekey_collision_sends_on_the_kept_pair_at_once() -> None:
    """Both ends move their traffic to the pair they keep when they see the collision, not to the
    one installed last: a peer like us is on it long before the redundant one goes."""
    p = pair("1h")
    _, kept_a, _, kept_b = _collide(p)
    assert [e.spi_in for e in p.of(p.a, ChildSaPreferred)] == [kept_a]
    assert [e.spi_in for e in p.of(p.b, ChildSaPreferred)] == [kept_b]


def test_rekey_collision_keeps_the_pair_the_peer_sends_on() -> None:
    """A peer that keeps both pairs and sends on the one our rule calls redundant (strongSwan's
    IKEv1 sends on the pair it installed last): once the collision settled the data plane sees it
    send there only, so the other pair goes and the redundant one stays, and is rekeyed later."""
    p = pair("1h")
    red_a, kept_a, red_b, _kept_b = _collide(p)
    (sa_a,), (sa_b,) = p.a.engine.ike_sas, p.b.engine.ike_sas
    p.b.engine.timers.lifetimes.keep(red_b, None)  # B deletes neither, like strongSwan
    p.a.engine.traffic_seen(sa_a.unique_id, p.now, [kept_a, red_a])  # before it settled: no matter
    p.run(max_time=2.5)
    p.a.engine.traffic_seen(sa_a.unique_id, p.now, [red_a])
    p.run(max_time=30)
    assert [c.spi_in for c in sa_a.children] == [red_a]
    assert [c.spi_in for c in sa_b.children] == [red_b]
    gone = [e for e in p.of(p.a, ChildSaDeleted) if e.spi_in == kept_a]
    assert gone and "the peer sends on the other pair" in gone[0].reason
    assert [e.spi_in for e in p.of(p.a, ChildSaPreferred)] == [kept_a, red_a]
    (end,) = p.a.engine.tracer.find("child_rekey_collision_end")
    assert end.fields["kept"] == f"{red_a:08x}" and end.fields["deleted"] == f"{kept_a:08x}"
    # the survivor is rekeyed later, as the pair it replaced would have been
    p.run(max_time=3600)
    assert len(sa_a.children) == 1 and len(sa_b.children) == 1
    assert sa_a.children[0].spi_in != red_a
    assert not [e for e in p.of(p.a, ChildSaDeleted) if e.reason == "expired"]


def test_rekey_collision_traffic_on_both_pairs_keeps_the_rule() -> None:
    """Traffic on the kept pair after the collision settled: the lowest-SPI rule stands."""
    p = pair("1h")
    red_a, kept_a, _, _ = _collide(p)
    (sa_a,) = p.a.engine.ike_sas
    p.run(max_time=2.5)
    p.a.engine.traffic_seen(sa_a.unique_id, p.now, [red_a, kept_a])
    p.run(max_time=30)
    assert [c.spi_in for c in sa_a.children] == [kept_a]


def test_rekey_collision_never_deletes_the_last_pair() -> None:
    """The peer deleted the pair we keep before the overlap ended: the redundant pair is the
    child's last one and stays (and is rekeyed later)."""
    p = pair("1h")
    red_a, _kept_a, red_b, kept_b = _collide(p)
    (sa_a,), (sa_b,) = p.a.engine.ike_sas, p.b.engine.ike_sas
    p.b.engine.timers.lifetimes.keep(red_b, None)
    p.b.engine.delete_child(sa_b.unique_id, kept_b, p.now)
    p.run(max_time=30)
    assert [c.spi_in for c in sa_a.children] == [red_a]
    assert [c.spi_in for c in sa_b.children] == [red_b]
    (end,) = p.a.engine.tracer.find("child_rekey_collision_end")
    assert end.fields["deleted"] == "-" and end.fields["kept"] == f"{red_a:08x}"
    p.run(max_time=3600)
    assert len(sa_a.children) == 1 and len(sa_b.children) == 1
    assert not [e for e in p.of(p.a, ChildSaDeleted) if e.reason == "expired"]
    assert not [e for e in p.of(p.b, ChildSaDeleted) if e.reason == "expired"]


def test_a_rekey_offers_the_transform_in_use_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A offers two ESP transforms, B takes only the second: A's rekeys offer that one alone (vpnc
    refuses a rekey of more than one transform); the first Quick Mode offered both."""
    offered: list[list[str]] = []
    build = quick_mode.child_sa_payload

    def spy(proposals: Any, *args: Any) -> Any:
        offered.append([f"{p.transform_id}/{p.key_length}/{p.auth}" for p in proposals])
        return build(proposals, *args)

    monkeypatch.setattr(quick_mode, "child_sa_payload", spy)
    a = site_config(
        A_ADDR, B_ADDR, LAN_A, LAN_B, life_time="100s", esp='aes128gcm16-modp2048", "aes256-sha256-modp2048'
    )
    b = site_config(B_ADDR, A_ADDR, LAN_B, LAN_A, life_time="100s", esp="aes256-sha256-modp2048")
    p = Pair(a, b)
    p.a.engine.initiate("site", now=p.now)
    p.run(max_time=190)  # rekeys at 90 and 180
    assert len(p.of(p.a, ChildSaEstablished)) == 3
    assert offered[0] == ["20/128/None", "12/256/5"]  # AES-GCM-16 128, AES-CBC 256 + HMAC-SHA2-256
    assert offered[1:] == [["12/256/5"], ["12/256/5"]]


def test_a_refused_rekey_of_the_transform_in_use_offers_the_full_list_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A peer refuses A's rekey of the transform in use alone (NO-PROPOSAL-CHOSEN; a peer whose
    policy changed): A offers its full list next, and the rekey goes through."""
    offered: list[list[int]] = []
    build, select = quick_mode.child_sa_payload, quick_mode.select_child

    def spy(proposals: Any, *args: Any) -> Any:
        offered.append([p.transform_id for p in proposals])
        return build(proposals, *args)

    def choosy(sa_payload: Any, *args: Any) -> Any:  # B: no one-transform offer after the first
        if len(offered) > 1 and len(sa_payload.proposals[0].transforms) == 1:
            raise PeerError(NotifyType.NO_PROPOSAL_CHOSEN, "one transform: refused")
        return select(sa_payload, *args)

    monkeypatch.setattr(quick_mode, "child_sa_payload", spy)
    monkeypatch.setattr(quick_mode, "select_child", choosy)
    esp_a = 'aes128gcm16-modp2048", "aes256-sha256-modp2048'
    a = site_config(A_ADDR, B_ADDR, LAN_A, LAN_B, life_time="100s", esp=esp_a)
    b = site_config(B_ADDR, A_ADDR, LAN_B, LAN_A, life_time="100s", esp=esp_a)
    p = Pair(a, b)
    p.a.engine.initiate("site", now=p.now)
    p.run(max_time=100)  # the rekey at 90 s
    assert offered[:3] == [[20, 12], [20], [20, 12]]  # the first QM; the rekey alone, refused; all
    est = [e.child for e in p.of(p.a, ChildSaEstablished)]
    assert len(est) == 2 and est[1].replaces == est[0].spi_in
    assert [r.fields["reason"] for r in p.a.engine.tracer.find("quick_mode_fallback")]
