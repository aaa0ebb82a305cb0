"""The Processor end to end: two data planes back to back, every algorithm, both modes, both
IP versions, UDP encapsulation; drops by reason; Acquire and the queue; lifetimes."""

from __future__ import annotations

import pytest

from snakeswan.errors import LocalError
from snakeswan.ipsec import (
    Acquire,
    Bypass,
    Deliver,
    DeliverVia,
    Expired,
    Output,
    Policy,
    Processor,
    SendIp,
    SendPacket,
    SendUdp,
)
from snakeswan.ipsec.esp import encapsulate
from snakeswan.ipsec.packet import checksum, five_tuple
from snakeswan.trace import Tracer
from tests.unit.ipsec.helpers import (
    AH_ALGORITHMS,
    ESP_ALGORITHMS,
    INNER,
    KEY,
    Pair,
    counter_rng,
    deliver_to,
    ip_packet,
    make_pair,
    sa_params,
    selector,
)

MATRIX = [
    (alg, mode, version, encap)
    for alg in ESP_ALGORITHMS + AH_ALGORITHMS
    for mode in ("tunnel", "transport")
    for version in (4, 6)
    for encap in ((False, True) if alg in ESP_ALGORITHMS else (False,))
]


@pytest.mark.parametrize(("alg", "mode", "version", "encap"), MATRIX)
def test_round_trip(alg: str, mode: str, version: int, encap: bool) -> None:
    p = make_pair(alg, version=version, mode=mode, encap=encap)
    for size in (0, 1, 100, 1400):
        packet = p.inner(data=bytes(size))
        (out,) = p.a.outbound(packet, 1.0)
        if encap:
            assert isinstance(out, SendUdp) and (out.sport, out.dport) == (4500, 4500)
        elif alg.startswith("ah"):
            assert isinstance(out, SendPacket)
        else:
            assert isinstance(out, SendIp) and out.protocol == 50
        assert deliver_to(p.b, out, 1.0) == [Deliver(packet)]
        back = p.inner_back(proto=6, sport=80, dport=1234, data=b"reply" * size)
        (out,) = p.b.outbound(back, 1.0)
        assert deliver_to(p.a, out, 1.0) == [Deliver(back)]
    assert p.a.counters(0x1001)["packets"] == 4
    assert p.b.counters(0x1001)["packets"] == 4
    assert p.a.drops == {} and p.b.drops == {}


@pytest.mark.parametrize("alg", ["aes128gcm16", "aes128-sha1", "ah-sha256"])
@pytest.mark.parametrize("mode", ["tunnel", "transport"])
@pytest.mark.parametrize("version", [4, 6])
def test_outer_headers(alg: str, mode: str, version: int) -> None:
    p = make_pair(alg, version=version, mode=mode, outer_headers=True)
    packet = p.inner(data=b"abc" * 50)
    (out,) = p.a.outbound(packet, 1.0)
    assert isinstance(out, SendPacket)
    if version == 4:
        assert checksum(out.packet[:20]) == 0
        assert int.from_bytes(out.packet[2:4], "big") == len(out.packet)
    else:
        assert int.from_bytes(out.packet[4:6], "big") == len(out.packet) - 40
    assert deliver_to(p.b, out) == [Deliver(packet)]


def test_tunnel_df_and_tos_copied_to_ah_outer() -> None:
    p = make_pair("ah-sha1")
    packet = bytearray(p.inner())
    packet[1] = 0xB8
    packet[6] |= 0x40
    packet[10:12] = b"\0\0"
    packet[10:12] = checksum(bytes(packet[:20])).to_bytes(2, "big")
    (out,) = p.a.outbound(bytes(packet), 0.0)
    assert isinstance(out, SendPacket)
    assert out.packet[1] == 0xB8 and out.packet[6] & 0x40
    assert deliver_to(p.b, out) == [Deliver(bytes(packet))]


# --- inbound drops ------------------------------------------------------------------------------


def test_unknown_spi() -> None:
    p = make_pair("aes128gcm16")
    (out,) = p.a.outbound(p.inner(), 0.0)
    assert isinstance(out, SendIp)
    assert p.a.inbound(out.payload, 50, out.src, out.dst, 0.0) == []  # a has no inbound 0x1001
    assert p.a.drops == {"unknown_spi": 1}


