"""Payload impairments, delay and reorder (issue 17), between two engines back to back: each does
what it says to the message, the peer meets exactly that damage (a missing or doubled payload,
a HASH or SIG that does not verify) and never more (a payload omitted from a Quick Mode message
keeps a valid HASH); delayed and reordered messages arrive late or out of order and the
negotiation still completes."""

from __future__ import annotations

import time

import pytest

from snakeswan.errors import ConfigError
from snakeswan.ike.events import Datagram, IkeSaEstablished
from snakeswan.ike.impair import REORDER_GAP, Impairer, parse_rule
from snakeswan.wire.enums import ExchangeType
from snakeswan.wire.message import decode_header
from tests.pair import Pair, Side
from tests.pki import TestPki
from tests.unit.ike.test_impair import events, up
from tests.unit.ike.test_pair_negative import pair
from tests.unit.ike.test_pair_pubkey import _pair_configs, pki  # noqa: F401 - pki is a fixture

Arrivals = list[tuple[float, int, int]]  # (time, exchange type, message ID) as the peer got them


def impaired(p: Pair, side: Side, *rules: str) -> tuple[Impairer, Arrivals]:
    """An Impairer between ``side``'s engine and the wire, with its payload hook attached and its
    held datagrams released on time; and what the other side received, when."""
    eng = side.engine
    imp = Impairer.from_texts(list(rules), eng.tracer)
    imp.attach(eng.ctx)
    send, receive = eng.datagrams_to_send, eng.receive_datagram

    def datagrams_to_send(now: float) -> list[Datagram]:
        return [x for d in send(now) for x in imp.outbound(d, now)] + imp.release(now)

    def receive_datagram(data: bytes, src: tuple[str, int], dst: tuple[str, int], now: float) -> None:
        imp.inbound(data)
        receive(data, src, dst, now)

    eng.datagrams_to_send = datagrams_to_send  # type: ignore[method-assign]
    eng.receive_datagram = receive_datagram  # type: ignore[method-assign]
    p.wakeups.append(imp.get_timer)
    peer = (p.b if side is p.a else p.a).engine
    arrivals: Arrivals = []
    peer_receive = peer.receive_datagram

    def record(data: bytes, src: tuple[str, int], dst: tuple[str, int], now: float) -> None:
        h = decode_header(data)
        arrivals.append((now, h.exchange, h.message_id))
        peer_receive(data, src, dst, now)

    peer.receive_datagram = record  # type: ignore[method-assign]
    return imp, arrivals


def rejected(side: Side) -> list[str]:
    """Why ``side`` refused or dropped messages."""
    return [str(f.get("reason")) for e in ("message_rejected", "drop") for f in events(side, e)]


def test_rules_with_payloads_and_times() -> None:
    assert str(parse_rule("omit:qm1.ke")) == "omit:QM1.KE:1"
    assert str(parse_rule("bad-hash:QM1:*")) == "corrupt:QM1.HASH:*"
    assert str(parse_rule("bad-sig:MM5")) == "corrupt:MM5.SIG:1"
    assert str(parse_rule("duplicate:MM3.NAT-D:2")) == "duplicate:MM3.NAT-D:2"
    assert str(parse_rule("delay=2.5:MM3")) == "delay=2.5:MM3:1"
    assert str(parse_rule("reorder:AM3")) == "reorder=1:AM3:1"
    for bad, why in [
        ("omit:QM1", "omit needs a payload, e.g. omit:QM1.KE"),
        ("explode:QM1.KE", "'explode' is no payload action"),
        (
            "explode:QM1",
            r"unknown action 'explode' \(known: drop, duplicate, corrupt, truncate, wrong-spi, "
            r"replay, delay, reorder, omit, bad-hash, bad-sig\)",
        ),
        ("omit:QM1.FOO", "unknown payload 'FOO'"),
        ("truncate:QM1.KE", "'truncate' is no payload action"),
        ("bad-hash:QM1.HASH", "names a message, not a payload"),
        ("delay=0:MM3", "SECONDS must be"),
        ("delay=soon:MM3", "SECONDS must be"),
        ("drop=1:MM3", "drop takes no value"),
    ]:
        with pytest.raises(ConfigError, match=why):
            parse_rule(bad)


def test_omit_ke_from_mm3_is_refused_by_the_responder() -> None:
    p = pair()
    imp, _ = impaired(p, p.a, "omit:MM3.KE")
    p.run(max_time=600)
    assert imp.applied == [("omit", "MM3.KE")]
    assert not p.of(p.b, IkeSaEstablished) and not p.of(p.a, IkeSaEstablished)
    assert any("KE" in r for r in rejected(p.b)), rejected(p.b)


def test_duplicate_nonce_in_mm3_is_refused() -> None:
    p = pair()
    imp, _ = impaired(p, p.a, "duplicate:MM3.NONCE")
    p.run(max_time=600)
    assert imp.applied == [("duplicate", "MM3.NONCE")] and not p.of(p.b, IkeSaEstablished)
    assert any("NONCE" in r.upper() for r in rejected(p.b)), rejected(p.b)


