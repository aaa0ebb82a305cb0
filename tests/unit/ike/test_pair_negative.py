"""What goes wrong between two engines, and what each side sees."""

from __future__ import annotations

from snakeswan.config.loader import parse_config
from snakeswan.ike.engine import Engine
from snakeswan.ike.events import (
    ChildSaDeleted,
    ChildSaEstablished,
    Datagram,
    IkeSaDeleted,
    IkeSaEstablished,
    NegotiationFailed,
)
from snakeswan.trace import Tracer
from snakeswan.wire.enums import ExchangeType, NotifyType
from snakeswan.wire.message import decode_header
from tests.pair import A_ADDR, B_ADDR, Pair, rng_for, site_config

LAN_A, LAN_B = "10.231.1.0/24", "10.231.2.0/24"


def pair(a_kw: dict | None = None, b_kw: dict | None = None, **kw: object) -> Pair:  # type: ignore[type-arg]
    a = site_config(A_ADDR, B_ADDR, LAN_A, LAN_B, **(a_kw or {}))
    b = site_config(B_ADDR, A_ADDR, LAN_B, LAN_A, **(b_kw or {}))
    p = Pair(a, b, **kw)  # type: ignore[arg-type]
    p.a.engine.initiate("site", now=p.now)
    return p


def exchanges(p: Pair, sender: str) -> list[tuple[int, int]]:
    out = []
    for who, d in p.wire:
        if who == sender:
            h = decode_header(d.data)
            out.append((h.exchange, h.message_id))
    return out


def notifies_sent(p: Pair, side: str) -> list[int]:
    """The Notify types ``side`` put on the wire in informational messages, in order."""
    eng = p.a.engine if side == "a" else p.b.engine
    out = []
    for r in eng.tracer.records:
        if r.event == "informational_sent":
            out += [int(NotifyType[x[2:-1]]) for x in r.fields["payloads"] if x.startswith("N(")]
    return out


def test_wrong_psk_main_mode_authentication_failed() -> None:
    p = pair(b_kw={"psk": "another-key"})
    p.run(max_time=10)
    # MM5 does not decrypt with the responder's key: rejected, answered with AUTHENTICATION-FAILED
    # in plaintext (no key authenticates it). Anyone who sees the cookies could send that, so it
    # does not end the initiator's attempt: MM5 is retransmitted, each copy rejected again
    assert notifies_sent(p, "b")[:1] == [NotifyType.AUTHENTICATION_FAILED]
    assert not p.of(p.a, NegotiationFailed) and len(p.a.engine.ike_sas) == 1
    ignored = list(p.a.engine.tracer.find("unauthenticated_notify_ignored"))
    assert ignored and ignored[0].fields["type"] == "AUTHENTICATION_FAILED"
    p.run(max_time=600)
    assert not p.of(p.a, IkeSaEstablished) and not p.of(p.b, IkeSaEstablished)
    tries = p.a.engine.ctx.retransmit.tries
    # MM5, its retransmissions and its copies sent again for the responder's retransmitted MM4
    sent = notifies_sent(p, "b")
    assert len(sent) >= 1 + tries and set(sent) == {NotifyType.AUTHENTICATION_FAILED}
    assert [r.fields["notify"] for r in p.b.engine.tracer.find("message_rejected")] == [
        "AUTHENTICATION_FAILED"
    ] * len(sent)
    # once its retransmissions end the initiator gives up, naming what the peer said
    fa = p.of(p.a, NegotiationFailed)
    assert len(fa) == 1 and fa[0].notify == NotifyType.AUTHENTICATION_FAILED
    assert fa[0].reason == (
        f"main_mode timed out after {tries} retransmissions; "
        f"peer sent AUTHENTICATION_FAILED (unauthenticated, {len(sent)} times)"
    )
    assert p.a.engine.ike_sas == []
    assert p.b.engine.ike_sas == []  # the half-open responder SA times out
    # the responder answered MM5 with an informational, not with MM6
    assert ExchangeType.INFORMATIONAL in [e for e, _ in exchanges(p, "b")]


