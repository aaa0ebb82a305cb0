"""ISAKMP SA lifetimes in kilobytes (RFC 2409 appendix A, Life Type 2): negotiated like the
seconds (lenient by default, strict on request), counted over everything encrypted under the SA; the initiator renews at 90 %, at 100 % the
SA expires."""

from __future__ import annotations

from snakeswan.ike.events import IkeSaDeleted, IkeSaEstablished, NegotiationFailed
from snakeswan.wire.enums import NotifyType
from tests.pair import A_ADDR, B_ADDR, Pair, site_config

LAN_A, LAN_B = "10.231.1.0/24", "10.231.2.0/24"


def pair(a_bytes: str | None, b_bytes: str | None, *, dpd: bool = False, strict: bool = False) -> Pair:
    extra = {"dpd_delay": "10s", "dpd_timeout": "30s"} if dpd else {}
    if strict:
        extra["ike_lifetime_check"] = "strict"
    a = site_config(A_ADDR, B_ADDR, LAN_A, LAN_B, ike_life_bytes=a_bytes, life_time="100s", **extra)
    b = site_config(B_ADDR, A_ADDR, LAN_B, LAN_A, ike_life_bytes=b_bytes, life_time="100s", **extra)
    p = Pair(a, b)
    p.a.engine.initiate("site", now=p.now)
    p.run(max_time=1)
    return p


def test_volume_above_ours_is_refused_when_strict() -> None:
    p = pair("64M", "1M", strict=True)
    assert not p.of(p.b, IkeSaEstablished)
    failed = p.of(p.b, NegotiationFailed)
    assert failed and failed[0].notify == NotifyType.NO_PROPOSAL_CHOSEN
    assert "65536 KiB more than ours (1024 KiB)" in failed[0].reason


def test_smaller_volume_is_taken_and_none_offered_gets_ours() -> None:
    p = pair("1M", "64M")
    assert p.a.engine.ike_sas[0].choice.life_kilobytes == 1024  # type: ignore[union-attr]
    assert p.b.engine.ike_sas[0].choice.life_kilobytes == 1024  # type: ignore[union-attr]
    q = pair(None, "16k")
    assert q.a.engine.ike_sas[0].choice.life_kilobytes is None  # type: ignore[union-attr]
    assert q.b.engine.ike_sas[0].choice.life_kilobytes == 16  # type: ignore[union-attr]


def test_initiator_renews_at_ninety_percent_of_the_volume() -> None:
    p = pair("6k", "6k", dpd=True)
    first = p.a.engine.ike_sas[0]
    p.run(max_time=600)  # IPsec rekeys every 90 s and DPD probes fill the ISAKMP SA
    renewals = list(p.a.engine.tracer.find("ike_rekey"))
    assert renewals, "no renewal by volume"
    assert first.protected_bytes >= 0.9 * 6 * 1024
    assert not [e for e in p.of(p.a, IkeSaDeleted) if "expired" in e.reason]
    assert not [e for e in p.of(p.b, IkeSaDeleted) if "expired" in e.reason]
    (sa_a,), (sa_b,) = p.a.engine.ike_sas, p.b.engine.ike_sas
    assert sa_a.unique_id != first.unique_id and len(sa_a.children) == len(sa_b.children) == 1
    assert sa_a.protected_bytes < 6 * 1024 and sa_b.protected_bytes < 6 * 1024


def test_responder_expires_the_sa_at_its_volume() -> None:
    p = pair(None, "4k", dpd=True)  # only B has a limit: A never renews by volume, B expires the SA
    sa_b = p.b.engine.ike_sas[0]
    p.run(max_time=600)
    assert list(p.b.engine.tracer.find("ike_expire"))
    assert sa_b.protected_bytes >= 4 * 1024
    gone = p.of(p.b, IkeSaDeleted)
    assert gone and gone[0].reason == "ISAKMP SA lifetime expired"
    assert [e.reason for e in p.of(p.a, IkeSaDeleted)][:1] == ["deleted by peer"]
