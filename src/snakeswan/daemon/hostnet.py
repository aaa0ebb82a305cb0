"""The host's network as the data plane sees it: its own addresses, followed as they change, and
what a daemon killed without a word (``kill -9``) left in the policy routing.

- :class:`OwnTraffic`: the SPD's bypass policies for our own IKE/NAT-T/ESP/AH packets are made
  from the addresses the namespace has. An address added or removed later (DHCP, a failover
  address, an operator) would leave them stale, so a netlink monitor (``io.netlink``) tells us and
  they are rebuilt from a fresh dump; nothing is polled.
- :func:`purge_stale`: at start, before our own rules go in, rules at our priorities that have our
  shapes (``not fwmark M lookup T`` at ``route_priority``, ``... lookup main`` at
  ``route_priority - 1``: the pass shunts') and routes in our own table are what an earlier daemon
  could not remove; they are deleted and logged. The TUN device itself and the routes through it
  went with the dead process (a non-persistent TUN device lives as long as its fd); the control
  socket is taken over by ``instance.py``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket

from snakeswan.config.model import DaemonConfig
from snakeswan.config.traffic import IPAddress
from snakeswan.errors import LocalError
from snakeswan.io import netlink
from snakeswan.io.routes import local_addresses
from snakeswan.ipsec import Processor
from snakeswan.ipsec.spd import IKE_BYPASS_KEY, ike_bypass_policies

log = logging.getLogger("snakeswan.dataplane")

_RESERVED_TABLES = {0, 253, 254, 255}  # unspec, default, main, local: never flushed


class OwnTraffic:
    """Bypass policies for our own traffic from every address of the namespace but the TUN's,
    rebuilt whenever an address comes or goes (:attr:`updates` counts the rebuilds)."""

    def __init__(
        self, processor: Processor, ports: tuple[int, ...], tun: str, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.processor = processor
        self.ports = ports
        self.tun = tun
        self.loop = loop
        self.addresses: frozenset[IPAddress] = frozenset()
        self.updates = 0
        self.monitor: netlink.AddressMonitor | None = None
        try:
            self.monitor = netlink.AddressMonitor()
        except LocalError as e:
            log.warning("address changes not followed (%s): the IKE bypass keeps today's addresses", e)
        else:
            loop.add_reader(self.monitor.fileno(), self._readable)
        self.sync()

    def _readable(self) -> None:
        if self.monitor is not None and self.monitor.changed():
            self.sync()

    def sync(self) -> None:
        """Read the addresses again; replace the bypass policies if they changed."""
        try:
            now = frozenset(local_addresses(exclude_devices=(self.tun,)))
        except LocalError as e:
            log.warning("no bypass policies for IKE: %s", e)
            return
        if now == self.addresses:
            return
        added, gone = sorted(now - self.addresses, key=str), sorted(self.addresses - now, key=str)
        self.processor.remove_policies(IKE_BYPASS_KEY)
        for policy in ike_bypass_policies(sorted(now, key=lambda a: (a.version, int(a))), self.ports):
            self.processor.add_policy(policy)
        if self.updates:
            log.info(
                "addresses changed (+%s -%s): IKE/ESP bypass for %d addresses",
                ",".join(map(str, added)) or "none",
                ",".join(map(str, gone)) or "none",
                len(now),
            )
        self.addresses = now
        self.updates += 1

    def close(self) -> None:
        if self.monitor is not None:
            self.loop.remove_reader(self.monitor.fileno())
            self.monitor.close()
            self.monitor = None


def purge_stale(daemon: DaemonConfig) -> list[str]:
    """Delete the rules and routes an earlier daemon of this configuration left behind; returns
    what was deleted (``ip`` words), each also logged. Netlink errors are logged, not raised."""
    gone: list[str] = []
    if not daemon.route_table:
        return gone
    for version in (4, 6):
        try:
            gone += _purge_rules(version, daemon)
            gone += _purge_routes(version, daemon.route_table)
        except LocalError as e:
            log.warning("clean-up of an earlier daemon's IPv%d rules and routes: %s", version, e)
    for what in gone:
        log.warning("removed what an earlier daemon left behind: %s", what)
    return gone


def _purge_rules(version: int, daemon: DaemonConfig) -> list[str]:
    tun_prio, pass_prio = daemon.route_priority, daemon.route_priority - 1
    gone = []
    for rule in netlink.rules_at(version, (tun_prio, pass_prio)):
        prio = rule.get("FRA_PRIORITY")
        table = rule.get("FRA_TABLE") or rule["table"]
        ours = (prio == tun_prio and table == daemon.route_table and "FRA_FWMARK" in rule) or (
            prio == pass_prio and table == netlink.RT_TABLE_MAIN
        )
        if not ours:
            continue
        netlink.delete_rule(version, rule)
        gone.append(f"-{version} rule priority {prio} lookup {table}")
    return gone


def _purge_routes(version: int, table: int) -> list[str]:
    if table in _RESERVED_TABLES:
        return []
    gone = []
    for dst, oif in netlink.routes_in(table, version):
        try:
            dev = socket.if_indextoname(oif)
        except OSError:
            continue  # its device is gone: so is the route
        netlink.route(
            "del", ipaddress.ip_network(dst), dev, table=table, what=f"route del {dst} table {table}"
        )
        gone.append(f"-{version} route {dst} dev {dev} table {table}")
    return gone
