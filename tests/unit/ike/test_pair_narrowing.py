"""Quick Mode narrowing (as strongSwan's IKEv1 responder does): an initiator proposing wider
proxy IDs than the responder's policy gets the intersection back in QM2 and both install it; an
answer outside what was proposed is refused."""

from __future__ import annotations

from snakeswan.config.traffic import TrafficSelector
from snakeswan.errors import PeerError
from snakeswan.ike.events import ChildSaEstablished, NegotiationFailed
from snakeswan.ike.quick_mode import QuickMode, _id_payload
from snakeswan.wire.enums import NotifyType
from tests.pair import A_ADDR, B_ADDR, Pair, site_config


def _run(a_local: str, a_remote: str, b_local: str, b_remote: str) -> Pair:
    p = Pair(site_config(A_ADDR, B_ADDR, a_local, a_remote), site_config(B_ADDR, A_ADDR, b_local, b_remote))
    p.a.engine.initiate("site", now=p.now)
    p.run()
    return p


def test_responder_narrows_wider_proxy_ids_and_initiator_takes_them() -> None:
    p = _run("10.231.0.0/16", "10.231.0.0/16", "10.231.2.0/24", "10.231.1.0/24")
    [ea], [eb] = p.of(p.a, ChildSaEstablished), p.of(p.b, ChildSaEstablished)
    assert (ea.child.local_ts, ea.child.remote_ts) == ("10.231.1.0/24", "10.231.2.0/24")
    assert (eb.child.local_ts, eb.child.remote_ts) == ("10.231.2.0/24", "10.231.1.0/24")
    [rb] = p.b.engine.tracer.find("proxy_ids_narrowed")
    assert rb.fields["proposed"] == "10.231.0.0/16 === 10.231.0.0/16"
    assert rb.fields["answered"] == "10.231.1.0/24 === 10.231.2.0/24"
    [ra] = p.a.engine.tracer.find("proxy_ids_narrowed")
    assert ra.fields["answered"] == "10.231.1.0/24 === 10.231.2.0/24"


def test_wildcard_initiator_is_narrowed_on_one_side_only() -> None:
    p = _run("10.231.1.0/24", "0.0.0.0/0", "10.231.2.0/24", "10.231.1.0/24")
    [ea], [eb] = p.of(p.a, ChildSaEstablished), p.of(p.b, ChildSaEstablished)
    assert (ea.child.local_ts, ea.child.remote_ts) == ("10.231.1.0/24", "10.231.2.0/24")
    assert (eb.child.local_ts, eb.child.remote_ts) == ("10.231.2.0/24", "10.231.1.0/24")


def test_partial_overlap_is_narrowed_to_the_intersection() -> None:
    p = _run("10.231.1.0/24", "10.231.2.0/23", "10.231.3.0/24", "10.231.0.0/16")
    [ea] = p.of(p.a, ChildSaEstablished)
    assert (ea.child.local_ts, ea.child.remote_ts) == ("10.231.1.0/24", "10.231.3.0/24")


def test_containing_child_is_preferred_to_a_narrowing_one() -> None:
    b = site_config(B_ADDR, A_ADDR, "10.231.2.0/25", "10.231.1.0/24").replace(
        "[connections.site.children.net]",
        '[connections.site.children.narrow]\nlocal_ts = ["10.231.2.0/26"]\nremote_ts = ["10.231.1.0/24"]\n'
        'esp_proposals = ["aes128gcm16-modp2048"]\n\n[connections.site.children.net]',
    )
    p = Pair(site_config(A_ADDR, B_ADDR, "10.231.1.0/24", "10.231.2.0/25"), b)
    p.a.engine.initiate("site", now=p.now)
    p.run()
    [eb] = p.of(p.b, ChildSaEstablished)
    assert eb.child.child == "net" and eb.child.local_ts == "10.231.2.0/25"
    assert not list(p.b.engine.tracer.find("proxy_ids_narrowed"))


def test_disjoint_proxy_ids_are_still_refused() -> None:
    p = _run("10.231.1.0/24", "10.231.9.0/24", "10.231.2.0/24", "10.231.1.0/24")
    assert not p.of(p.a, ChildSaEstablished) and not p.of(p.b, ChildSaEstablished)
    [fa] = p.of(p.a, NegotiationFailed)
    assert fa.notify == NotifyType.INVALID_ID_INFORMATION


def test_initiator_refuses_an_answer_outside_its_proposal() -> None:
    """QM2 IDs wider than proposed are refused with INVALID-ID-INFORMATION, narrower ones taken
    (driven directly: a rewritten QM2 would fail HASH(2) first)."""
    p = _run("10.231.1.0/24", "10.231.2.0/24", "10.231.2.0/24", "10.231.1.0/24")
    sa = p.a.engine.ike_sas[0]
    qm = QuickMode(sa, p.a.engine.ctx, 7, p.a.engine.config.connection("site").child("net"))
    qm.local_ts = TrafficSelector.from_text("10.231.1.0/24")
    qm.remote_ts = TrafficSelector.from_text("10.231.2.0/24")
    wider = [_id_payload(TrafficSelector.from_text("10.231.0.0/16")), _id_payload(qm.remote_ts)]
    try:
        qm._take_reply_ids(_FakeMsg(wider))  # type: ignore[arg-type]
    except PeerError as e:
        assert e.notify == NotifyType.INVALID_ID_INFORMATION and "not inside the proposed" in str(e)
    else:
        raise AssertionError("a widened answer was accepted")
    narrower = [_id_payload(TrafficSelector.from_text("10.231.1.0/25")), _id_payload(qm.remote_ts)]
    qm._take_reply_ids(_FakeMsg(narrower))  # type: ignore[arg-type]
    assert str(qm.local_ts) == "10.231.1.0/25"


class _FakeMsg:
    def __init__(self, ids: list[object]) -> None:
        self.ids = ids

    def all(self, kind: type) -> list[object]:
        return [i for i in self.ids if isinstance(i, kind)]
