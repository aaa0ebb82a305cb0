"""Dead Peer Detection (RFC 3706) between two engines with a fake clock."""

from __future__ import annotations

from snakeswan.ike.events import IkeSaDeleted, IkeSaEstablished
from snakeswan.wire.enums import ExchangeType
from snakeswan.wire.message import decode_header
from tests.pair import A_ADDR, B_ADDR, Pair, site_config

LAN_A, LAN_B = "10.231.1.0/24", "10.231.2.0/24"


def dpd_pair(action: str = "clear", delay: str = "10s", timeout: str = "30s") -> Pair:
    a = site_config(A_ADDR, B_ADDR, LAN_A, LAN_B, dpd_delay=delay, dpd_timeout=timeout, dpd_action=action)
    b = site_config(B_ADDR, A_ADDR, LAN_B, LAN_A)  # B has no DPD of its own but answers
    p = Pair(a, b)
    p.a.engine.initiate("site", now=p.now)
    p.run(max_time=1)  # established at once; the clock stands 1 s after it
    assert p.of(p.a, IkeSaEstablished) and p.of(p.b, IkeSaEstablished)
    return p


def probes(p: Pair) -> list[int]:
    return [int(r.fields["seq"]) for r in p.a.engine.tracer.find("dpd_probe")]


def test_idle_peer_is_probed_and_answers() -> None:
    p = dpd_pair()
    t0 = p.now
    p.run(max_time=45)
    sent = probes(p)
    acks = [int(r.fields["seq"]) for r in p.a.engine.tracer.find("dpd_ack")]
    assert len(sent) == 4 and acks == sent  # one probe every 10 s of silence, each answered
    assert sent == list(range(sent[0], sent[0] + 4))  # sequence numbers count up
    assert not p.of(p.a, IkeSaDeleted) and len(p.a.engine.ike_sas) == 1
    assert p.now - t0 >= 40


def test_traffic_means_no_probe() -> None:
    p = dpd_pair()
    sa_id = p.a.engine.ike_sas[0].unique_id
    for _ in range(8):
        p.run(max_time=5)
        p.a.engine.traffic_seen(sa_id, p.now)
    assert probes(p) == []


def test_dead_peer_cleared_after_delay_plus_timeout() -> None:
    p = dpd_pair("clear", "10s", "30s")
    p.drop = lambda d, n: p.wire[n][0] == "b"  # B stops answering right after the handshake
    p.run(max_time=38.5)  # first probe 10 s after the handshake, deadline 30 s later
    assert not p.of(p.a, IkeSaDeleted) and len(p.a.engine.ike_sas) == 1
    assert len(probes(p)) == 3  # re-probed every dpd_delay while unanswered
    p.run(max_time=1.0)
    deleted = p.of(p.a, IkeSaDeleted)
    assert deleted and "DPD" in deleted[0].reason
    assert p.a.engine.ike_sas == [] and p.a.engine.get_timer() is None  # clear: nothing restarts


def test_dead_peer_restart_initiates_again() -> None:
    p = dpd_pair("restart", "10s", "20s")
    p.drop = lambda d, n: p.wire[n][0] == "b"
    p.run(max_time=35)
    assert p.of(p.a, IkeSaDeleted)
    mm1 = [
        d
        for who, d in p.wire
        if who == "a" and decode_header(d.data).exchange == ExchangeType.IDENTITY_PROTECTION
    ]
    assert len(mm1) >= 4  # the first Main Mode (3 messages) and a new MM1 after the restart
    assert len(p.a.engine.ike_sas) == 1  # the new attempt is under way
