"""The daemon's intake (daemon/intake.py) over real loopback sockets: drained in batches, sorted
by the shedder before anything is decoded, ESP and known cookies first."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from snakeswan.daemon.intake import Intake
from snakeswan.ike.shedding import OVER_BUDGET, UNKNOWN, Shedder
from snakeswan.io.udp import NON_ESP_MARKER, UdpSocket

KNOWN = (b"K" * 8, b"R" * 8)


def ike(icookie: bytes, rcookie: bytes = bytes(8)) -> bytes:
    return icookie + rcookie + bytes([1, 0x10, 2, 0]) + bytes(8) + b"x" * 60


@pytest.fixture
def pair() -> Iterator[tuple[UdpSocket, socket.socket]]:
    rx = UdpSocket(0, bind="127.0.0.1")
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    yield rx, tx
    rx.close()
    tx.close()


def drain_all(intake: Intake, sock: UdpSocket, now: float) -> list[bytes]:
    return [r.data for r in intake.drain(sock, now)]


def test_known_first_new_ones_under_budget(pair: tuple[UdpSocket, socket.socket]) -> None:
    rx, tx = pair
    for i in range(200):
        tx.sendto(ike(i.to_bytes(8, "big")), ("127.0.0.1", rx.port))
    tx.sendto(ike(*KNOWN), ("127.0.0.1", rx.port))
    tx.sendto(ike(b"A" * 8, b"B" * 8), ("127.0.0.1", rx.port))
    intake = Intake(Shedder(lambda i, r: (i, r) == KNOWN, rate=100, burst=5), max_reads=16)
    got = drain_all(intake, rx, 0.0)
    assert got[0] == ike(*KNOWN)
    assert got[1:] == [ike(i.to_bytes(8, "big")) for i in range(5)]
    assert intake.shedder.dropped[UNKNOWN] == 1
    assert intake.shedder.dropped[OVER_BUDGET] == 200 - 5 - intake.shedder.waiting_room


def test_a_full_read_is_a_backlog(pair: tuple[UdpSocket, socket.socket]) -> None:
    rx, tx = pair
    for i in range(100):
        tx.sendto(ike(i.to_bytes(8, "big")), ("127.0.0.1", rx.port))
    shed = Shedder[tuple[bytes, bytes, bytes]](lambda i, r: False, rate=1000, burst=1000, burst_under_load=3)
    intake = Intake(shed, max_reads=1, per_read=64)  # 100 queued, 64 read: more is waiting
    assert len(drain_all(intake, rx, 0.0)) == 3
    assert len(drain_all(intake, rx, 0.0)) == 0  # the rest, still under pressure: no tokens


def test_nat_t_port_esp_passes_keepalives_dropped() -> None:
    rx = UdpSocket(0, bind="127.0.0.1", nat_t=True)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        esp = b"\x00\x00\x10\x01" + bytes(40)
        for data in (b"\xff", esp, NON_ESP_MARKER + ike(*KNOWN), NON_ESP_MARKER + ike(b"N" * 8)):
            tx.sendto(data, ("127.0.0.1", rx.port))
        intake = Intake(Shedder(lambda i, r: (i, r) == KNOWN, rate=0, burst=0))
        got = list(intake.drain(rx, 0.0))
        assert [(r.kind, r.data) for r in got] == [("esp", esp), ("ike", ike(*KNOWN))]
        assert got[1].src == ("127.0.0.1", tx.getsockname()[1]) and got[1].dst == ("127.0.0.1", rx.port)
    finally:
        rx.close()
        tx.close()


def test_an_esp_backlog_is_not_an_ike_overload() -> None:
    rx = UdpSocket(0, bind="127.0.0.1", nat_t=True)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        esp = b"\x00\x00\x10\x01" + bytes(40)
        for i in range(100):
            tx.sendto(esp if i % 10 else NON_ESP_MARKER + ike(i.to_bytes(8, "big")), ("127.0.0.1", rx.port))
        shed = Shedder[tuple[bytes, bytes, bytes]](
            lambda i, r: False, rate=1000, burst=1000, burst_under_load=0
        )
        intake = Intake(shed, max_reads=1, per_read=64)  # a full read, but nine in ten are ESP
        got = list(intake.drain(rx, 0.0))
        assert sum(r.kind == "ike" for r in got) == 7 and sum(r.kind == "esp" for r in got) == 57
    finally:
        rx.close()
        tx.close()