@pytest.mark.parametrize("alg", ["aes128gcm16", "aes256-sha256", "ah-sha1"])
def test_replay_and_icv_drops_are_counted(alg: str) -> None:
    p = make_pair(alg)
    outs = [p.a.outbound(p.inner(data=bytes([i])), 0.0)[0] for i in range(3)]
    assert deliver_to(p.b, outs[1])
    assert deliver_to(p.b, outs[1]) == []  # duplicate
    assert p.b.drops == {"replay": 1}
    last = outs[2]
    forged: Output
    if isinstance(last, SendPacket):
        bad = bytearray(last.packet)
        bad[-3] ^= 0x10
        forged = SendPacket(last.src, last.dst, bytes(bad))
    else:
        assert isinstance(last, SendIp)
        bad = bytearray(last.payload)
        bad[-3] ^= 0x10
        forged = SendIp(50, last.src, last.dst, bytes(bad))
    assert deliver_to(p.b, forged) == []
    assert p.b.drops == {"replay": 1, "icv": 1}
    # the forged packet did not move the window: the genuine one still gets in, the older one too
    assert deliver_to(p.b, outs[2])
    assert deliver_to(p.b, outs[0])
    counters = p.b.counters(0x1001)
    assert counters["drop_replay"] == 1 and counters["drop_icv"] == 1
    assert counters["packets"] == 3 and counters["replay_top"] == 3


def test_forged_high_sequence_number_does_not_move_window() -> None:
    p = make_pair("aes128gcm16")
    (out,) = p.a.outbound(p.inner(), 0.0)
    assert isinstance(out, SendIp)
    forged = out.payload[:4] + (5000).to_bytes(4, "big") + out.payload[8:]
    assert p.b.inbound(forged, 50, out.src, out.dst, 0.0) == []
    assert p.b.drops == {"icv": 1}
    assert deliver_to(p.b, out)


def test_selector_mismatch_after_decryption() -> None:
    p = make_pair("aes128gcm16")
    # a's policy admits anything to 10.2.0.0/24 from anywhere; b's SA only 10.1.0.0/24
    p.a.add_policy(Policy(selector("10.9.0.0/24"), selector("10.2.0.0/24"), "protect", key=("site", "net")))
    outside = ip_packet("10.9.0.1", "10.2.0.7")
    (out,) = p.a.outbound(outside, 0.0)
    assert deliver_to(p.b, out) == []
    assert p.b.drops == {"policy": 1}
    assert p.b.counters(0x1001)["drop_policy"] == 1


def test_ports_in_sa_selectors() -> None:
    a = Processor(counter_rng())
    b = Processor(counter_rng())
    lts, rts = selector("10.1.0.0/24[udp]"), selector("10.2.0.0/24[udp/53]")
    out_a = sa_params("aes128gcm16", 0x1001, local_ts=(lts,), remote_ts=(rts,))
    in_b = sa_params("aes128gcm16", 0x1001, local_first=False, local_ts=(rts,), remote_ts=(lts,))
    a.install(sa_params("aes128gcm16", 0x2002), out_a, KEY)
    b.install(in_b, sa_params("aes128gcm16", 0x2002, local_first=False), KEY)
    a.add_policy(Policy(selector("10.1.0.0/24"), selector("10.2.0.0/24"), "protect", key=KEY))
    good = ip_packet(*INNER[4], sport=3333, dport=53)
    bad = ip_packet(*INNER[4], sport=3333, dport=54)
    tcp = ip_packet(*INNER[4], proto=6, sport=3333, dport=53)
    assert deliver_to(b, a.outbound(good, 0.0)[0]) == [Deliver(good)]
    assert deliver_to(b, a.outbound(bad, 0.0)[0]) == []
    assert deliver_to(b, a.outbound(tcp, 0.0)[0]) == []
    assert b.drops == {"policy": 2}


def test_tunnel_next_header_must_match_inner_version() -> None:
    p = make_pair("aes128gcm16")
    sa = p.a.sad.outbound[0x1001]
    assert sa.esp is not None
    packet = encapsulate(sa.esp, p.inner(), 41, 1, counter_rng())  # says IPv6, carries IPv4
    assert p.b.inbound(packet, 50, "192.0.2.1", "192.0.2.2", 0.0) == []
    dummy = encapsulate(sa.esp, b"", 59, 2, counter_rng())  # RFC 4303 dummy packet
    assert p.b.inbound(dummy, 50, "192.0.2.1", "192.0.2.2", 0.0) == []
    assert p.b.drops == {"malformed": 1, "dummy": 1}


