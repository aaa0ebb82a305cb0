"""Inbound ESP/AH steered by SPI in the kernel (io/steering.py), on real sockets in namespaces:
each data-plane worker's raw socket gets the SPIs it owns and no other, IPv4 (with IP options
too) and IPv6, ESP and AH; the ESP-in-UDP reuseport group gives IKE and keepalives to socket 0
and ESP to socket SPI mod N."""

from __future__ import annotations

import select
import socket
import struct
import time
from typing import Any

import pytest

from snakeswan.errors import LocalError
from snakeswan.io.rawip import AH, ESP, RawIp
from snakeswan.io.steering import attach, first_socket_program, owner_of, raw_program, reuseport_program
from tests.integration.test_io_drivers import two_sites
from tests.netns import Topology, inside

netns = pytest.mark.netns
SPIS = [0x100 + i for i in range(12)] + [0xFFFFFFFF, 0xC0DE0001]


def esp(spi: int) -> bytes:
    return struct.pack("!II", spi, 1) + b"steered" * 4


def ah(spi: int) -> bytes:  # next header, length (in 4-byte words, minus 2), reserved, SPI, seq, ICV
    return struct.pack("!BBHII", 4, 4, 0, spi, 1) + bytes(12)


def collect(socks: list[RawIp], want: int, timeout: float = 3.0) -> list[list[Any]]:
    """What each socket received (RawIp.receive's records), until ``want`` came in all."""
    got: list[list[Any]] = [[] for _ in socks]
    deadline = time.monotonic() + timeout
    while sum(map(len, got)) < want and time.monotonic() < deadline:
        select.select(socks, [], [], 0.1)
        for i, s in enumerate(socks):
            got[i] += list(s.receive())
    time.sleep(0.2)  # nothing more may come: a copy to a second socket would be here by now
    for i, s in enumerate(socks):
        got[i] += list(s.receive())
    return got


@netns
@pytest.mark.parametrize("options", [False, True], ids=["plain-header", "ip-options"])
@pytest.mark.parametrize("protocol", [ESP, AH], ids=["esp", "ah"])
def test_raw_sockets_get_their_own_spis(topology: Any, protocol: int, options: bool) -> None:
    west, east = two_sites(topology)
    workers = 3
    with inside(east):
        socks = [RawIp(protocol, steer=(k, workers)) for k in range(workers)]
        whole = RawIp(protocol)  # unfiltered: sees every packet (the copies the filters drop)
    with inside(west):
        sender = socket.socket(socket.AF_INET, socket.SOCK_RAW, protocol)
    try:
        if options:  # a 24-byte IPv4 header: the filter must find the SPI past the options
            sender.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, b"\x01\x01\x01\x00")
        make = esp if protocol == ESP else ah
        for spi in SPIS:
            sender.sendto(make(spi), ("10.231.0.2", 0))
        got = collect(socks, len(SPIS))
        offset = 0 if protocol == ESP else 4
        for k, packets in enumerate(got):
            spis = sorted(struct.unpack_from("!I", p.data, offset)[0] for p in packets)
            assert spis == sorted(s for s in SPIS if owner_of(s, workers) == k), f"worker {k}"
        assert len(collect([whole], len(SPIS))[0]) == len(SPIS)
        if options:
            assert all(p.packet[0] & 0x0F == 6 for p in [*got[0], *got[1]])  # the options did arrive
    finally:
        sender.close()
        whole.close()
        for s in socks:
            s.close()


@netns
def test_raw_ipv6_sockets_get_their_own_spis(topology: Any) -> None:
    topo: Topology = topology()
    ns = topo.add("v6")
    ns.run("sysctl", "-qw", "net.ipv6.conf.lo.disable_ipv6=0")
    with inside(ns):
        socks = [RawIp(ESP, socket.AF_INET6, steer=(k, 2)) for k in range(2)]
        sender = socket.socket(socket.AF_INET6, socket.SOCK_RAW, ESP)
    try:
        for spi in SPIS:
            sender.sendto(esp(spi), ("::1", 0))
        got = collect(socks, len(SPIS))
        for k, packets in enumerate(got):
            assert sorted(struct.unpack_from("!I", p.data)[0] for p in packets) == sorted(
                s for s in SPIS if s % 2 == k
            )
    finally:
        sender.close()
        for s in socks:
            s.close()