def test_wrong_psk_aggressive_mode() -> None:
    a_kw = {"aggressive": True, "local_id": "@west.test", "remote_id": "@east.test"}
    b_kw = {"aggressive": True, "local_id": "@east.test", "remote_id": "@west.test", "psk": "another-key"}
    p = pair(a_kw, b_kw)
    p.run(max_time=600)
    assert not p.of(p.a, IkeSaEstablished) and not p.of(p.b, IkeSaEstablished)
    # AM2's HASH_R does not verify: the initiator rejects it and says so (in plaintext: nothing
    # authenticates it); the responder does not act on that alone, it gives up when its half-open
    # SA times out, naming what the peer said
    assert notifies_sent(p, "a")[0] == NotifyType.AUTHENTICATION_FAILED
    fb = p.of(p.b, NegotiationFailed)
    assert fb[0].notify == NotifyType.AUTHENTICATION_FAILED
    assert fb[0].reason.startswith("half-open: the peer never answered; peer sent AUTHENTICATION_FAILED")
    assert p.a.engine.ike_sas == [] and p.b.engine.ike_sas == []


def test_no_common_proposal() -> None:
    p = pair({"ike": "aes256-sha1-modp1024"}, {"ike": "aes128-sha256-modp2048"})
    p.run(max_time=600)
    # the plaintext NO-PROPOSAL-CHOSEN answers MM1 and each of its retransmissions; the initiator
    # fails when they end (an unauthenticated notify alone never ends a negotiation)
    tries = p.a.engine.ctx.retransmit.tries
    assert notifies_sent(p, "b") == [NotifyType.NO_PROPOSAL_CHOSEN] * (1 + tries)
    fa = p.of(p.a, NegotiationFailed)
    assert len(fa) == 1 and fa[0].notify == NotifyType.NO_PROPOSAL_CHOSEN
    assert fa[0].reason.endswith(f"peer sent NO_PROPOSAL_CHOSEN (unauthenticated, {1 + tries} times)")
    assert not p.of(p.a, IkeSaEstablished) and p.a.engine.ike_sas == [] and p.b.engine.ike_sas == []


def test_several_proposals_responder_picks_first_acceptable() -> None:
    p = pair({"ike": "aes256-sha512-ecp384-modp1024"}, {"ike": "aes256-sha512-modp1024"})
    p.run()
    assert p.of(p.a, IkeSaEstablished)[0].proposal.endswith("MODP_1024")


def test_ike_lifetime_longer_than_ours_is_refused_when_strict() -> None:
    p = pair({"rekey_time": "8h"}, {"rekey_time": "1h", "ike_lifetime_check": "strict"})
    p.run(max_time=600)
    tries = p.a.engine.ctx.retransmit.tries  # MM1 and its retransmissions, each refused
    assert notifies_sent(p, "b") == [NotifyType.NO_PROPOSAL_CHOSEN] * (1 + tries)
    assert not p.of(p.b, IkeSaEstablished)
    reason = next(r for r in p.b.engine.tracer.records if r.event == "exchange_failed").fields["reason"]
    assert "lifetime 28800s longer than ours (3600s)" in reason


def test_ike_lifetime_shorter_is_taken() -> None:
    p = pair({"rekey_time": "1h"}, {"rekey_time": "8h"})
    p.run()
    assert p.of(p.a, IkeSaEstablished)[0].lifetime == 3600
    assert p.of(p.b, IkeSaEstablished)[0].lifetime == 3600


def test_ipsec_lifetime_lowered_with_responder_lifetime() -> None:
    p = pair({"life_time": "2h"}, {"life_time": "30m"})
    p.run()
    ca, cb = p.of(p.a, ChildSaEstablished)[0].child, p.of(p.b, ChildSaEstablished)[0].child
    assert ca.life_seconds == cb.life_seconds == 1800
    assert list(p.a.engine.tracer.find("responder_lifetime"))


