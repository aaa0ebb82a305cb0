"""The commit bit (RFC 2408 4.6) and CONNECTED, two engines back to back, both roles."""

from __future__ import annotations

import pytest

from snakeswan.config.loader import parse_config
from snakeswan.errors import ConfigError
from snakeswan.ike import commit
from snakeswan.ike.events import ChildSaEstablished, Datagram, NegotiationFailed
from snakeswan.wire.enums import ExchangeType, Flag
from snakeswan.wire.message import decode_header
from tests.pair import A_ADDR, B_ADDR, Pair, site_config

LAN_A, LAN_B = "10.231.1.0/24", "10.231.2.0/24"


def with_commit(conf: str, on: bool) -> str:
    return conf.replace("[connections.site]\n", f"[connections.site]\ncommit_bit = {str(on).lower()}\n")


def make_pair(*, a_commit: bool = False, b_commit: bool = False, keylog: bool = False) -> Pair:
    a = with_commit(site_config(A_ADDR, B_ADDR, LAN_A, LAN_B), a_commit)
    b = with_commit(site_config(B_ADDR, A_ADDR, LAN_B, LAN_A), b_commit)
    return Pair(a, b, keylog=keylog)


def quick_modes(p: Pair) -> list[tuple[str, int, int]]:
    """(sender, exchange, flags) of every Quick Mode and Informational message after phase 1."""
    out = []
    for who, d in p.wire:
        h = decode_header(d.data)
        if h.exchange in (ExchangeType.QUICK_MODE, ExchangeType.INFORMATIONAL):
            out.append((who, h.exchange, h.flags, h.message_id))
    return [(w, e, f) for w, e, f, _ in out]


def events_in_order(p: Pair, side: str) -> list[str]:
    eng = p.a.engine if side == "a" else p.b.engine
    wanted = ("waiting_connected", "connected_sent", "connected_received", "child_sa_established")
    return [r.event for r in eng.tracer.records if r.event in wanted]


def established(p: Pair) -> None:
    (ca,), (cb,) = p.of(p.a, ChildSaEstablished), p.of(p.b, ChildSaEstablished)
    assert ca.child.spi_in == cb.child.spi_out and ca.child.keys_in == cb.child.keys_out


def test_initiator_sets_the_commit_bit_and_waits_for_connected() -> None:
    p = make_pair(a_commit=True)
    p.a.engine.initiate("site", now=p.now)
    p.run(30)
    established(p)
    qm = quick_modes(p)
    qm1, qm2, qm3, connected = qm[:4]
    assert qm1[:2] == ("a", ExchangeType.QUICK_MODE) and qm1[2] & Flag.COMMIT
    assert qm2[:2] == ("b", ExchangeType.QUICK_MODE) and qm2[2] & Flag.COMMIT  # the responder echoes it
    assert qm3[:2] == ("a", ExchangeType.QUICK_MODE) and not qm3[2] & Flag.COMMIT
    assert connected[:2] == ("b", ExchangeType.INFORMATIONAL)
    # the CONNECTED notify goes under the Quick Mode's message ID
    mids = [decode_header(d.data).message_id for _, d in p.wire if decode_header(d.data).message_id]
    assert len(set(mids[:4])) == 1
    assert events_in_order(p, "a") == ["waiting_connected", "connected_received", "child_sa_established"]
    assert events_in_order(p, "b") == ["child_sa_established", "connected_sent"]


def test_a_responder_that_sets_the_bit_on_its_own_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """A responder (racoon, Cisco) may set the bit in QM2 although QM1 had none: we wait."""
    monkeypatch.setattr(commit, "responder_sets", lambda qm, header: True)
    p = make_pair()
    p.a.engine.initiate("site", now=p.now)
    p.run(30)
    established(p)
    flags = [f for w, e, f in quick_modes(p) if e == ExchangeType.QUICK_MODE]
    assert not flags[0] & Flag.COMMIT and flags[1] & Flag.COMMIT
    assert events_in_order(p, "a") == ["waiting_connected", "connected_received", "child_sa_established"]


