"""The daemon's processor with workers (daemon/workers.py): every change goes to the workers as a
message, each pair gets its owner, the whole state makes a new replica (a worker started again),
and a replica fed those messages behaves as the daemon's copy does, with the owner's part."""

from __future__ import annotations

import pickle
import socket
from dataclasses import replace

import pytest

from snakeswan.config.loader import parse_config
from snakeswan.daemon.dp_worker import apply
from snakeswan.daemon.workers import (
    ReplicatedProcessor,
    WorkerPool,
    decode,
    encode,
    inbox_batch,
    receive,
    send_handoffs,
)
from snakeswan.errors import ConfigError
from snakeswan.io.udp import UdpSocket
from snakeswan.ipsec import Handoff, Policy, Processor, SendIp
from snakeswan.ipsec.checkpoint import MIN_MARGIN
from tests.unit.ipsec.helpers import KEY, counter_rng, ip_packet, sa_params

PACKET = ip_packet("10.1.0.5", "10.2.0.7", data=b"replicated")


def daemon_side(workers: int = 2) -> tuple[ReplicatedProcessor, list[tuple[object, ...]]]:
    sent: list[tuple[object, ...]] = []
    proc = ReplicatedProcessor(counter_rng(), workers=workers)
    proc.send = lambda msg: sent.append(decode(encode(msg)))  # through pickle, as on the socket
    out_params = sa_params("aes128gcm16", 0x1001)
    proc.add_policy(Policy(out_params.local_ts[0], out_params.remote_ts[0], "protect", key=KEY))
    return proc, sent


def test_each_change_is_a_message_and_each_pair_has_its_owner() -> None:
    proc, sent = daemon_side(workers=4)
    out_params = sa_params("aes128gcm16", 0x1001)
    for spi_in in (0x2002, 0x2003):  # SPI mod 4: worker 2, worker 3
        proc.install(
            sa_params("aes128gcm16", spi_in, seed=2), replace(out_params, spi=spi_in + 0x100), KEY, now=5.0
        )
    encap = replace(sa_params("aes128gcm16", 0x3001, seed=3), encap=True)
    proc.install(encap, replace(out_params, spi=0x3101, encap=True), KEY, now=5.0)
    assert [m[0] for m in sent] == ["policy", "install", "install", "install"]
    assert [m[-1] for m in sent[1:]] == [2, 3, 0]  # UDP-encapsulated: the daemon's sockets carry it
    assert all(m[4] == 5.0 for m in sent[1:])  # the replicas' lifetimes start with ours
    proc.remove(0x2002)
    assert proc.remove_policies(KEY) == 1
    assert sent[-2:] == [("remove", 0x2002), ("unpolicy", KEY)]
    route_based = replace(sa_params("aes128gcm16", 0x4005, seed=4), interface="vti1")
    assert proc.owner_for(route_based, None) == 0
    assert proc.owner_for(sa_params("aes128gcm16", 0x4005), None) == 1
    # ESP-in-UDP: its SPI's worker once the workers are in the NAT-T port's group, of its family
    udp = replace(sa_params("aes128gcm16", 0x4005), encap=True)
    proc.udp_steered.add((socket.AF_INET6, udp.local[1]))
    assert ":" not in udp.local[0] and proc.owner_for(udp, None) == 0
    proc.udp_steered.add((socket.AF_INET, udp.local[1]))
    assert proc.owner_for(udp, None) == 1
    assert proc.owner_for(replace(udp, local=(udp.local[0], udp.local[1] + 1)), None) == 0


def test_a_replica_from_the_messages_processes_what_it_owns() -> None:
    proc, sent = daemon_side()
    out_params = sa_params("aes128gcm16", 0x1001)
    proc.install(sa_params("aes128gcm16", 0x2003, seed=2), out_params, KEY, now=1.0)  # owner 1
    replica = Processor(counter_rng(), worker=1)
    for msg in sent:
        assert apply(replica, msg) == []
    assert proc.outbound(PACKET, 2.0) == [Handoff(1, PACKET)]
    (out,) = replica.outbound(PACKET, 2.0)
    assert isinstance(out, SendIp)
    counters = replica.pair_counters(0x2003)
    assert counters is not None and counters.seq_out == 1
    proc.absorb(0x2003, counters)
    assert proc.counters(0x1001, "out")["seq"] == 1


def test_the_whole_state_starts_a_replica_again_with_numbers_jumped() -> None:
    proc, _sent = daemon_side()
    out_params = sa_params("aes128gcm16", 0x1001)
    proc.install(sa_params("aes128gcm16", 0x2003, seed=2), out_params, KEY, now=1.0)
    pair = proc.pair(0x2003)
    assert pair is not None
    pair[1].seq, pair[0].replay.top = 500, 70  # what the owner reported last
    state = proc.state()
    assert [m[0] for m in state] == ["policy", "install", "resume"]
    replica = Processor(counter_rng(), worker=1)
    for msg in state:
        apply(replica, decode(encode(msg)))
    again = replica.pair(0x2003)
    assert again is not None
    assert again[1].seq == 500 + MIN_MARGIN  # never a number twice under one key
    assert again[0].replay.top == 70 and not again[0].replay.check(70)  # nothing below it again
    assert again[0].replay.check(71)
    other = Processor(counter_rng(), worker=0)  # not the owner: the resume is not its business
    for msg in state:
        apply(other, msg)
    assert other.counters(0x1001, "out")["seq"] == 0


