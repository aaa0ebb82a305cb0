"""Route-based children in the daemon: one TUN device per child with an ``interface`` (like an
XFRM/VTI interface per tunnel). What the routing table sends into that device is the child's
traffic (``ip route add 10.2.0.0/16 dev vti42``, or a routing daemon's routes): it goes to
:meth:`Processor.outbound_via` with the child's policy key, never through the shared SPD, and the
SA's inbound packets come back out of the same device (:class:`DeliverVia`). No policy and no
route is installed for such a child; an Acquire (traffic before the SA) starts it like a trap.
The devices live as long as the data plane; a reload that adds or removes one needs a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from snakeswan.config.model import ChildConfig, Config
from snakeswan.io.tun import Tun
from snakeswan.ipsec import Processor
from snakeswan.ipsec.events import Output

log = logging.getLogger("snakeswan.dataplane")


def route_based_children(config: Config) -> list[tuple[str, ChildConfig]]:
    """(connection name, child) of every route-based child."""
    return [(c.name, ch) for c in config.connections for ch in c.children if ch.interface is not None]


def interfaces(config: Config) -> list[tuple[str, str, str | None]]:
    """(connection, child, interface) of the route-based children: a reload must not change them."""
    return [(conn, child.name, child.interface) for conn, child in route_based_children(config)]


class RouteBasedInterfaces:
    """The TUN devices of the route-based children, read into the processor, written on delivery."""

    def __init__(
        self,
        config: Config,
        loop: asyncio.AbstractEventLoop,
        processor: Processor,
        emit: Callable[[list[Output]], None],
        after: Callable[[], None],
    ) -> None:
        self.loop = loop
        self._processor = processor
        self._emit = emit
        self._after = after
        self.tuns: dict[str, Tun] = {}
        try:
            for conn, child in route_based_children(config):
                assert child.interface is not None
                tun = Tun(child.interface)
                self.tuns[child.interface] = tun
                tun.configure(mtu=config.daemon.tun_mtu)
                loop.add_reader(tun.fileno(), self._readable, tun, (conn, child.name))
                log.info("route-based child %s/%s on %s", conn, child.name, child.interface)
        except BaseException:
            self.close()
            raise

    def _readable(self, tun: Tun, key: tuple[str, str]) -> None:
        packets = tun.read(64)
        if packets:
            self._emit(self._processor.outbound_via(packets, key, self.loop.time()))
        self._after()

    def deliver(self, interface: str, packet: bytes) -> bool:
        """Write an inner packet to a route-based child's device; False if there is none."""
        tun = self.tuns.get(interface)
        if tun is None:
            return False
        tun.write(packet)
        return True

    def close(self) -> None:
        for tun in self.tuns.values():
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_reader(tun.fileno())
            tun.close()
        self.tuns.clear()
