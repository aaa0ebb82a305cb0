"""An on-path attacker who sees the cookies forges plaintext error Notifies during phase 1: they are
logged and ignored, and the negotiation completes (issue 17: one forged AUTHENTICATION-FAILED used to
abort our initiator's Main Mode while the responder kept an established IKE SA)."""

from __future__ import annotations

import pytest

from snakeswan.ike.events import ChildSaEstablished, Datagram, IkeSaEstablished, NegotiationFailed
from snakeswan.wire.enums import ExchangeType, NotifyType, ProtocolId
from snakeswan.wire.message import Header, decode_header, encode_message
from snakeswan.wire.payloads import NotifyPayload
from tests.pair import Pair
from tests.unit.ike.test_pair_negative import pair

FORGED = (NotifyType.AUTHENTICATION_FAILED, NotifyType.NO_PROPOSAL_CHOSEN, NotifyType.INVALID_ID_INFORMATION)


def forge(header: Header, notify: int) -> bytes:
    """A plaintext Informational with the cookies seen on the wire and an error Notify."""
    h = Header(header.icookie, header.rcookie, 0, ExchangeType.INFORMATIONAL, 0, 0x1234)
    spi = header.icookie + header.rcookie
    return encode_message(h, [NotifyPayload(notify, ProtocolId.ISAKMP, spi)])


def attack(p: Pair) -> list[tuple[str, int]]:
    """Before each phase 1 message reaches its receiver, forge error Notifies to that receiver."""
    injected: list[tuple[str, int]] = []

    def on_path(d: Datagram, n: int) -> bool:
        h = decode_header(d.data)
        if h.exchange not in (ExchangeType.IDENTITY_PROTECTION, ExchangeType.AGGRESSIVE):
            return False
        to_a = d.dst[0] == p.a.addr
        receiver = p.a if to_a else p.b
        for notify in FORGED:
            receiver.engine.receive_datagram(forge(h, notify), d.src, d.dst, p.now)
            injected.append(("a" if to_a else "b", notify))
        return False  # the real message goes on

    p.drop = on_path
    return injected


@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
def test_forged_plaintext_notifies_do_not_abort_phase_1(aggressive: bool) -> None:
    kw = {"aggressive": True} if aggressive else {}
    a_kw = {**kw, "local_id": "@west.test", "remote_id": "@east.test"} if aggressive else kw
    b_kw = {**kw, "local_id": "@east.test", "remote_id": "@west.test"} if aggressive else kw
    p = pair(a_kw, b_kw)
    injected = attack(p)
    p.run(max_time=60)
    assert {who for who, _ in injected} == {"a", "b"}
    for side in (p.a, p.b):
        assert not p.of(side, NegotiationFailed), p.of(side, NegotiationFailed)
        assert len(p.of(side, IkeSaEstablished)) == 1 and len(p.of(side, ChildSaEstablished)) == 1
        ignored = [r.fields["type"] for r in side.engine.tracer.find("unauthenticated_notify_ignored")]
        assert set(ignored) == {n.name for n in FORGED}, ignored  # each one seen and logged
    # the forged notifies before the last phase 1 message (MM6 / AM2 for the initiator) were
    # parsed as notifies, while phase 1 was under way
    assert len(list(p.a.engine.tracer.find("unauthenticated_notify_ignored"))) == len(
        [x for x in injected if x[0] == "a"]
    )