@netns
def test_reuseport_group_steers_esp_in_udp(topology: Any) -> None:
    topo: Topology = topology()
    ns = topo.add("udp")
    ns.ip("link", "set", "lo", "up")
    workers = 3
    with inside(ns):
        group = []
        for _ in range(workers):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind(("127.0.0.1", 4500))
            s.setblocking(False)
            group.append(s)
        attach(group[0], reuseport_program(workers), reuseport=True)
        peers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(8)]  # many ports
    try:
        ike = bytes(4) + b"an IKE message after the non-ESP marker"
        sent: list[tuple[bytes, int]] = [(ike, 0), (b"\xff", 0)]  # IKE and a NAT-T keepalive: the daemon
        sent += [(esp(spi), owner_of(spi, workers)) for spi in SPIS]
        for i, (data, _) in enumerate(sent):
            peers[i % len(peers)].sendto(data, ("127.0.0.1", 4500))
        got: list[list[bytes]] = [[] for _ in group]
        deadline = time.monotonic() + 3
        while sum(map(len, got)) < len(sent) and time.monotonic() < deadline:
            select.select(group, [], [], 0.1)
            for k, s in enumerate(group):
                try:
                    while True:
                        got[k].append(s.recv(2048))
                except BlockingIOError:
                    pass
        for k in range(workers):
            assert sorted(got[k]) == sorted(d for d, owner in sent if owner == k), f"socket {k}"
    finally:
        for s in group + peers:
            s.close()


@netns
def test_a_group_with_a_stranger_gives_everything_to_the_first_socket(topology: Any) -> None:
    """The fallback when a socket not ours is in the group (daemon/workers.py): every datagram,
    IKE and ESP of any SPI, to socket 0, none to the stranger (hashing would share them)."""
    topo: Topology = topology()
    ns = topo.add("udp")
    ns.ip("link", "set", "lo", "up")
    with inside(ns):
        group = []
        for _ in range(2):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind(("127.0.0.1", 4500))
            s.setblocking(False)
            group.append(s)
        attach(group[0], first_socket_program(), reuseport=True)
        peers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(8)]
    try:
        sent = [bytes(4) + b"IKE", *(esp(spi) for spi in SPIS)]
        for i, data in enumerate(sent):
            peers[i % len(peers)].sendto(data, ("127.0.0.1", 4500))
        got: list[bytes] = []
        deadline = time.monotonic() + 3
        while len(got) < len(sent) and time.monotonic() < deadline:
            select.select(group[:1], [], [], 0.1)
            try:
                while True:
                    got.append(group[0].recv(2048))
            except BlockingIOError:
                pass
        assert sorted(got) == sorted(sent)
        with pytest.raises(BlockingIOError):
            group[1].recv(2048)
    finally:
        for s in group + peers:
            s.close()


def test_programs_refuse_what_they_cannot_steer() -> None:
    with pytest.raises(LocalError, match="out of range"):
        raw_program(0, 0, protocol=ESP)
    with pytest.raises(LocalError, match=r"not one of 0\.\.1"):
        raw_program(2, 2, protocol=ESP)
    with pytest.raises(LocalError, match="only ESP"):
        raw_program(0, 2, protocol=17)
    with pytest.raises(LocalError, match="out of range"):
        reuseport_program(257)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        with pytest.raises(LocalError, match="8-byte instructions"):
            attach(s, b"\x00" * 7)
        with pytest.raises(LocalError, match="refused"):
            attach(s, struct.pack("=HBBI", 0xFFFF, 0, 0, 0))  # no such instruction
        attach(s, raw_program(1, 4, protocol=ESP))  # the kernel takes what we build
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        attach(s, reuseport_program(4), reuseport=True)
