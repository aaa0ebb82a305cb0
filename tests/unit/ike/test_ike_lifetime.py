"""ISAKMP SA lifetimes, lenient by default: a responder runs a longer offered lifetime with its own
and tells the initiator with a RESPONDER-LIFETIME notify (protocol ISAKMP, SPI = the cookies); the
initiator takes the shorter lifetime and renews in time. ``ike_lifetime_check = "strict"`` refuses
(tests/unit/ike/test_pair_negative.py and test_ike_volume.py hold the strict cases)."""

from __future__ import annotations

import pytest

import snakeswan.ike.quick_mode as qm
from snakeswan.config.proposals import parse_ike_proposal
from snakeswan.errors import PeerError
from snakeswan.ike.events import (
    ChildSaDeleted,
    ChildSaEstablished,
    Datagram,
    IkeSaDeleted,
    IkeSaEstablished,
    NotifyReceived,
)
from snakeswan.ike.proposals import (
    ike_responder_lifetime,
    ike_sa_payload,
    parse_ike_responder_lifetime,
    select_ike,
)
from snakeswan.wire.enums import AuthMethod, ExchangeType, NotifyType, ProtocolId
from snakeswan.wire.message import decode_header
from tests.pair import A_ADDR, B_ADDR, Pair, site_config

LAN_A, LAN_B = "10.231.1.0/24", "10.231.2.0/24"


def pair(a_kw: dict[str, str], b_kw: dict[str, str]) -> Pair:
    a = site_config(A_ADDR, B_ADDR, LAN_A, LAN_B, **a_kw)  # type: ignore[arg-type]
    b = site_config(B_ADDR, A_ADDR, LAN_B, LAN_A, **b_kw)  # type: ignore[arg-type]
    p = Pair(a, b)
    p.a.engine.initiate("site", now=p.now)
    return p


def test_longer_initiator_lifetime_is_run_with_ours_and_announced() -> None:
    p = pair({"rekey_time": "8h"}, {"rekey_time": "1h"})  # Libreswan's default ikelifetime is 8 h
    p.run(max_time=5)
    (ea,), (eb,) = p.of(p.a, IkeSaEstablished), p.of(p.b, IkeSaEstablished)
    assert ea.lifetime == 28800 and eb.lifetime == 3600  # each as it established
    sent = list(p.b.engine.tracer.find("responder_lifetime_sent"))
    assert sent and sent[0].fields["seconds"] == 3600
    got = [n for n in p.of(p.a, NotifyReceived) if n.notify_type == NotifyType.RESPONDER_LIFETIME]
    assert got and got[0].protocol == ProtocolId.ISAKMP and len(got[0].spi) == 16
    (sa_a,), (sa_b,) = p.a.engine.ike_sas, p.b.engine.ike_sas
    assert sa_a.choice is not None and sa_a.choice.lifetime == 3600
    assert sa_a.expire_at == pytest.approx(ea_at(p) + 3600)
    assert sa_a.rekey_at is not None and sa_a.rekey_at <= ea_at(p) + 0.9 * 3600
    assert sa_b.expire_at == pytest.approx(sa_b.established_at + 3600)  # type: ignore[operator]
    # the notify went encrypted, after phase 1 (an informational exchange)
    infos = [
        d for s, d in p.wire if s == "b" and decode_header(d.data).exchange == ExchangeType.INFORMATIONAL
    ]
    assert infos and all(decode_header(d.data).encrypted for d in infos)


def ea_at(p: Pair) -> float:
    sa = p.a.engine.ike_sas[0]
    assert sa.established_at is not None
    return sa.established_at


def test_initiator_renews_before_the_responders_shorter_lifetime_ends() -> None:
    p = pair({"rekey_time": "8h"}, {"rekey_time": "1h"})
    p.run(max_time=4000)
    assert list(p.a.engine.tracer.find("ike_rekey")), "the initiator renewed"
    expired = [e for s in (p.a, p.b) for e in p.of(s, IkeSaDeleted) if "expire" in e.reason]
    assert not expired
    assert len(p.a.engine.ike_sas) == 1 and len(p.b.engine.ike_sas) == 1


def test_a_peer_that_ignores_the_notify_still_gets_a_working_sa() -> None:
    """The notify lost (or ignored): the responder expires the SA at its lifetime; both sides agree."""
    p = pair({"rekey_time": "8h"}, {"rekey_time": "1h"})

    def drop_info(d: Datagram, n: int) -> bool:
        h = decode_header(d.data)
        return h.exchange == ExchangeType.INFORMATIONAL and d.src[0] == B_ADDR

    p.drop = drop_info
    p.run(max_time=5)
    assert p.a.engine.ike_sas[0].choice.lifetime == 28800  # type: ignore[union-attr]
    assert p.b.engine.ike_sas[0].choice.lifetime == 3600  # type: ignore[union-attr]