def test_ipsec_lifetime_shorter_from_initiator_is_taken() -> None:
    p = pair({"life_time": "10m"}, {"life_time": "1h"})
    p.run()
    ca, cb = p.of(p.a, ChildSaEstablished)[0].child, p.of(p.b, ChildSaEstablished)[0].child
    assert ca.life_seconds == cb.life_seconds == 600
    assert not list(p.a.engine.tracer.find("responder_lifetime"))


def test_proxy_id_mismatch_invalid_id_information() -> None:
    a = site_config(A_ADDR, B_ADDR, LAN_A, "10.231.9.0/24")
    b = site_config(B_ADDR, A_ADDR, LAN_B, LAN_A)
    p = Pair(a, b)
    p.a.engine.initiate("site", now=p.now)
    p.run()
    assert p.of(p.a, IkeSaEstablished) and p.of(p.b, IkeSaEstablished)  # phase 1 is fine
    assert not p.of(p.a, ChildSaEstablished) and not p.of(p.b, ChildSaEstablished)
    assert notifies_sent(p, "b") == [NotifyType.INVALID_ID_INFORMATION]
    fa = p.of(p.a, NegotiationFailed)
    assert fa and fa[0].exchange == "quick_mode" and fa[0].notify == NotifyType.INVALID_ID_INFORMATION
    assert len(p.a.engine.ike_sas) == 1  # the ISAKMP SA survives a failed Quick Mode


def test_narrower_proxy_ids_are_accepted() -> None:
    a = site_config(A_ADDR, B_ADDR, "10.231.1.0/25", "10.231.2.7/32")
    b = site_config(B_ADDR, A_ADDR, LAN_B, LAN_A)
    p = Pair(a, b)
    p.a.engine.initiate("site", now=p.now)
    p.run()
    cb = p.of(p.b, ChildSaEstablished)[0].child
    assert (cb.local_ts, cb.remote_ts) == ("10.231.2.7/32", "10.231.1.0/25")


def _drop_nth_from(p: Pair, sender: str, exchange: int, index: int) -> None:
    seen: dict[str, int] = {"n": 0}

    def drop(d: Datagram, n: int) -> bool:
        who = p.wire[n][0]
        if who != sender or decode_header(d.data).exchange != exchange:
            return False
        seen["n"] += 1
        return seen["n"] == index

    p.drop = drop


def test_lost_mm3_is_retransmitted() -> None:
    p = pair()
    _drop_nth_from(p, "a", ExchangeType.IDENTITY_PROTECTION, 2)  # MM3
    start = p.now
    p.run()
    assert p.of(p.a, ChildSaEstablished) and p.of(p.b, ChildSaEstablished)
    assert len(list(p.a.engine.tracer.find("retransmit"))) == 1
    assert p.now - start >= 4.0  # after the first retransmission timeout


def test_lost_mm6_recovers_through_cached_reply() -> None:
    p = pair()
    _drop_nth_from(p, "b", ExchangeType.IDENTITY_PROTECTION, 3)  # MM6
    p.run()
    assert p.of(p.a, ChildSaEstablished) and p.of(p.b, ChildSaEstablished)
    assert list(p.b.engine.tracer.find("duplicate"))  # MM5 again: MM6 resent, not reprocessed
    assert len(p.of(p.b, IkeSaEstablished)) == 1


def test_lost_qm2_and_lost_qm3() -> None:
    p = pair()
    _drop_nth_from(p, "b", ExchangeType.QUICK_MODE, 1)
    p.run()
    assert len(p.of(p.a, ChildSaEstablished)) == 1 and len(p.of(p.b, ChildSaEstablished)) == 1
    p2 = pair()
    _drop_nth_from(p2, "a", ExchangeType.QUICK_MODE, 2)  # QM3: the responder resends QM2
    p2.run()
    assert len(p2.of(p2.a, ChildSaEstablished)) == 1 and len(p2.of(p2.b, ChildSaEstablished)) == 1
    assert list(p2.a.engine.tracer.find("duplicate"))