def test_the_pair_a_child_prefers_reaches_the_workers_and_a_new_replica() -> None:
    """A rekey collision's survivor (not the newest pair) is what the owner sends on, in a worker
    that was told so and in one started again with the whole state."""
    proc, sent = daemon_side()
    out_params = sa_params("aes128gcm16", 0x1001)
    proc.install(sa_params("aes128gcm16", 0x2003, seed=2), out_params, KEY, now=1.0)
    proc.install(sa_params("aes128gcm16", 0x2005, seed=3), replace(out_params, spi=0x1005), KEY, now=1.0)
    proc.prefer(0x2003)
    assert sent[-1] == ("prefer", 0x2003)
    assert [m[0] for m in proc.state()][-1] == "prefer"
    for messages in (sent, proc.state()):
        replica = Processor(counter_rng(), worker=1)
        for msg in messages:
            apply(replica, decode(encode(msg)))
        (out,) = replica.outbound(PACKET, 2.0)
        assert isinstance(out, SendIp) and out.payload[:4] == (0x1001).to_bytes(4, "big")
    proc.prefer(0x2005)  # the newest again: the state says nothing more
    assert "prefer" not in [m[0] for m in proc.state()]


def test_unknown_messages_are_ignored_and_bad_ones_refused() -> None:
    assert apply(Processor(counter_rng(), worker=1), ("frobnicate", 1)) == []
    with pytest.raises(ValueError, match="non-empty tuple"):
        decode(pickle.dumps(["not", "a", "tuple"]))


def test_handoffs_cross_the_inboxes() -> None:
    rd, wr = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with rd, wr:
        rd.setblocking(False)
        handoffs = [Handoff(1, b"inner"), Handoff(1, b"esp", inbound=True), Handoff(7, b"nobody")]
        assert send_handoffs({1: wr}, handoffs) == (2, 1)  # worker 7 does not exist: lost
        assert inbox_batch(rd) == ([b"inner"], [b"esp"])
        assert inbox_batch(rd) == ([], [])


def test_the_workers_key() -> None:
    assert parse_config("[daemon]\nworkers = 4\n").daemon.workers == 4
    assert parse_config("").daemon.workers == 1
    for bad in ("0", "65", '"auto"'):
        with pytest.raises(ConfigError, match="workers"):
            parse_config(f"[daemon]\nworkers = {bad}\n")


def test_control_messages_whole_or_refused() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with a, b:
        b.setblocking(False)
        buffer = bytearray(1024)
        assert receive(b, buffer) is None  # nothing queued
        a.send(encode(("remove", 7)))
        data = receive(b, buffer)
        assert data is not None and decode(data) == ("remove", 7)
        a.send(bytes(2048))
        with pytest.raises(ValueError, match="over 1024 bytes"):
            receive(b, buffer)
        a.close()
        assert receive(b, buffer) == b""  # the other end closed


def test_workers_join_the_nat_t_group_or_leave_esp_in_udp_to_the_daemon(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each worker gets a socket in the group of the daemon's NAT-T socket (an ephemeral port
    here; nothing is sent), and its pairs' ESP-in-UDP is then the workers'; a socket not made for
    a group leaves it all with the daemon, said once."""
    pool = WorkerPool.__new__(WorkerPool)
    pool.size, pool.mark, pool._udp = 3, 0, {}
    pool.processor = ReplicatedProcessor(counter_rng(), workers=3)
    alone = UdpSocket(0, nat_t=True)
    grouped = UdpSocket(0, nat_t=True, reuseport=True)
    try:
        pool._join(alone)
        assert pool._udp == {} and pool.processor.udp_steered == set()
        assert "the workers get no ESP-in-UDP" in caplog.text
        pool._join(grouped)
        assert pool.processor.udp_steered == {(socket.AF_INET, grouped.port)}
        assert sorted(pool._udp) == [1, 2]
        assert all(s.port == grouped.port and s.nat_t for (s,) in pool._udp.values())
    finally:
        for sock in (alone, grouped, *(s for group in pool._udp.values() for s in group)):
            sock.close()


def test_a_foreign_socket_in_the_group_keeps_esp_in_udp_with_the_daemon(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another socket that joined the daemon's group first (another daemon on the port) would
    take a worker's index and its share: the workers do not join, the daemon keeps the traffic."""
    pool = WorkerPool.__new__(WorkerPool)
    pool.size, pool.mark, pool._udp = 2, 0, {}
    pool.processor = ReplicatedProcessor(counter_rng(), workers=2)
    grouped = UdpSocket(0, nat_t=True, reuseport=True)
    intruder = UdpSocket(grouped.port, nat_t=True, reuseport=True)
    try:
        pool._join(grouped)
        assert pool._udp == {} and pool.processor.udp_steered == set()
        assert "1 other socket(s) bound to UDP" in caplog.text
    finally:
        grouped.close()
        intruder.close()
