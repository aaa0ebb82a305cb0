"""ESP-in-UDP with UDP GSO (io.udp.UdpSocket.send_esp_many) between two namespaces: every
datagram arrives whole, in order, with its own boundaries, GSO on and off; runs are split where
the sizes change."""

from __future__ import annotations

import select
import socket
from typing import Any

import pytest

from snakeswan.io.batch import HAVE_MMSG
from snakeswan.io.rawip import grow_buffers
from snakeswan.io.udp import UdpSocket
from tests.integration.test_io_drivers import two_sites
from tests.netns import inside


class Recorder:
    """Stands in for the socket to see how datagrams are grouped."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int | None]] = []  # (bytes, GSO segment size or None)

    def sendmsg(self, buffers: list[bytes], cmsg: list[tuple[int, int, bytes]], flags: int, dst: Any) -> int:
        seg = [int.from_bytes(d, "little") for level, kind, d in cmsg if (level, kind) == (17, 103)]
        self.calls.append((len(buffers[0]), seg[0] if seg else None))
        return len(buffers[0])


def test_runs_of_one_size_become_one_send() -> None:
    sock = UdpSocket(0, bind="127.0.0.1", nat_t=True)
    with sock.sock:
        rec = Recorder()
        sock.sock = rec  # type: ignore[assignment]
        sizes = [100] * 5 + [60] + [100] * 2 + [120] + [100] * 70
        sock.send_esp_many([bytes(n) for n in sizes], "127.0.0.1", ("127.0.0.1", 4500))
        # 5x100 + the shorter 60 ends a run; 2x100 then a longer one; 120 + a shorter 100;
        # then 69x100 as 64 + 5
        assert rec.calls == [(560, 100), (200, 100), (220, 120), (6400, 100), (500, 100)]
        rec.calls.clear()
        sock.send_esp_many([bytes(1400)], "127.0.0.1", ("127.0.0.1", 4500))
        sock.gso = False
        sock.send_esp_many([bytes(10)] * 2, "127.0.0.1", ("127.0.0.1", 4500))
        assert rec.calls == [(1400, None), (10, None), (10, None)]  # one alone, or GSO off: plain


@pytest.mark.netns
@pytest.mark.parametrize("gso", [True, False])
def test_send_esp_many_arrives_whole_and_in_order(topology: Any, gso: bool) -> None:
    west, east = two_sites(topology)
    with inside(west):
        tx = UdpSocket(4500, nat_t=True)
    with inside(east):
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("10.231.0.2", 4500))
        grow_buffers(rx)  # all 199 datagrams must fit before we read
    with rx:
        tx.gso = gso
        datagrams = [bytes([i]) * (1400 if i % 17 else 700) for i in range(1, 200)]
        tx.send_esp_many(datagrams, "10.231.0.11", ("10.231.0.2", 4500))
        assert tx.gso == gso
        got = []
        while len(got) < len(datagrams) and select.select([rx], [], [], 2.0)[0]:
            data, src = rx.recvfrom(65535)
            assert src == ("10.231.0.11", 4500)
            got.append(data)
        assert got == datagrams
        tx.close()


@pytest.mark.netns
@pytest.mark.parametrize("batched", [True, False])
def test_nat_t_socket_receives_gro_batches_whole(topology: Any, batched: bool) -> None:
    """A GSO sender's runs reach the NAT-T socket coalesced (UDP GRO) and are cut back into the
    datagrams sent, classified, in order, with IKE, keepalives and ESP of other sizes between."""
    if batched and not HAVE_MMSG:
        pytest.skip("the C extension was not built")
    west, east = two_sites(topology)
    with inside(west):
        tx = UdpSocket(4500, nat_t=True)
    with inside(east):
        rx = UdpSocket(4500, nat_t=True)
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("10.231.0.2", 4501))
        probe.setsockopt(17, 104, 1)  # UDP_GRO, to see that the kernel does coalesce
    with probe:
        rx.batched = batched
        tx.send_esp_many([b"\x01" * 1000] * 8, "10.231.0.11", ("10.231.0.2", 4501))
        select.select([probe], [], [], 2.0)
        data, anc, _flags, _src = probe.recvmsg(65535, 256)
        assert len(data) == 8000 and any((lvl, kind) == (17, 104) for lvl, kind, _ in anc)

        dst = ("10.231.0.2", 4500)
        esp = [bytes([i]) * 1300 for i in range(1, 41)] + [b"\x99" * 500]
        tx.send(b"ike message", "10.231.0.11", dst)
        tx.send_esp_many(esp, "10.231.0.11", dst)
        tx.send(b"\xff", "10.231.0.11", dst, ike=False)
        tx.send_esp_many(esp[:5], "10.231.0.11", dst)
        got: list[tuple[str, bytes]] = []
        while len(got) < 48 and select.select([rx], [], [], 2.0)[0]:
            for r in rx.receive():
                assert r.src == ("10.231.0.11", 4500) and r.dst == dst
                got.append((r.kind, r.data))
        want = [("ike", b"ike message"), *(("esp", d) for d in esp), ("keepalive", b"\xff")]
        want += [("esp", d) for d in esp[:5]]
        assert got == want
    tx.close()
    rx.close()
