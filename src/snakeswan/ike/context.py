"""What an exchange may use of the engine: randomness, trace, config, outputs, SPIs.

Exchanges get this small object instead of the engine itself, so that no exchange can reach into
another's state (no god object) and tests can build one directly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from snakeswan.config.model import Config
from snakeswan.crypto.dh import DhKeyPair, dh_group
from snakeswan.crypto.dh_stock import DhStock
from snakeswan.ike.events import Address, Datagram, Event
from snakeswan.ike.retransmit import RetransmitPolicy
from snakeswan.ike.revocation import OcspCache
from snakeswan.trace import Tracer
from snakeswan.wire.payloads import Payload

#: (initiator cookie, exchange type, message ID, payloads, recompute the HASH at their head or None)
#: -> the payloads to encode instead: impairments on purpose (ike/impair.py), None in normal use
PayloadHook = Callable[
    [bytes, int, int, list[Payload], Callable[[list[Payload]], bytes] | None], list[Payload]
]


class SpiAllocator:
    """Inbound SPIs, unique within one engine (RFC 4301: values 1..255 are reserved)."""

    def __init__(self, rng: Callable[[int], bytes]) -> None:
        self._rng = rng
        self._used: set[int] = set()

    def allocate(self) -> int:
        while True:
            spi = int.from_bytes(self._rng(4), "big")
            if spi >= 256 and spi not in self._used:
                self._used.add(spi)
                return spi

    def reserve(self, spi: int) -> None:
        """``spi`` is ours already (an IPsec SA restored from the state store)."""
        self._used.add(spi)

    def release(self, spi: int) -> None:
        self._used.discard(spi)

    def __contains__(self, spi: int) -> bool:
        return spi in self._used


@dataclass
class Context:
    config: Config
    rng: Callable[[int], bytes]
    tracer: Tracer
    spis: SpiAllocator
    retransmit: RetransmitPolicy = field(default_factory=RetransmitPolicy)
    keylog: bool = False
    nat_port: int = 4500
    # wall-clock time = engine time + wall_offset (certificate validity); set by the driver. None:
    # unknown, and certificates cannot be validated (signature authentication then fails).
    wall_offset: float | None = None
    payload_hook: PayloadHook | None = None  # Impairer.attach: payload impairments (tests, labs)
    ocsp_cache: OcspCache = field(default_factory=OcspCache)  # OCSP answers until their nextUpdate
    outbox: list[Datagram] = field(default_factory=list)
    events: deque[Event] = field(default_factory=deque)
    # A load generator's shortcut (``snakeswan load --reuse-dh``), never the daemon's: one DH key
    # pair per group for all its simulated peers (strongSwan's load-tester makes its side cheap
    # with a weak ``dh_group`` instead); the gateway still does all its work. None: fresh pairs.
    reused_dh: dict[int, DhKeyPair] | None = None
    # MODP key pairs a daemon's helper process made ahead of need (crypto/dh_stock.py), each
    # taken once; None, or an empty stock: made here
    dh_stock: DhStock | None = None

    def dh_keypair(self, group: int) -> DhKeyPair:
        """A DH key pair of ``group`` for one exchange (fresh, unless ``reused_dh`` is set)."""
        if self.reused_dh is None:
            if self.dh_stock is not None and (ready := self.dh_stock.take(group)) is not None:
                return ready
            return dh_group(group).generate(self.rng)
        pair = self.reused_dh.get(group)
        if pair is None:
            pair = self.reused_dh[group] = dh_group(group).generate(self.rng)
        return pair

    def send(self, data: bytes, src: Address, dst: Address) -> None:
        self.outbox.append(Datagram(data, src, dst))

    def emit(self, event: Event) -> None:
        self.events.append(event)