def test_padding_drop_counted() -> None:
    p = make_pair("null-sha256")
    sa = p.a.sad.outbound[0x1001]
    assert sa.esp is not None and sa.esp.integrity is not None
    inner = p.inner(data=b"pad")
    body = (0x1001).to_bytes(4, "big") + (1).to_bytes(4, "big") + inner + b"\x05\x05\x02\x04"
    body += b"\0" * (-len(body) % 4)
    body = body[:-4] + b"\x05\x05\x02\x04"
    packet = body + sa.esp.integrity.mac(body)
    assert p.b.inbound(packet, 50, "192.0.2.1", "192.0.2.2", 0.0) == []
    assert p.b.drops == {"padding": 1}
    # the ICV verified, so the window moved (RFC 4303 3.4.3: update after integrity verification)
    assert p.b.counters(0x1001)["replay_top"] == 1


def test_wrong_protocol_and_garbage_never_raise() -> None:
    p = make_pair("aes128gcm16")
    assert p.b.inbound(b"", 50, "x", "y", 0.0) == []
    assert p.b.inbound(b"\0" * 40, 17, "x", "y", 0.0) == []
    assert p.b.inbound(b"\x45", 51, "x", "y", 0.0) == []
    assert p.b.drops == {"malformed": 3}


def test_drops_are_traced_rate_limited() -> None:
    tracer = Tracer()
    proc = Processor(counter_rng(), tracer=tracer)
    for _ in range(9):
        proc.inbound(b"\0\0\x10\x01" + bytes(40), 50, "192.0.2.1", "192.0.2.2", 0.0)
    drops = list(tracer.find("drop", "ipsec"))
    assert [r.fields["count"] for r in drops] == [1, 2, 4, 8]
    assert proc.drops == {"unknown_spi": 9}
    # the line names the SPI the packet carried (issue 17: "spi=-")
    assert {r.fields["spi"] for r in drops} == {"0x00001001"}


@pytest.mark.parametrize("alg", ["aes128gcm16", "ah-sha1"])
def test_drop_lines_of_a_known_sa_name_its_spi(alg: str) -> None:
    p = make_pair(alg)
    tracer = Tracer()
    p.b._tracer = tracer
    out = p.a.outbound(p.inner(), 0.0)[0]
    assert deliver_to(p.b, out)
    assert deliver_to(p.b, out) == []  # a replay of an SA b knows
    (line,) = tracer.find("drop", "ipsec")
    assert line.fields["reason"] == "replay" and line.fields["spi"] == "0x00001001"
    assert p.b.counters(0x1001)["drop_replay"] == 1 and p.b.drops == {"replay": 1}  # counted once


# --- outbound policy actions, Acquire, queue --------------------------------------------------


def test_no_policy_bypass_and_discard() -> None:
    proc = Processor(counter_rng())
    packet = ip_packet(*INNER[4])
    assert proc.outbound(packet, 0.0) == [Bypass(packet)]
    proc.add_policy(Policy(selector("10.1.0.0/24"), selector("10.2.0.0/24[udp/80]"), "bypass", priority=1))
    proc.add_policy(Policy(selector("10.1.0.0/24"), selector("10.2.0.0/24"), "discard", priority=2))
    assert proc.outbound(packet, 0.0) == [Bypass(packet)]
    other = ip_packet(*INNER[4], dport=81)
    assert proc.outbound(other, 0.0) == []
    assert proc.drops == {"discard": 1}
    assert proc.outbound(b"\x99", 0.0) == [] and proc.drops["malformed"] == 1