def test_duplicate_message_changes_nothing() -> None:
    p = pair()
    p.duplicate = lambda d, n: True  # every datagram arrives twice
    p.run()
    assert len(p.of(p.a, IkeSaEstablished)) == 1 and len(p.of(p.b, IkeSaEstablished)) == 1
    assert len(p.of(p.a, ChildSaEstablished)) == 1 and len(p.of(p.b, ChildSaEstablished)) == 1
    assert len(list(p.b.engine.tracer.find("duplicate"))) >= 3
    assert len(p.b.engine.ike_sas) == 1 and len(p.a.engine.ike_sas) == 1


def test_peer_silent_gives_up() -> None:
    p = pair()
    p.drop = lambda d, n: True
    p.run(max_time=600)
    fa = p.of(p.a, NegotiationFailed)
    assert fa and "timed out" in fa[0].reason
    assert len(list(p.a.engine.tracer.find("retransmit"))) == 5
    assert p.a.engine.ike_sas == [] and p.a.engine.get_timer() is None


def test_delete_child_and_ike() -> None:
    p = pair()
    p.run()
    sa_id = p.a.engine.ike_sas[0].unique_id
    child = p.of(p.a, ChildSaEstablished)[0].child
    p.a.engine.delete_child(sa_id, child.spi_in, p.now)
    p.run()
    db = p.of(p.b, ChildSaDeleted)
    assert db and db[0].spi_in == child.spi_out and db[0].reason == "deleted by peer"
    p.a.engine.initiate("site", "net", now=p.now)  # a new child under the same ISAKMP SA
    p.run()
    assert len(p.of(p.b, ChildSaEstablished)) == 2 and len(p.b.engine.ike_sas) == 1
    p.b.engine.delete_ike(p.b.engine.ike_sas[0].unique_id, p.now)
    p.run()
    assert p.of(p.a, IkeSaDeleted) and p.a.engine.ike_sas == []
    assert len(p.of(p.a, ChildSaDeleted)) == 2


def test_nat_detected_float_and_udp_encapsulation() -> None:
    p = pair(nat_a=("198.51.100.7", 40000), b_kw={"remote_addrs": "%any"})
    p.run()
    ia, ib = p.of(p.a, IkeSaEstablished)[0], p.of(p.b, IkeSaEstablished)[0]
    assert ia.nat_local and not ia.nat_remote
    assert ib.nat_remote and not ib.nat_local
    assert ia.local[1] == 4500 and ia.remote == (B_ADDR, 4500)
    assert ib.remote[0] == "198.51.100.7" and ib.local == (B_ADDR, 4500)
    ca, cb = p.of(p.a, ChildSaEstablished)[0].child, p.of(p.b, ChildSaEstablished)[0].child
    assert ca.encap and cb.encap and ca.mode == cb.mode == "tunnel"
    # from MM5 on, everything A sent went to port 4500
    a_ports = [d.dst[1] for who, d in p.wire if who == "a"]
    assert a_ports[:2] == [500, 500] and set(a_ports[2:]) == {4500}


def test_nat_oa_in_transport_mode_gives_each_side_the_peer_s_original_addresses() -> None:
    """RFC 3947 5.2: behind a NAT in transport mode both Quick Mode messages carry NAT-OAi/NAT-OAr;
    each side hands the data plane (the peer's original address, ours as the peer saw it), the pair
    its inner TCP/UDP checksums were computed with."""
    a = site_config(A_ADDR, B_ADDR, "dynamic", "dynamic", mode="transport")
    b = site_config(B_ADDR, A_ADDR, "dynamic", "dynamic", mode="transport", remote_addrs="%any")
    p = Pair(a, b, nat_a=("198.51.100.7", 40000))
    p.a.engine.initiate("site", now=p.now)
    p.run()
    ca, cb = p.of(p.a, ChildSaEstablished)[0].child, p.of(p.b, ChildSaEstablished)[0].child
    assert ca.mode == cb.mode == "transport" and ca.encap and cb.encap
    assert cb.nat_oa == (A_ADDR, B_ADDR)  # A computed its checksums with its private address
    assert ca.nat_oa == (B_ADDR, "198.51.100.7")  # B with A's address as it sees it, the NAT's