def test_our_responder_sets_the_bit_only_for_an_initiator_that_did() -> None:
    """commit_bit = true on the responder alone: QM2 goes without the bit and no CONNECTED follows
    (the initiator would not wait for it; strongSwan would drop its ISAKMP SA on it)."""
    p = make_pair(b_commit=True)
    p.a.engine.initiate("site", now=p.now)
    p.run(30)
    established(p)
    assert all(not f & Flag.COMMIT for _, _, f in quick_modes(p))
    assert not [e for _, e, _ in quick_modes(p) if e == ExchangeType.INFORMATIONAL]
    assert list(p.b.engine.tracer.find("commit_bit_not_set"))


def test_no_commit_bit_no_connected() -> None:
    p = make_pair()
    p.a.engine.initiate("site", now=p.now)
    p.run(30)
    established(p)
    assert all(not f & Flag.COMMIT for _, _, f in quick_modes(p))
    assert not [e for _, e, _ in quick_modes(p) if e == ExchangeType.INFORMATIONAL]


def _is_connected(d: Datagram) -> bool:
    h = decode_header(d.data)
    return h.exchange == ExchangeType.INFORMATIONAL and h.message_id != 0


def test_a_lost_connected_is_sent_again_for_the_repeated_qm3() -> None:
    p = make_pair(a_commit=True)
    lost: list[int] = []

    def drop(d: Datagram, n: int) -> bool:
        if _is_connected(d) and not lost:
            lost.append(n)
            return True
        return False

    p.drop = drop
    p.a.engine.initiate("site", now=p.now)
    p.run(60)
    established(p)
    assert lost
    qm3s = [1 for w, e, f in quick_modes(p) if w == "a" and e == ExchangeType.QUICK_MODE]
    assert len(qm3s) == 3  # QM1, QM3, QM3 again
    assert list(p.b.engine.tracer.find("duplicate"))


def test_without_connected_the_initiator_installs_nothing() -> None:
    p = make_pair(a_commit=True)
    p.drop = lambda d, n: _is_connected(d)
    p.a.engine.initiate("site", now=p.now)
    p.run(200)
    assert not p.of(p.a, ChildSaEstablished)  # never used without the responder's word
    assert len(p.of(p.b, ChildSaEstablished)) == 1
    assert [f for f in p.of(p.a, NegotiationFailed) if f.exchange == "quick_mode"]


def test_a_responder_that_ignores_the_commit_bit_completes_at_once() -> None:
    """QM2 without the bit (strongSwan, for one): no CONNECTED will come, the exchange ends."""
    p = make_pair(a_commit=True)

    def clear_commit(d: Datagram, n: int) -> Datagram:
        h = decode_header(d.data)
        if h.exchange == ExchangeType.QUICK_MODE and h.flags & Flag.COMMIT and p.wire[n][0] == "b":
            data = bytearray(d.data)
            data[19] &= ~Flag.COMMIT & 0xFF
            return Datagram(bytes(data), d.src, d.dst)
        return d

    p.rewrite = clear_commit
    p.a.engine.initiate("site", now=p.now)
    p.run(30)
    assert len(p.of(p.a, ChildSaEstablished)) == 1
    assert list(p.a.engine.tracer.find("commit_bit_ignored"))


def test_commit_bit_key() -> None:
    conf = site_config(A_ADDR, B_ADDR, LAN_A, LAN_B)
    assert parse_config(conf, "a.toml").connection("site").commit_bit is False
    assert parse_config(with_commit(conf, True), "a.toml").connection("site").commit_bit is True
    with pytest.raises(ConfigError, match="commit_bit"):
        parse_config(conf.replace("[connections.site]\n", "[connections.site]\ncommit_bit = 3\n"), "a.toml")