def test_acquire_once_queue_bound_and_flush_on_install() -> None:
    a = Processor(counter_rng(), queue_limit=4, acquire_interval=30.0)
    a.add_policy(Policy(selector("10.1.0.0/24"), selector("10.2.0.0/24"), "protect", key=KEY))
    packets = [ip_packet(*INNER[4], data=bytes([i])) for i in range(6)]
    for pkt in packets:
        assert a.outbound(pkt, 1.0) == []
    event = a.next_event()
    assert event == Acquire(KEY, 4, "10.1.0.5", "10.2.0.7", 17, 1234, 80)
    assert a.next_event() is None  # once
    assert a.drops == {"queue_full": 2}
    assert a.outbound(packets[0], 40.0) == []  # after acquire_interval: again
    assert isinstance(a.next_event(), Acquire)
    b = Processor(counter_rng())
    b.install(
        sa_params("aes128gcm16", 0x1001, local_first=False),
        sa_params("aes128gcm16", 0x2002, local_first=False),
        KEY,
    )
    flushed = a.install(sa_params("aes128gcm16", 0x2002), sa_params("aes128gcm16", 0x1001), KEY, now=41.0)
    assert len(flushed) == 4
    delivered = [deliver_to(b, out) for out in flushed]
    # the oldest two were pushed out of the queue; the re-sent packets[0] is last
    assert delivered == [[Deliver(p)] for p in (packets[3], packets[4], packets[5], packets[0])]
    assert len(a.outbound(packets[1], 42.0)) == 1


def test_remove_policies_drops_queue() -> None:
    a = Processor(counter_rng())
    a.add_policy(Policy(selector("10.1.0.0/24"), selector("10.2.0.0/24"), "protect", key=KEY))
    a.outbound(ip_packet(*INNER[4]), 0.0)
    assert a.remove_policies(KEY) == 1
    assert a.install(sa_params("aes128gcm16", 0x2002), sa_params("aes128gcm16", 0x1001), KEY) == []
    assert a.outbound(ip_packet(*INNER[4]), 0.0) == [Bypass(ip_packet(*INNER[4]))]


def _spi_out(p: Pair, now: float) -> int:
    """The SPI a's next outbound packet goes with."""
    (out,) = p.a.outbound(p.inner(), now)
    assert isinstance(out, SendIp)
    return int.from_bytes(out.payload[:4], "big")


def test_rekey_make_before_break_and_remove() -> None:
    p = make_pair("aes128gcm16")
    p.a.install(sa_params("aes128gcm16", 0x3003), sa_params("aes128gcm16", 0x4004), KEY)
    (out,) = p.a.outbound(p.inner(), 0.0)
    assert isinstance(out, SendIp) and out.payload[:4] == (0x4004).to_bytes(4, "big")
    p.a.remove(0x3003)  # the new pair goes: back to the old outbound SA
    (out,) = p.a.outbound(p.inner(), 0.0)
    assert isinstance(out, SendIp) and out.payload[:4] == (0x1001).to_bytes(4, "big")
    p.a.remove(0x2002)
    assert p.a.outbound(p.inner(), 0.0) == []
    assert isinstance(p.a.next_event(), Acquire)
    assert p.a.counters(0x1001) == {}


def test_a_rekey_we_initiated_switches_outbound_after_a_delay() -> None:
    """The peer installs the new SA when our QM3 reaches it: we keep sending on the old SA for
    ``switch_after`` seconds (a packet on the new SA overtaking QM3 would be lost there)."""
    p = make_pair("aes128gcm16")
    p.a.outbound(p.inner(), 10.0)
    p.a.install(
        sa_params("aes128gcm16", 0x3003), sa_params("aes128gcm16", 0x4004), KEY, now=10.0, switch_after=0.5
    )

    assert _spi_out(p, 10.1) == 0x1001 and _spi_out(p, 10.49) == 0x1001  # still the old SA
    assert _spi_out(p, 10.5) == 0x4004 and _spi_out(p, 11.0) == 0x4004  # then the new one
    # the old SA going before the switch is due: the new one at once, and the switch is harmless
    p.a.install(
        sa_params("aes128gcm16", 0x5005), sa_params("aes128gcm16", 0x6006), KEY, now=12.0, switch_after=0.5
    )
    assert _spi_out(p, 12.1) == 0x4004
    p.a.remove(0x3003)
    assert _spi_out(p, 12.2) == 0x6006 and _spi_out(p, 13.0) == 0x6006


