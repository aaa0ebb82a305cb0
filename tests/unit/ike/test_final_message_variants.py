"""The last phase 1 message (MM5, an encrypted AM3) in two forms that both authenticate: one whose
unauthenticated padding was altered arrives first, or after the real one. The responder keeps the
first, offers the second's end of phase 1 to its IV chain as an alternative (sending MM6 again,
chained from it), and the initiator's first Quick Mode message settles which one the peer chained
from: the handshake completes in every order. A form that does not authenticate is dropped."""

from __future__ import annotations

import pytest

from snakeswan.ike.events import ChildSaEstablished, Datagram
from snakeswan.wire.enums import ExchangeType
from snakeswan.wire.message import decode_header
from tests.pair import A_ADDR, B_ADDR, Pair, site_config

LAN_A, LAN_B = "10.231.1.0/24", "10.231.2.0/24"


def _pair(kind: str) -> tuple[Pair, int]:
    kw: dict[str, object] = {}
    if kind == "aggressive":
        kw = {"aggressive": True, "local_id": "@west.test", "remote_id": "@east.test"}
    a = site_config(A_ADDR, B_ADDR, LAN_A, LAN_B, **kw)  # type: ignore[arg-type]
    if kind == "aggressive":
        kw |= {"local_id": "@east.test", "remote_id": "@west.test"}
    b = site_config(B_ADDR, A_ADDR, LAN_B, LAN_A, **kw)  # type: ignore[arg-type]
    return Pair(a, b), (4 if kind == "main" else 2)  # MM5 / AM3: the initiator's final message


def _altered(data: bytes, where: int) -> bytes:
    out = bytearray(data)
    out[where] ^= 0x5A
    return bytes(out)


def _run(kind: str, *, before: bool, where: int) -> Pair:
    p, final = _pair(kind)

    def inject(d: Datagram, n: int) -> bool:
        if n == final:
            assert decode_header(d.data).encrypted
            junk = _altered(d.data, where)
            if before:
                p.b.engine.receive_datagram(junk, d.src, d.dst, p.now)
                p.b.engine.receive_datagram(d.data, d.src, d.dst, p.now)
            else:
                p.b.engine.receive_datagram(d.data, d.src, d.dst, p.now)
                p.b.engine.receive_datagram(junk, d.src, d.dst, p.now)
            return True  # delivered here
        return False

    p.drop = inject
    p.a.engine.initiate("site", now=p.now)
    p.run(max_time=60)
    return p


def _completed(p: Pair) -> bool:
    ca, cb = p.of(p.a, ChildSaEstablished), p.of(p.b, ChildSaEstablished)
    return bool(ca and cb and ca[0].child.spi_in == cb[0].child.spi_out)


@pytest.mark.parametrize("kind", ["main", "aggressive"])
@pytest.mark.parametrize("before", [True, False], ids=["altered-first", "altered-after"])
def test_altered_padding_in_either_order_keeps_the_handshake(kind: str, before: bool) -> None:
    p = _run(kind, before=before, where=-1)  # the last byte: padding only
    assert _completed(p)
    assert list(p.b.engine.tracer.find("final_message_variant"))
    if kind == "main" and before:  # MM6 went again, chained from the real MM5
        again = [r for r in p.b.engine.tracer.find("sent") if r.fields.get("again")]
        assert again
    qm = [d for s, d in p.wire if decode_header(d.data).exchange == ExchangeType.QUICK_MODE]
    assert len(qm) == 3


@pytest.mark.parametrize("kind", ["main", "aggressive"])
def test_a_form_that_does_not_authenticate_is_dropped_with_reason(kind: str) -> None:
    p = _run(kind, before=False, where=28 + 2)  # in the first block: the first payload's header
    assert _completed(p)
    assert not list(p.b.engine.tracer.find("final_message_variant"))
    drops = [r.fields["reason"] for r in p.b.engine.tracer.find("drop")]
    assert "exchange already complete" in drops