def test_omit_from_quick_mode_keeps_the_hash_valid() -> None:
    """The HASH(1) is computed again over what is left: the responder's complaint is the missing
    KE (PFS is configured), not an authentication failure."""
    p = pair()
    imp, _ = impaired(p, p.a, "omit:QM1.KE:*")
    p.run(max_time=600)
    assert ("omit", "QM1.KE") in imp.applied and p.of(p.b, IkeSaEstablished)
    assert not p.b.engine.ike_sas or not p.b.engine.ike_sas[0].children
    reasons = rejected(p.b) + [str(f.get("reason")) for f in events(p.b, "exchange_failed")]
    assert any("KE" in r for r in reasons), reasons
    assert not any("HASH" in r for r in reasons), reasons


def test_bad_hash_in_quick_mode_fails_authentication_each_time() -> None:
    p = pair()
    imp, _ = impaired(p, p.a, "bad-hash:QM1")
    p.run(max_time=600)
    assert imp.applied == [("corrupt", "QM1.HASH")]
    assert any("HASH" in r for r in rejected(p.b)), rejected(p.b)
    # the damage is in the message as built: its retransmissions carry it, no child comes up
    assert p.b.engine.ike_sas and not p.b.engine.ike_sas[0].children


def test_bad_hash_in_mm5_is_an_authentication_failure() -> None:
    p = pair()
    imp, _ = impaired(p, p.a, "bad-hash:MM5")
    p.run(max_time=600)
    assert imp.applied == [("corrupt", "MM5.HASH")] and not p.of(p.b, IkeSaEstablished)
    assert any("HASH_I" in r for r in rejected(p.b)), rejected(p.b)


def test_a_rule_for_a_payload_the_message_lacks_waits() -> None:
    p = pair()
    imp, _ = impaired(p, p.a, "omit:MM1.KE")
    p.run()
    assert imp.applied == [] and up(p)


def test_delay_holds_a_message_for_its_time() -> None:
    p = pair()
    imp, arrivals = impaired(p, p.a, "delay=0.75:QM1")
    p.run()
    assert imp.applied == [("delay", "QM1")] and up(p)
    mm = [t for t, ex, _ in arrivals if ex == ExchangeType.IDENTITY_PROTECTION]
    (qm1,) = [t for t, ex, _ in arrivals if ex == ExchangeType.QUICK_MODE][:1]
    assert qm1 - mm[-1] == pytest.approx(0.75)  # MM5 went at once, QM1 0.75 s after MM6 came


def test_reorder_sends_am3_after_the_quick_mode_that_followed_it() -> None:
    a_kw = {"aggressive": True, "local_id": "@west.test", "remote_id": "@east.test"}
    b_kw = {"aggressive": True, "local_id": "@east.test", "remote_id": "@west.test"}
    p = pair(a_kw, b_kw)
    imp, arrivals = impaired(p, p.a, "reorder:AM3")
    p.run()
    assert imp.applied == [("reorder", "AM3")]
    order = [ex for _, ex, _ in arrivals]
    first_qm = order.index(ExchangeType.QUICK_MODE)
    assert order[: first_qm + 2] == [
        ExchangeType.AGGRESSIVE,
        ExchangeType.QUICK_MODE,
        ExchangeType.AGGRESSIVE,
    ]
    # AM3 goes a moment after that QM1, not back to back with it: a peer whose threads take
    # datagrams in parallel (charon) would otherwise sometimes handle AM3 first
    qm1_at, am3_at = arrivals[first_qm][0], arrivals[first_qm + 1][0]
    assert am3_at - qm1_at == pytest.approx(REORDER_GAP)
    assert up(p)  # the responder waits for AM3 (or the QM1 retransmission) and finishes


def test_reorder_without_a_follower_is_released_after_its_time() -> None:
    p = pair()
    imp, arrivals = impaired(p, p.a, "reorder=0.5:MM1")
    p.run()
    assert imp.applied == [("reorder", "MM1")] and up(p)
    assert arrivals[0][0] == pytest.approx(p_start(p) + 0.5)


def p_start(p: Pair) -> float:
    return 1000.0  # Pair's clock starts here


def test_bad_sig_in_mm5_is_refused(pki: TestPki) -> None:  # noqa: F811
    a, b = _pair_configs(pki)
    p = Pair(a, b)
    offset = time.time() - p.now
    p.a.engine.ctx.wall_offset = p.b.engine.ctx.wall_offset = offset
    imp, _ = impaired(p, p.a, "bad-sig:MM5")
    p.a.engine.initiate("site", now=p.now)
    p.run(max_time=600)
    assert imp.applied == [("corrupt", "MM5.SIG")] and not p.of(p.b, IkeSaEstablished)
    assert any("signature" in r.lower() for r in rejected(p.b)), rejected(p.b)


def test_corrupt_id_in_quick_mode_is_a_proxy_id_the_responder_has_no_child_for() -> None:
    p = pair()
    imp, _ = impaired(p, p.a, "corrupt:QM1.ID:*")
    p.run(max_time=600)
    assert ("corrupt", "QM1.ID") in imp.applied and p.of(p.b, IkeSaEstablished)
    reasons = [str(f.get("reason")) for f in events(p.b, "exchange_failed")]
    assert any(r.startswith("no child of site covers") for r in reasons), reasons
    assert not any("HASH" in r for r in rejected(p.b))  # authentic, only the ID is wrong