def test_a_deferred_switch_is_made_when_the_peer_sends_on_the_new_pair() -> None:
    """The peer sending on the new pair has it: no reason to wait for ``switch_after`` (vpnc drops
    the old pair as soon as it answers the rekey). A packet on another pair changes nothing."""
    p = make_pair("aes128gcm16")

    p.a.outbound(p.inner(), 10.0)
    p.a.install(
        sa_params("aes128gcm16", 0x3003), sa_params("aes128gcm16", 0x4004), KEY, now=10.0, switch_after=0.5
    )
    p.b.install(
        sa_params("aes128gcm16", 0x4004, local_first=False),
        sa_params("aes128gcm16", 0x3003, local_first=False),
        KEY,
        now=10.0,
    )
    p.b.remove(0x1001)  # b (like vpnc) keeps only the new pair: it sends on 0x3003 from now on
    (old,) = p.a.outbound(p.inner(), 10.05)
    assert isinstance(old, SendIp) and old.payload[:4] == (0x1001).to_bytes(4, "big")
    (esp,) = p.b.outbound(p.inner_back(), 10.1)
    assert isinstance(esp, SendIp) and esp.payload[:4] == (0x3003).to_bytes(4, "big")
    p.a.take_moved()
    (delivered,) = deliver_to(p.a, esp, 10.1)
    assert isinstance(delivered, Deliver)
    assert _spi_out(p, 10.15) == 0x4004  # before the 0.5 s were up
    (esp,) = p.a.outbound(p.inner(), 10.2)
    assert isinstance(deliver_to(p.b, esp, 10.2)[0], Deliver)  # and b can open it


def test_prefer_sends_on_a_pair_that_is_not_the_newest() -> None:
    """A rekey collision's survivor: the child sends on it, not on the pair installed last; a
    pending switch to the survivor stays pending, pending switches to other pairs are dropped."""
    p = make_pair("aes128gcm16")

    p.a.outbound(p.inner(), 10.0)
    p.a.install(sa_params("aes128gcm16", 0x3003), sa_params("aes128gcm16", 0x4004), KEY, now=10.0)
    p.a.install(sa_params("aes128gcm16", 0x5005), sa_params("aes128gcm16", 0x6006), KEY, now=10.0)
    assert _spi_out(p, 10.1) == 0x6006
    p.a.prefer(0x3003)
    assert _spi_out(p, 10.2) == 0x4004
    p.a.remove(0x2002)  # the old pair goes: the preferred one stays in use
    assert _spi_out(p, 10.3) == 0x4004
    p.a.remove(0x3003)  # the preferred one goes: the other one
    assert _spi_out(p, 10.4) == 0x6006
    # a pending switch to the survivor is kept; one to another pair is dropped
    p.a.install(
        sa_params("aes128gcm16", 0x7007), sa_params("aes128gcm16", 0x8008), KEY, now=11.0, switch_after=0.5
    )
    p.a.prefer(0x7007)
    assert _spi_out(p, 11.1) == 0x6006 and _spi_out(p, 11.6) == 0x8008
    p.a.install(
        sa_params("aes128gcm16", 0x9009), sa_params("aes128gcm16", 0xA00A), KEY, now=12.0, switch_after=0.5
    )
    p.a.prefer(0x5005)
    assert _spi_out(p, 12.1) == 0x6006 and _spi_out(p, 12.6) == 0x6006
    p.a.prefer(0xDEAD)  # unknown: nothing happens
    assert _spi_out(p, 12.7) == 0x6006


def test_install_twice_raises() -> None:
    p = make_pair("aes128gcm16")
    with pytest.raises(LocalError):
        p.a.install(sa_params("aes128gcm16", 0x2002), sa_params("aes128gcm16", 0x5005), KEY)
    with pytest.raises(LocalError):
        p.a.install(sa_params("aes128gcm16", 0x6006), sa_params("aes128gcm16", 0x1001), KEY)
    assert 0x6006 not in {spi for spi, _ in p.a.sad.inbound}


# --- lifetimes ----------------------------------------------------------------------------------


def events(proc: Processor) -> list[Expired]:
    result = []
    while (e := proc.next_event()) is not None:
        assert isinstance(e, Expired)
        result.append(e)
    return result


def test_time_expiry_soft_then_hard() -> None:
    p = make_pair("aes128gcm16", now=100.0, soft_seconds=50.0, hard_seconds=60.0)
    assert p.a.get_timer() == 150.0
    p.a.handle_timer(149.0)
    assert events(p.a) == []
    p.a.handle_timer(150.0)
    got = events(p.a)
    assert {(e.spi, e.kind, e.direction, e.reason) for e in got} == {
        (0x1001, "soft", "out", "time"),
        (0x2002, "soft", "in", "time"),
    }
    assert p.a.get_timer() == 160.0
    p.a.handle_timer(160.0)
    assert {(e.spi, e.kind) for e in events(p.a)} == {(0x1001, "hard"), (0x2002, "hard")}
    assert p.a.get_timer() is None
    assert p.a.outbound(p.inner(), 161.0) == []  # no SA any more: queued, Acquire
    assert isinstance(p.a.next_event(), Acquire)