def test_initial_contact_clears_stale_sas() -> None:
    p = pair()
    p.run()
    assert len(p.b.engine.ike_sas) == 1
    old = p.b.engine.ike_sas[0].unique_id
    # A "reboots": a fresh engine with the same config, different randomness

    p.a.engine = Engine(parse_config(site_config(A_ADDR, B_ADDR, LAN_A, LAN_B)), rng_for(99), tracer=Tracer())
    p.a.engine.initiate("site", now=p.now)
    p.run()
    assert [s.unique_id for s in p.b.engine.ike_sas] != [old] and len(p.b.engine.ike_sas) == 1
    deleted = p.of(p.b, IkeSaDeleted)
    assert deleted and deleted[0].ike_sa == old and "INITIAL-CONTACT" in deleted[0].reason
    assert len([e for e in p.b.events if isinstance(e, ChildSaDeleted)]) == 1


def test_initial_contact_in_aggressive_mode_clears_stale_sas() -> None:
    am_a = {"aggressive": True, "local_id": "@west.test", "remote_id": "@east.test"}
    am_b = {"aggressive": True, "local_id": "@east.test", "remote_id": "@west.test"}
    p = pair(am_a, am_b)
    p.run()
    old = p.b.engine.ike_sas[0].unique_id
    text = site_config(A_ADDR, B_ADDR, LAN_A, LAN_B, **am_a)  # type: ignore[arg-type]
    p.a.engine = Engine(parse_config(text), rng_for(98), tracer=Tracer())  # A "reboots"
    p.a.engine.initiate("site", now=p.now)
    p.run()
    assert [s.unique_id for s in p.b.engine.ike_sas] != [old] and len(p.b.engine.ike_sas) == 1
    deleted = p.of(p.b, IkeSaDeleted)
    assert deleted and deleted[0].ike_sa == old and "INITIAL-CONTACT" in deleted[0].reason


def test_nat_keepalives_only_from_behind_the_nat() -> None:
    p = pair(nat_a=("198.51.100.7", 40000), b_kw={"remote_addrs": "%any"})
    p.run(max_time=65)
    ka = [(who, d) for who, d in p.wire if d.keepalive]
    assert ka and {who for who, _ in ka} == {"a"}  # only the side behind the NAT sends them
    assert all(d.data == b"\xff" and d.dst == (B_ADDR, 4500) for _, d in ka)
    assert 3 <= len(ka) <= 4  # every 20 s over ~65 s


def test_pfs_refused_the_initiator_falls_back_to_the_next_group() -> None:
    """RFC 2409 5.5 (reference 002): a responder without PFS answers NO-PROPOSAL-CHOSEN (or
    ATTRIBUTES-NOT-SUPPORTED); an initiator so configured continues without PFS, with a new offer."""
    two = 'aes128gcm16-modp2048", "aes128gcm16'  # esp_proposals = [with PFS, without]
    p = pair({"esp": two}, {"esp": "aes128gcm16"})
    p.run()
    [ca], [cb] = p.of(p.a, ChildSaEstablished), p.of(p.b, ChildSaEstablished)
    assert ca.child.pfs_group is None and cb.child.spi_in == ca.child.spi_out
    assert list(p.a.engine.tracer.find("quick_mode_fallback"))
    assert not p.of(p.a, NegotiationFailed)
    # a responder that wants PFS takes the first offer
    p = pair({"esp": two}, {"esp": "aes128gcm16-modp2048"})
    p.run()
    [ca] = p.of(p.a, ChildSaEstablished)
    assert ca.child.pfs_group == 14 and not list(p.a.engine.tracer.find("quick_mode_fallback"))
    # nothing left to fall back to: the failure is reported
    p = pair({"esp": "aes128gcm16-modp2048"}, {"esp": "aes128gcm16"})
    p.run()
    assert not p.of(p.a, ChildSaEstablished)
    assert [f.reason for f in p.of(p.a, NegotiationFailed)] == ["peer sent NO_PROPOSAL_CHOSEN"]
