"""A share's virtual address: added to an interface, announced by gratuitous ARP, removed.

``ip addr replace ADDR/PLEN dev IF valid_lft T preferred_lft T`` (over netlink, io/netlink.py) makes
it ours for T seconds, refreshed while we own it (``nodad`` for IPv6 so it is usable at once). Then
gratuitous ARP, so that the peers' (or the router's) ARP caches point
at our MAC now instead of the dead node's: we send it ourselves from an ``AF_PACKET`` socket, an
ARP request and an ARP reply for the address (RFC 5227 section 3 "announcement"; some stacks only
update on one of the two), :data:`GARP_ROUNDS` times ``GARP_GAP`` apart on the caller's timer.
That needs no ``arping`` binary (iputils' and Thomas Habets' take different flags) and no wait in
a subprocess. IPv6 would need an unsolicited Neighbour Advertisement: not done (the address is
added, the peers' caches learn it when their entry goes stale).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct

from snakeswan.errors import LocalError
from snakeswan.io.netlink import run_netlink

__all__ = ["GARP_GAP", "GARP_ROUNDS", "add_address", "garp_frames", "gratuitous_arp", "remove_address"]

GARP_ROUNDS = 3
GARP_GAP = 0.2  # seconds between rounds
_ETH_P_ARP = 0x0806
_BROADCAST = b"\xff" * 6


def add_address(
    address: ipaddress.IPv4Interface | ipaddress.IPv6Interface, interface: str, lifetime: int | None = None
) -> None:
    """Put ``address`` on ``interface`` (idempotent: ``replace``), for ``lifetime`` seconds when
    given (the kernel removes it then unless it is refreshed: a dead man's switch, see
    daemon/cluster.py). Raises LocalError."""
    extra = ["nodad"] if address.version == 6 else []
    if lifetime is not None:
        extra += ["valid_lft", str(lifetime), "preferred_lft", str(lifetime)]
    run_netlink(["addr", "replace", str(address), "dev", interface, *extra])


def remove_address(address: ipaddress.IPv4Interface | ipaddress.IPv6Interface, interface: str) -> bool:
    """Take ``address`` off ``interface``; False when it was not there."""
    try:
        run_netlink(["addr", "del", str(address), "dev", interface])
    except LocalError as e:
        if "Cannot assign" in str(e) or "not found" in str(e).lower():
            return False
        raise
    return True


def garp_frames(mac: bytes, address: ipaddress.IPv4Address) -> list[bytes]:
    """The two Ethernet frames of one gratuitous ARP round: a request and a reply, both saying
    ``address is at mac``, sent to the broadcast address."""
    ip = address.packed
    frames = []
    for op in (1, 2):  # request, reply
        target_mac = b"\0" * 6 if op == 1 else _BROADCAST
        arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, mac, ip, target_mac, ip)
        frames.append(_BROADCAST + mac + struct.pack("!H", _ETH_P_ARP) + arp)
    return frames


def gratuitous_arp(address: ipaddress.IPv4Interface | ipaddress.IPv6Interface, interface: str) -> int:
    """One round of gratuitous ARP for ``address`` out of ``interface``; returns frames sent (0 for
    IPv6 or an interface without a MAC). Raises LocalError when the socket cannot be had."""
    if address.version != 4:
        return 0
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ARP))
    except OSError as e:
        raise LocalError(f"gratuitous ARP on {interface}: {e.strerror}") from None
    with contextlib.closing(sock):
        try:
            sock.bind((interface, _ETH_P_ARP))
            mac = sock.getsockname()[4]
            if len(mac) != 6:
                return 0
            sent = 0
            for frame in garp_frames(mac, ipaddress.IPv4Address(address.ip)):
                sock.send(frame)
                sent += 1
        except OSError as e:
            raise LocalError(f"gratuitous ARP on {interface}: {e.strerror}") from None
    return sent