def test_lifetime_starts_at_first_now_when_install_has_none() -> None:
    a = Processor(counter_rng())
    a.install(
        sa_params("aes128gcm16", 0x2002, hard_seconds=10.0),
        sa_params("aes128gcm16", 0x1001, hard_seconds=10.0),
        KEY,
    )
    assert a.get_timer() is None
    a.handle_timer(500.0)
    assert a.get_timer() == 510.0


def test_byte_expiry_outbound_and_inbound() -> None:
    p = make_pair("aes128gcm16", soft_bytes=3000, hard_bytes=5000)
    packet = p.inner(data=bytes(972))  # 1000 bytes
    assert len(packet) == 1000
    outs = []
    for _ in range(3):
        outs += p.a.outbound(packet, 0.0)
    assert [(e.kind, e.reason) for e in events(p.a)] == [("soft", "bytes")]
    outs += p.a.outbound(packet, 0.0) + p.a.outbound(packet, 0.0)
    assert [(e.spi, e.kind, e.direction) for e in events(p.a)] == [(0x1001, "hard", "out")]
    assert len(outs) == 5
    assert p.a.outbound(packet, 0.0) == []  # the SA is gone
    for out in outs:
        deliver_to(p.b, out)
    assert [(e.kind, e.direction) for e in events(p.b)] == [("soft", "in"), ("hard", "in")]
    assert p.b.counters(0x1001) == {}


def test_sequence_number_overflow() -> None:
    p = make_pair("aes128gcm16")
    sa = p.a.sad.outbound[0x1001]
    sa.seq = 0xFF000000 - 2
    p.a.outbound(p.inner(), 0.0)
    assert events(p.a) == []
    p.a.outbound(p.inner(), 0.0)  # 0xFF000000: soft
    assert [(e.kind, e.reason) for e in events(p.a)] == [("soft", "seq")]
    sa.seq = 0xFFFFFFFF - 1
    (out,) = p.a.outbound(p.inner(), 0.0)
    assert isinstance(out, SendIp) and out.payload[4:8] == b"\xff\xff\xff\xff"
    assert [(e.kind, e.reason) for e in events(p.a)] == [("hard", "seq")]
    assert p.a.outbound(p.inner(), 0.0) == []  # never cycles to 0


# --- NAT-T transport mode checksum ----------------------------------------------------------


def test_transport_natt_checksum_fixup() -> None:
    """The peer (behind a NAT, private 172.16.0.9) computed its UDP checksum with its own address;
    b sees it as 192.0.2.1: with NAT-OA the delivered packet's checksum is right again."""
    a = Processor(counter_rng())
    b = Processor(counter_rng())
    a_out = sa_params("aes128gcm16", 0x1001, mode="transport", encap=True)
    b_in = sa_params(
        "aes128gcm16",
        0x1001,
        mode="transport",
        encap=True,
        local_first=False,
        nat_oa=("172.16.0.9", "192.0.2.2"),
    )
    a.install(sa_params("aes128gcm16", 0x2002, mode="transport", encap=True), a_out, KEY)
    b.install(b_in, sa_params("aes128gcm16", 0x2002, mode="transport", encap=True, local_first=False), KEY)
    a.add_policy(Policy(selector("0.0.0.0/0"), selector("0.0.0.0/0"), "protect", key=KEY))
    private = ip_packet("172.16.0.9", "192.0.2.2", sport=4000, dport=53, data=b"query!")
    (out,) = a.outbound(private, 0.0)
    assert isinstance(out, SendUdp)
    (delivered,) = deliver_to(b, out)
    assert isinstance(delivered, Deliver)
    pkt = delivered.ip_packet
    assert five_tuple(pkt)[1:3] == (0xC0000201, 0xC0000202)
    udp = pkt[20:]
    pseudo = pkt[12:20] + b"\0\x11" + len(udp).to_bytes(2, "big")
    assert checksum(pseudo + udp) == 0
    assert udp[8:] == b"query!"


