"""The TUN offload framing (virtio_net_hdr): MemoryTun speaks it without root; with root, a real
TUN device with IFF_VNET_HDR and TUNSETOFFLOAD carries a TCP connection both ways, our coalesced
super-packets in, the kernel's TSO super-packets out (cut into checked segments by Tun.read)."""

from __future__ import annotations

import os
import select
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

import pytest

import snakeswan.io.tun as tun_module
from snakeswan.io.tun import MemoryTun, Tun, _segments
from snakeswan.ipsec.offload import (
    GSO_NONE,
    GSO_TCPV4,
    NEEDS_CSUM,
    VNET_HDR_LEN,
    ZERO_HEADER,
    VnetHeader,
    coalesce,
)
from tests.netns import Topology, inside
from tests.unit.ipsec.test_offload import PSH, ref_sum, segments_of, super_packet, tcp_packet, tcp_valid

# ---- MemoryTun with offloads (no root) ------------------------------------------------------------


def test_memory_tun_reads_frames_as_packets() -> None:
    with MemoryTun(offload=True) as tun:
        plain = tcp_packet(4, b"plain")
        h, big = super_packet(4, b"x" * 5000, 1300)
        partial = bytearray(tcp_packet(6, b"partial"))
        partial[56:58] = b"\0\0"  # a NEEDS_CSUM frame: the field holds the pseudo-header sum
        pseudo = partial[8:40] + struct.pack("!IHBB", len(partial) - 40, 0, 0, 6)
        partial[56:58] = struct.pack("!H", ref_sum(bytes(pseudo)))
        tun.inject(ZERO_HEADER + plain)
        tun.inject(h.pack() + big)
        tun.inject(b"\x01")  # junk: counted, the rest still comes through
        tun.inject(VnetHeader(NEEDS_CSUM, GSO_NONE, 0, 0, 40, 16).pack() + bytes(partial))
        got = tun.read()
        assert tun.malformed == 1
        assert got[0] == plain and len(got) == 1 + 4 + 1
        assert all(tcp_valid(p) for p in got)
        assert got[-1] == tcp_packet(6, b"partial")


def test_memory_tun_writes_frames() -> None:
    with MemoryTun(offload=True) as tun:
        assert tun.offload
        one = tcp_packet(4, b"one")
        assert tun.write(one)
        segs = segments_of(4, b"y" * 6000, 1000)
        assert tun.write_many(segs) == 6
        assert tun.write_many(iter([one])) == 1
        frames = tun.take_written()
        assert frames[0] == ZERO_HEADER + one and frames[2] == ZERO_HEADER + one
        h = VnetHeader.unpack(frames[1])
        assert (h.gso_type, h.gso_size, h.flags) == (GSO_TCPV4, 1000, NEEDS_CSUM)
        assert frames[1][VNET_HDR_LEN:][33] & PSH
        tun.refuse_writes = True
        assert tun.write_many(segs) == 0 and tun.drops == 6


def test_refused_super_packets_go_out_as_segments_from_then_on() -> None:
    with MemoryTun(offload=True) as tun:
        tun.refuse_gso = True  # a kernel that answers EINVAL to GSO frames
        segs = segments_of(4, b"g" * 5000, 1000)
        assert tun.write_many(segs) == 5
        assert tun.gso_refused and tun.drops == 0
        assert tun.take_written() == [ZERO_HEADER + s for s in segs]  # re-segmented, identical
        tun.refuse_gso = False
        assert tun.write_many(segs) == 5
        assert tun.take_written() == [ZERO_HEADER + s for s in segs]  # no more coalescing


def test_memory_tun_plain_is_unchanged() -> None:
    with MemoryTun() as tun:
        assert not tun.offload
        segs = segments_of(4, b"z" * 3000, 1000)
        assert tun.write_many(segs) == 3
        assert tun.take_written() == segs
        tun.inject(segs[0])
        assert tun.read() == [segs[0]]


def test_segments_counted_from_the_header() -> None:
    for n in (2, 3, 45):
        segs = segments_of(4, b"s" * (1000 * n - 7), 1000)
        (frame,) = coalesce(segs)
        assert _segments(frame) == n
    assert _segments(ZERO_HEADER + tcp_packet(4, b"x")) == 1


# ---- a real TUN device (root) --------------------------------------------------------------------

PEER, LOCAL, PORT = {4: "10.98.0.2", 6: "fd98::2"}, {4: "10.98.0.1", 6: "fd98::1"}, 5201


def segment_from_peer(version: int, seq: int, ack: int, flags: int, payload: bytes = b"", **kw: Any) -> bytes:
    """A TCP segment from PEER:40000 to LOCAL:PORT (the test's side of the connection)."""
    packet = bytearray(tcp_packet(version, payload, seq=seq, ack=ack, flags=flags, dport=PORT, **kw))
    src, dst = (
        socket.inet_pton(_family(version), PEER[version]),
        socket.inet_pton(_family(version), LOCAL[version]),
    )
    at = 12 if version == 4 else 8
    packet[at : at + 2 * len(src)] = src + dst
    if version == 4:
        packet[10:12] = b"\0\0"
        packet[10:12] = struct.pack("!H", 0xFFFF - ref_sum(bytes(packet[:20])))
    t = 20 if version == 4 else 40
    packet[t + 16 : t + 18] = b"\0\0"
    pseudo = (
        src + dst + struct.pack("!BBH", 0, 6, len(packet) - t)
        if version == 4
        else src + dst + struct.pack("!IHBB", len(packet) - t, 0, 0, 6)
    )
    packet[t + 16 : t + 18] = struct.pack("!H", 0xFFFF - ref_sum(pseudo + bytes(packet[t:])))
    return bytes(packet)


