"""What the data plane asks its driver to do (outputs) and what it reports (events): one frozen
dataclass per kind (DESIGN.md principle 6). The two outputs made once per sent packet,
:class:`SendIp` and :class:`SendUdp`, are named tuples instead: as immutable, and built in a
third of a frozen dataclass's time (0.17 against 0.38 us, a few per cent of the send path)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "Acquire",
    "Bypass",
    "Deliver",
    "DeliverVia",
    "Event",
    "Expired",
    "Handoff",
    "Output",
    "SendIp",
    "SendPacket",
    "SendUdp",
]


class SendIp(NamedTuple):
    """Send ``payload`` (an ESP packet) as IP protocol ``protocol`` (50) from ``src`` to ``dst``:
    a raw IP socket for that protocol, the kernel adding the IP header."""

    protocol: int
    src: str
    dst: str
    payload: bytes


class SendUdp(NamedTuple):
    """Send ``payload`` (an ESP packet, no marker) in UDP from ``src``:``sport`` to ``dst``:``dport``
    (RFC 3948; normally from the IKE socket on port 4500)."""

    src: str
    dst: str
    sport: int
    dport: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class SendPacket:
    """Send ``packet``, a complete IP packet (header included: IP_HDRINCL / IPV6_HDRINCL raw socket,
    or a TUN write). AH always comes out like this (its ICV covers the IPv4 identification), ESP
    when the processor was created with ``outer_headers=True``."""

    src: str
    dst: str
    packet: bytes


@dataclass(frozen=True, slots=True)
class Deliver:
    """A decapsulated inner IP packet, to be written to the TUN device."""

    ip_packet: bytes


@dataclass(frozen=True, slots=True)
class Bypass:
    """An outbound packet no protect policy covers (no policy, or a bypass policy): the driver
    decides (normally it sends it in the clear)."""

    ip_packet: bytes


@dataclass(frozen=True, slots=True)
class DeliverVia(Deliver):
    """A decapsulated inner IP packet of a route-based child, to be written to that child's own
    TUN device ``interface`` (not the shared one)."""

    interface: str


@dataclass(frozen=True, slots=True)
class Handoff:
    """A packet of an SA that another data-plane worker owns (``[daemon] workers``; the SA's
    ``owner``): to be handed to worker ``worker``, which processes it as if it had read it.
    ``inbound``: an ESP packet as :meth:`~snakeswan.ipsec.Processor.inbound_esp_many` takes it;
    else an inner IP packet from the TUN device."""

    worker: int
    packet: bytes
    inbound: bool = False


Output = SendIp | SendUdp | SendPacket | Deliver | Bypass | Handoff


@dataclass(frozen=True, slots=True)
class Acquire:
    """Traffic for a protect policy that has no outbound SA: negotiate the child ``policy_key``.

    Emitted once per policy key, again only after ``acquire_interval`` seconds without an SA.
    The packet's selectors: IP ``version``, addresses as text, ``protocol``, ports.
    """

    policy_key: tuple[str, str]
    version: int
    src: str
    dst: str
    protocol: int
    sport: int
    dport: int


@dataclass(frozen=True, slots=True)
class Expired:
    """An SA reached a soft or hard limit (time, bytes, or the sequence number space).

    ``kind`` ``"soft"``: rekey. ``"hard"``: the SA was removed from the data plane already.
    ``direction`` is ``"in"`` or ``"out"``; ``reason`` is ``"time"``, ``"bytes"`` or ``"seq"``.
    """

    spi: int
    kind: str
    direction: str
    policy_key: tuple[str, str]
    reason: str


Event = Acquire | Expired