def test_counters_by_direction_and_flush_of_malformed() -> None:
    p = make_pair("aes128gcm16")
    p.a.outbound(p.inner(), 0.0)
    assert p.a.counters(0x1001, "out")["seq"] == 1
    assert p.a.counters(0x1001, "in") == {}
    assert p.a.counters(0x2002, "in")["replay_top"] == 0
    # transport mode: a queued packet whose lengths are wrong is dropped at install, not raised
    a = Processor(counter_rng())
    a.add_policy(Policy(selector("0.0.0.0/0"), selector("0.0.0.0/0"), "protect", key=KEY))
    good = ip_packet("192.0.2.1", "192.0.2.2")
    broken = good[:2] + (len(good) + 5).to_bytes(2, "big") + good[4:]
    a.outbound(broken, 0.0)
    a.outbound(good, 0.0)
    out = a.install(
        sa_params("aes128gcm16", 0x2002, mode="transport"),
        sa_params("aes128gcm16", 0x1001, mode="transport"),
        KEY,
    )
    assert len(out) == 1
    assert a.drops == {"malformed": 1}


@pytest.mark.parametrize("alg", ["aes128gcm16", "aes256-sha256"])
def test_inbound_esp_many_matches_inbound_one_by_one(alg: str) -> None:
    """The batch path delivers the same inner packets in the same order as :meth:`inbound` and
    drops (counts, per SA too) what :meth:`inbound` drops: a replay, a forged ICV, an unknown
    SPI, a short packet, in the middle of a batch."""
    p = make_pair(alg)
    inners = [p.inner(data=bytes([i]) * 40) for i in range(5)]
    wire = []
    for inner in inners:
        (out,) = p.a.outbound(inner, 0.0)
        assert isinstance(out, SendIp)
        wire.append(out.payload)
    forged = bytearray(wire[3])
    forged[-3] ^= 0x10
    unknown = (0xDEAD).to_bytes(4, "big") + wire[0][4:]
    batch = [wire[0], wire[1], wire[1], bytes(forged), unknown, b"\0\0", wire[2], wire[3], wire[4]]
    delivered, other = p.b.inbound_esp_many(batch, 0.0)
    assert other == []
    assert delivered == inners
    assert p.b.drops == {"replay": 1, "icv": 1, "unknown_spi": 1, "malformed": 1}
    counters = p.b.counters(0x1001)
    assert counters["packets"] == 5 and counters["drop_replay"] == 1 and counters["drop_icv"] == 1
    assert p.b.inbound_esp_many([], 0.0) == ([], [])


def test_inbound_esp_many_route_based_goes_to_its_interface() -> None:
    """A route-based child's inner packets leave the batch as DeliverVia for its own device, not
    among the shared TUN's packets."""
    p = make_pair("aes128gcm16", interface="ssw-rb0")
    (out,) = p.a.outbound(p.inner(), 0.0)
    assert isinstance(out, SendIp)
    delivered, other = p.b.inbound_esp_many([out.payload], 0.0)
    assert delivered == []
    assert len(other) == 1 and isinstance(other[0], DeliverVia) and other[0].interface == "ssw-rb0"


def test_take_moved_lists_each_pair_once_by_direction() -> None:
    """take_moved: the pairs (inbound SPI) that received and that sent since the last call, each
    SA listed once however many packets it counted; nothing when idle."""
    p = make_pair("aes128gcm16")
    assert p.a.take_moved() == (set(), set()) == p.b.take_moved()
    outs = [p.a.outbound(p.inner(data=bytes([i])), 0.0)[0] for i in range(3)]
    for out in outs:
        assert deliver_to(p.b, out)
    assert p.a.take_moved() == (set(), {0x2002})  # a sent on the pair it receives on with 0x2002
    assert p.b.take_moved() == ({0x1001}, set())
    assert p.a.take_moved() == (set(), set()) == p.b.take_moved()
    assert len(p.a._moved) == 0  # the list is emptied by each look


def test_take_moved_list_stays_bounded_without_a_taker() -> None:
    """A library user that never calls take_moved does not grow the list past the SAs installed."""
    proc = Processor(counter_rng())
    for i in range(200):
        key = ("c", f"k{i}")
        spi = 0x1000 + 2 * i
        proc.install(sa_params("aes128gcm16", spi), sa_params("aes128gcm16", spi + 1), key, now=0.0)
        (out,) = proc.outbound_via([ip_packet(*INNER[4])], key, 0.0)
        assert isinstance(out, SendIp)
        proc.remove(spi)
    assert len(proc._moved) <= 4 * len(proc._pairs) + 65