def _family(version: int) -> int:
    return socket.AF_INET if version == 4 else socket.AF_INET6


def tcp_fields(p: bytes) -> tuple[int, int, int, bytes]:
    t = 20 if p[0] >> 4 == 4 else 40
    seq, ack = struct.unpack_from("!II", p, t + 4)
    return seq, ack, p[t + 13], p[t + (p[t + 12] >> 4) * 4 :]


def ours(p: bytes) -> bool:
    """A TCP packet of the test's connection (IPv6 also brings MLD and router solicitations)."""
    if p[0] >> 4 == 4:
        return p[9] == 6 and p[22:24] == struct.pack("!H", 40000)
    return p[6] == 6 and p[42:44] == struct.pack("!H", 40000)


def read_until(tun: Tun, want: Callable[[bytes], bool], timeout: float = 5.0) -> list[bytes]:
    """The packets of our connection read until one that ``want`` accepts."""
    got: list[bytes] = []
    while not any(want(p) for p in got):
        if not select.select([tun], [], [], timeout)[0]:
            raise AssertionError(f"nothing more from the TUN device; got {len(got)} packets")
        got += [p for p in tun.read() if ours(p)]
    return got


@pytest.mark.netns
@pytest.mark.parametrize("tso", [False, True], ids=["gso", "tso"])
@pytest.mark.parametrize("version", [4, 6])
def test_tcp_through_a_tun_with_offloads(
    topology: Callable[..., Topology], version: int, tso: bool, monkeypatch: Any
) -> None:
    frames: list[VnetHeader] = []
    split = tun_module.split_frame

    def spy(frame: bytes) -> list[bytes]:
        frames.append(VnetHeader.unpack(frame))
        return split(frame)

    monkeypatch.setattr(tun_module, "split_frame", spy)
    ns = topology().add("tun")
    for key in ("all", "default"):  # namespaces start with IPv6 off (tests/netns.py)
        ns.run("sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=0")
    with inside(ns):
        tun = Tun("ssw-off0", offload=True, tso=tso)
        tun.configure(mtu=1400, addresses=[f"{LOCAL[version]}/{24 if version == 4 else 64}"])
        server = socket.socket(_family(version), socket.SOCK_STREAM)
    with tun, server:
        assert tun.offload and tun.tso == tso, tun.offload_error
        server.bind((LOCAL[version], PORT))
        server.listen(1)
        server.settimeout(5)
        # handshake: our SYN in, the kernel's SYN-ACK out (its checksum completed by Tun.read)
        mss = struct.pack("!BBH", 2, 4, 1300)
        tun.write(segment_from_peer(version, 1000, 0, 0x02, options=mss, window=65535))
        (synack,) = [
            p for p in read_until(tun, lambda p: tcp_fields(p)[2] == 0x12) if tcp_fields(p)[2] == 0x12
        ]
        assert tcp_valid(synack)
        isn = tcp_fields(synack)[0]
        seq, ack = 1001, isn + 1
        tun.write(segment_from_peer(version, seq, ack, 0x10, options=b"", window=65535))
        conn, _ = server.accept()
        with conn:
            conn.settimeout(5)
            # in: 40 segments coalesced into one super-packet the kernel takes as it is
            data = bytes(range(256)) * 200
            segs = [
                segment_from_peer(
                    version,
                    seq + i,
                    ack,
                    0x18 if i + 1300 >= len(data) else 0x10,
                    data[i : i + 1300],
                    options=b"",
                    window=65535,
                )
                for i in range(0, len(data), 1300)
            ]
            assert len(coalesce(segs)) == 1
            assert tun.write_many(segs) == len(segs)
            received = b""
            while len(received) < len(data):
                received += conn.recv(65536)
            assert received == data
            seq += len(data)
            # out: the kernel's TSO super-packets, cut into segments no bigger than the MTU
            reply = os.urandom(300_000)
            sender = threading.Thread(target=conn.sendall, args=(reply,))
            sender.start()
            got: dict[int, bytes] = {}
            top = ack
            while top < ack + len(reply):
                for p in read_until(tun, lambda p: bool(tcp_fields(p)[3])):
                    s, _a, _f, payload = tcp_fields(p)
                    if payload:
                        assert tcp_valid(p) and len(p) <= 1400
                        got[s] = payload
                while top in got:
                    top += len(got[top])
                tun.write(segment_from_peer(version, seq, top, 0x10, options=b"", window=65535))
            sender.join(5)
            assert b"".join(got[s] for s in sorted(got) if s < ack + len(reply)) == reply
    if tso:
        assert any(f.gso_type != GSO_NONE for f in frames), "the kernel sent no super-packet"
        assert all(f.gso_size <= 1400 - (40 if version == 4 else 60) for f in frames if f.gso_type)
    else:  # the kernel segmented and checksummed everything itself: all-zero headers only
        assert frames == []


@pytest.mark.netns
def test_offload_false_opens_a_plain_device(topology: Callable[..., Topology]) -> None:
    ns = topology().add("tun")
    with inside(ns):
        tun = Tun("ssw-off1", offload=False)
    with tun:
        assert not tun.offload and not tun.tso and tun.offload_error is None
        assert "offload=False" in repr(tun)
