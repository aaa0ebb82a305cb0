"""io.batch: the sendmmsg/recvmmsg extension over a local datagram socket pair (no network), and
the packing of addresses and ancillary data it is given."""

from __future__ import annotations

import errno
import importlib
import socket
import struct

import pytest

from snakeswan.io import batch

needs_ext = pytest.mark.skipif(not batch.HAVE_MMSG, reason="the C extension was not built")


def test_pack_sockaddr_layouts() -> None:
    v4 = batch.pack_sockaddr("10.231.0.2", 4500)
    assert len(v4) == 16
    assert struct.unpack("=H", v4[:2])[0] == socket.AF_INET
    assert v4[2:4] == (4500).to_bytes(2, "big") and v4[4:8] == bytes((10, 231, 0, 2))
    v6 = batch.pack_sockaddr("fd00::7")
    assert len(v6) == 28 and struct.unpack("=H", v6[:2])[0] == socket.AF_INET6
    assert v6[8:24] == socket.inet_pton(socket.AF_INET6, "fd00::7")
    with pytest.raises(OSError):
        batch.pack_sockaddr("not an address")


def test_pack_cmsgs_matches_the_kernel_layout() -> None:
    assert batch.pack_cmsgs([]) == b""
    data = bytes(range(12))
    one = batch.pack_cmsgs([(socket.IPPROTO_IP, 8, data)])
    assert len(one) == socket.CMSG_SPACE(12)
    length, level, kind = struct.unpack_from("@Nii", one)
    assert (length, level, kind) == (socket.CMSG_LEN(12), socket.IPPROTO_IP, 8)
    assert one[socket.CMSG_LEN(0) : socket.CMSG_LEN(12)] == data
    two = batch.pack_cmsgs([(0, 8, data), (0, 1, b"\x01\0\0\0")])
    assert len(two) == socket.CMSG_SPACE(12) + socket.CMSG_SPACE(4)
    assert two[: len(one)] == batch.pack_cmsgs([(0, 8, data)])


@needs_ext
def test_sendmmsg_recvmmsg_round_trip_in_order() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        b.setblocking(False)
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        assert batch.recvmmsg(b.fileno(), 8, 2048) == []  # nothing queued: empty, not an error
        messages = [(bytes([i]) * (1 + i % 50), b"", b"") for i in range(150)]  # > one chunk of 64
        assert batch.sendmmsg(a.fileno(), messages) == (150, 0)
        got: list[bytes] = []
        while chunk := batch.recvmmsg(b.fileno(), 64, 2048):
            assert len(chunk) <= 64
            got += chunk
        assert got == [m[0] for m in messages]
        # datagrams longer than ``size`` are cut to it (as recv would)
        batch.sendmmsg(a.fileno(), [(b"x" * 100, b"", b"")])
        assert batch.recvmmsg(b.fileno(), 4, 10) == [b"x" * 10]


@needs_ext
def test_sendmmsg_stops_when_the_socket_is_full() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        sent, err = batch.sendmmsg(a.fileno(), [(bytes(1000), b"", b"")] * 5000)
        assert 0 < sent < 5000 and err == errno.EAGAIN  # never blocks
        assert len(batch.recvmmsg(b.fileno(), 1024, 2048)) == min(sent, 1024)


@needs_ext
def test_sendmmsg_reports_the_failing_message() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a:
        b.close()
        sent, err = batch.sendmmsg(a.fileno(), [(b"one", b"", b""), (b"two", b"", b"")])
        assert sent == 0 and err in (errno.ECONNREFUSED, errno.EPIPE, errno.ENOTCONN)


@needs_ext
def test_bad_arguments_raise() -> None:
    _mmsg = importlib.import_module("snakeswan.io._mmsg")
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        with pytest.raises(TypeError):
            _mmsg.sendmmsg(a.fileno(), [(b"x", b"")])
        with pytest.raises(TypeError):
            _mmsg.sendmmsg(a.fileno(), [("x", b"", b"")])
        with pytest.raises(ValueError):
            _mmsg.recvmmsg(b.fileno(), 0, 100, 0, 0)
        with pytest.raises(OSError):
            _mmsg.recvmmsg(-1, 1, 100, 0, 0)