def test_shorter_or_equal_lifetime_sends_no_notify() -> None:
    p = pair({"rekey_time": "1h"}, {"rekey_time": "8h"})
    p.run(max_time=5)
    assert not list(p.b.engine.tracer.find("responder_lifetime_sent"))
    assert p.a.engine.ike_sas[0].choice.lifetime == 3600  # type: ignore[union-attr]


def test_longer_volume_is_run_with_ours_and_announced() -> None:
    p = pair({"ike_life_bytes": "64M"}, {"ike_life_bytes": "1M"})
    p.run(max_time=5)
    assert p.of(p.b, IkeSaEstablished)
    assert p.b.engine.ike_sas[0].choice.life_kilobytes == 1024  # type: ignore[union-attr]
    assert p.a.engine.ike_sas[0].choice.life_kilobytes == 1024  # type: ignore[union-attr]


def test_select_ike_lenient_and_strict() -> None:
    prop = parse_ike_proposal("aes128-sha256-modp2048")[0]
    offer = ike_sa_payload([prop], AuthMethod.PRE_SHARED_KEY, 28800)
    choice = select_ike(offer, [prop], [AuthMethod.PRE_SHARED_KEY], 3600)
    assert (choice.lifetime, choice.lowered) == (3600, True)
    with pytest.raises(PeerError) as e:
        select_ike(offer, [prop], [AuthMethod.PRE_SHARED_KEY], 3600, strict=True)
    assert e.value.notify == NotifyType.NO_PROPOSAL_CHOSEN and "28800s longer than ours" in e.value.what
    same = select_ike(offer, [prop], [AuthMethod.PRE_SHARED_KEY], 28800, strict=True)
    assert (same.lifetime, same.lowered) == (28800, False)


def test_responder_lifetime_notify_round_trip() -> None:
    n = ike_responder_lifetime(b"c" * 16, 3600, 1024)
    assert n.notify_type == NotifyType.RESPONDER_LIFETIME and n.protocol == ProtocolId.ISAKMP
    assert n.data.startswith(bytes.fromhex("800b0001"))  # Life Type (11) = seconds, TV form
    assert parse_ike_responder_lifetime(n.data) == (3600, 1024)


def test_responder_rekeys_when_the_initiator_ignores_responder_lifetime(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Libreswan keeps its 8 h IPsec lifetime whatever RESPONDER-LIFETIME says. Our side, which
    lowered the lifetime to 30 min, rekeys itself (at 95 %) instead of letting the SA expire."""
    monkeypatch.setattr(qm, "apply_responder_lifetime", lambda data, s, kb: (s, kb))  # deaf initiator
    p = pair({"life_time": "2h"}, {"life_time": "30m"})
    p.run(max_time=5)
    (ca,), (cb,) = p.of(p.a, ChildSaEstablished), p.of(p.b, ChildSaEstablished)
    assert ca.child.life_seconds == 7200 and cb.child.life_seconds == 1800
    assert cb.child.lowered and not ca.child.lowered
    p.run(max_time=35 * 60)
    rekeys = list(p.b.engine.tracer.find("child_rekey"))
    assert rekeys and rekeys[0].fields["spi_in"] == f"{cb.child.spi_in:08x}"
    assert 1000 + 0.95 * 1800 - 1 <= rekeys[0].fields["at"] <= 1000 + 1800
    expired = [e for s in (p.a, p.b) for e in p.of(s, ChildSaDeleted) if e.reason == "expired"]
    assert not expired
    # the old pair went after its successor was up; one pair left, crosswise on both sides
    (na,), (nb,) = p.a.engine.ike_sas[0].children, p.b.engine.ike_sas[0].children
    assert na.spi_in == nb.spi_out and na.spi_out == nb.spi_in and nb.replaces == cb.child.spi_in
    assert nb.initiator and na.life_seconds == nb.life_seconds == 1800


def test_responder_does_not_rekey_when_the_initiator_honours_the_notify() -> None:
    p = pair({"life_time": "2h"}, {"life_time": "30m"})
    p.run(max_time=35 * 60)
    assert list(p.a.engine.tracer.find("child_rekey"))  # the initiator rekeyed within 27 min
    assert not list(p.b.engine.tracer.find("child_rekey"))
