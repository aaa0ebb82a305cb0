"""Both IKE sockets get large kernel buffers: a gateway's loop busy with DH must not let a burst of
hundreds of peers' messages overflow them (bench/gateway_rate.py: 226 -> 628 tunnels/s at N = 1,000
once port 500 had them too)."""

from __future__ import annotations

import os
import socket

import pytest

from snakeswan.io.udp import UdpSocket


@pytest.mark.parametrize("nat_t", [False, True])
def test_ike_sockets_have_large_receive_buffers(nat_t: bool) -> None:
    if os.geteuid() != 0:
        pytest.skip("SO_RCVBUFFORCE needs CAP_NET_ADMIN (the daemon runs as root)")
    s = UdpSocket(0, nat_t=nat_t, bind="127.0.0.1")
    try:
        assert s.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 4 << 20
    finally:
        s.close()
