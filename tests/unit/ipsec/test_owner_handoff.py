"""Several data-plane workers (``[daemon] workers``): every worker's processor holds every pair,
but only the pair's owner protects and opens its packets; the others hand them over
(:class:`Handoff`), the queued ones too; the daemon's copy takes the owner's counters."""

from __future__ import annotations

from snakeswan.ipsec import Acquire, Deliver, Handoff, Policy, Processor, SendIp
from snakeswan.ipsec.checkpoint import take
from tests.unit.ipsec.helpers import KEY, counter_rng, ip_packet, make_pair, sa_params

SPI_OUT, SPI_IN = 0x1001, 0x2002  # a's outbound and inbound SPIs (make_pair)


def replicas(owner: int) -> tuple[Processor, Processor, Processor]:
    """Side a as two workers (0 and 1, the pair owned by ``owner``) and its peer b."""
    p = make_pair("aes128gcm16")
    workers = []
    for worker in (0, 1):
        proc = Processor(counter_rng(), worker=worker)
        out_params = sa_params("aes128gcm16", SPI_OUT)
        in_params = sa_params("aes128gcm16", SPI_IN, seed=2)
        proc.add_policy(Policy(out_params.local_ts[0], out_params.remote_ts[0], "protect", key=KEY))
        assert proc.install(in_params, out_params, KEY, now=0.0, owner=owner) == []
        workers.append(proc)
    return workers[0], workers[1], p.b


def test_the_owner_protects_the_others_hand_over() -> None:
    w0, w1, b = replicas(owner=1)
    packet = ip_packet("10.1.0.5", "10.2.0.7", data=b"from worker 0's queue")
    assert w0.outbound_many([packet, packet], 1.0) == [Handoff(1, packet), Handoff(1, packet)]
    assert w0.outbound(packet, 1.0) == [Handoff(1, packet)]
    assert w0.counters(SPI_OUT, "out")["seq"] == 0  # nothing was numbered there
    (esp,) = w1.outbound_many([packet], 1.0)
    assert isinstance(esp, SendIp)
    assert b.inbound(esp.payload, 50, esp.src, esp.dst, 1.0) == [Deliver(packet)]

    back = ip_packet("10.2.0.7", "10.1.0.5", data=b"the answer")
    (reply,) = b.outbound(back, 1.0)
    assert isinstance(reply, SendIp)
    assert w0.inbound_esp_many([reply.payload], 1.0) == ([], [Handoff(1, reply.payload, inbound=True)])
    assert w0.inbound(reply.payload, 50, reply.src, reply.dst, 1.0) == [
        Handoff(1, reply.payload, inbound=True)
    ]
    assert w0.counters(SPI_IN, "in")["replay_top"] == 0  # the window did not move there
    assert w1.inbound_esp_many([reply.payload], 1.0) == ([back], [])
    assert w0.drops == {} and w1.drops == {}


def test_the_daemons_copy_takes_the_owners_counters() -> None:
    w0, w1, b = replicas(owner=1)
    packet = ip_packet("10.1.0.5", "10.2.0.7", data=b"x" * 100)
    sent = w1.outbound_many([packet] * 3, 1.0)
    for out in sent:
        assert isinstance(out, SendIp)
        b.inbound(out.payload, 50, out.src, out.dst, 1.0)
    (reply,) = b.outbound(ip_packet("10.2.0.7", "10.1.0.5", data=b"y"), 1.0)
    assert isinstance(reply, SendIp)
    w1.inbound_esp_many([reply.payload, reply.payload], 1.0)  # the second is a replay
    w1.take_moved()

    counters = w1.pair_counters(SPI_IN)
    assert counters is not None
    w0.absorb(SPI_IN, counters)
    assert w0.counters(SPI_OUT, "out") == w1.counters(SPI_OUT, "out")
    assert w0.counters(SPI_IN, "in") == w1.counters(SPI_IN, "in")
    assert w0.counters(SPI_IN, "in")["drop_replay"] == 1
    assert w0.take_moved() == ({SPI_IN}, {SPI_IN})  # DPD's sign of life, the checkpoints
    pair0, pair1 = w0.pair(SPI_IN), w1.pair(SPI_IN)
    assert pair0 is not None and pair1 is not None
    assert take(*pair0, None) == take(*pair1, None)
    w0.absorb(SPI_IN, counters)  # the same again: nothing moved
    assert w0.take_moved() == (set(), set())
    assert w0.pair_counters(0xDEAD) is None
    w0.absorb(0xDEAD, counters)  # a pair that went meanwhile: ignored


def test_queued_packets_go_to_the_owner_at_install() -> None:
    proc = Processor(counter_rng(), worker=0)
    out_params = sa_params("aes128gcm16", SPI_OUT)
    proc.add_policy(Policy(out_params.local_ts[0], out_params.remote_ts[0], "protect", key=KEY))
    packet = ip_packet("10.1.0.5", "10.2.0.7", data=b"waits for the SA")
    assert proc.outbound_many([packet], 1.0) == []
    assert isinstance(proc.next_event(), Acquire)
    flushed = proc.install(sa_params("aes128gcm16", SPI_IN, seed=2), out_params, KEY, now=1.0, owner=2)
    assert flushed == [Handoff(2, packet)]


def test_a_worker_processes_what_it_owns() -> None:
    _, w1, b = replicas(owner=1)
    packet = ip_packet("10.1.0.5", "10.2.0.7", data=b"mine")
    (out,) = w1.outbound(packet, 1.0)
    assert isinstance(out, SendIp)
    assert b.inbound(out.payload, 50, out.src, out.dst, 1.0) == [Deliver(packet)]
