"""The daemon's data plane: the sans-I/O :class:`~snakeswan.ipsec.Processor` wired to the TUN
device (cleartext side), raw ESP/AH sockets and the UDP 4500 socket (protected side), and routes.

- Policies: every child's local_ts/remote_ts is a protect policy. Children with
  ``start_action = "trap"`` get their policy and route at start, so that the first packet
  ("interesting traffic") makes the processor emit ``Acquire`` and the engine negotiate; others
  when their SA is installed. A child closed with nothing to follow loses them again unless it is
  trapped. Shunts (``mode = "pass"``/``"drop"``) become bypass/discard policies at start and reload.
- Routes go into their own table, entered by all packets but those of our marked sockets (policy
  routing, ``io.routes``); our own IKE/ESP/AH is bypassed in the SPD should it reach the TUN.
- A negotiated child (``ChildSaEstablished``) becomes an inbound/outbound SA pair; a rekey installs
  the new pair next to the old one (outbound moves to the newest) until the engine deletes the old.
- Byte limits are counted here and reported to the engine; so is inbound traffic (for DPD).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from snakeswan.config.model import ChildConfig, Config, ConnectionConfig, DaemonConfig, first_address
from snakeswan.config.traffic import TrafficSelector
from snakeswan.daemon.childsa import bundle_params, pair_count, policy_key, serves_many
from snakeswan.daemon.hostnet import OwnTraffic, purge_stale
from snakeswan.daemon.policy_index import ChildKeys, PolicyKeys
from snakeswan.daemon.routebased import RouteBasedInterfaces
from snakeswan.daemon.workers import ReplicatedProcessor, WorkerPool, inbox_batch, send_handoffs, send_udp
from snakeswan.errors import LocalError
from snakeswan.ike.events import ChildSaInfo, SaKeys
from snakeswan.ike.selectors import selector_pairs
from snakeswan.io.entropy import BufferedRandom
from snakeswan.io.netlink import run_netlink
from snakeswan.io.rawip import AH, ESP, HeaderIncluded, RawIp
from snakeswan.io.routes import (
    Routes,
    Rules,
    local_address_in,
    pass_rule_selectors,
    set_mark,
    tun_table_rule,
)
from snakeswan.io.tun import Tun
from snakeswan.io.udp import UdpSocket
from snakeswan.ipsec import (
    Acquire,
    Bypass,
    Deliver,
    DeliverVia,
    Expired,
    Handoff,
    Output,
    Policy,
    Processor,
    SaParams,
    SendIp,
    SendPacket,
    SendUdp,
)
from snakeswan.ipsec.checkpoint import Checkpoint
from snakeswan.ipsec.spd import policy_priority
from snakeswan.trace import Tracer
from snakeswan.wire.enums import ProtocolId

log = logging.getLogger("snakeswan.dataplane")


_ACTIONS = {"tunnel": "protect", "transport": "protect", "pass": "bypass", "drop": "discard"}


REKEY_SWITCH_DELAY = 0.5  # seconds; well under the 5 s the old SA lives on (ike/lifetimes.py)


class _Families:
    """The raw sockets of one protocol for IPv4 and IPv6 behind :meth:`RawIp.send`'s signature."""

    __slots__ = ("_send4", "_send6", "_v4", "_v6")

    def __init__(self, v4: RawIp, v6: RawIp) -> None:
        self._v4, self._v6 = v4, v6
        self._send4 = v4.send
        self._send6 = v6.send

    def send(self, payload: bytes, dst: str, *, src: str | None = None, tos: int | None = None) -> bool:
        if ":" in dst:
            return self._send6(payload, dst, src=src, tos=tos)
        return self._send4(payload, dst, src=src, tos=tos)

    def send_many(self, messages: list[tuple[bytes, str, str | None]]) -> int:
        v6 = [m for m in messages if ":" in m[1]]
        if not v6:
            return self._v4.send_many(messages)
        return self._v4.send_many([m for m in messages if ":" not in m[1]]) + self._v6.send_many(v6)


def sa_params(spi: int, keys: SaKeys, info: ChildSaInfo, child: ChildConfig) -> SaParams:
    """One direction of a negotiated child as the data plane installs it."""
    local_ts = (TrafficSelector.from_text(info.local_ts),)
    remote_ts = (TrafficSelector.from_text(info.remote_ts),)
    hard_bytes = info.life_kilobytes * 1024 if info.life_kilobytes else child.life_bytes
    return SaParams(
        spi=spi,
        protocol=ESP if info.protocol == ProtocolId.IPSEC_ESP else AH,  # ISAKMP protocol id -> IP protocol
        transform_id=info.transform_id,
        key_length=info.key_length,
        auth=info.auth,
        encryption_key=keys.encryption,
        integrity_key=keys.integrity,
        local=info.local,
        remote=info.remote,
        mode=info.mode,
        encap=info.encap,
        local_ts=local_ts,
        remote_ts=remote_ts,
        soft_bytes=child.rekey_bytes,
        hard_bytes=hard_bytes,
        replay_window=max(child.replay_window, 32),
        nat_oa=info.nat_oa,
        interface=child.interface,
    )


def covers(outer: TrafficSelector, inner: TrafficSelector) -> bool:
    """``inner``'s addresses all lie in ``outer``'s (same family)."""
    return outer.version == inner.version and outer.start <= inner.start and inner.end <= outer.end  # type: ignore[operator]


def _host(address: str) -> str:
    return f"{address}/128" if ":" in address else f"{address}/32"


def _shunt_inputs(conn: ConnectionConfig, child: ChildConfig) -> tuple[object, ...]:
    """What a shunt's policies are made of (a reload that changes none of it keeps them)."""
    return conn.local_addrs, conn.remote_addrs, child.mode, child.local_ts, child.remote_ts


class DataPlane:
    def __init__(
        self,
        config: Config,
        loop: asyncio.AbstractEventLoop,
        udp: Callable[[int, int], UdpSocket | None],
        tracer: Tracer,
    ) -> None:
        self.config = config
        self.loop = loop
        self._udp = udp  # (family, port) -> the daemon's socket
        self.workers = config.daemon.workers
        self.pool: WorkerPool | None = None
        self.processor: Processor = (  # IVs: os.urandom in blocks
            ReplicatedProcessor(BufferedRandom(), workers=self.workers, tracer=tracer)
            if self.workers > 1
            else Processor(BufferedRandom(), tracer=tracer)
        )
        self.tun = Tun(config.daemon.tun, offload=config.daemon.tun_offload, multi_queue=self.workers > 1)
        if self.tun.offload_error:
            log.info("%s: no TUN offloads (%s), plain packets", self.tun.name, self.tun.offload_error)
        self.rules = Rules()
        self.mark = 0  # the firewall mark of our sockets, once the rules are in place
        self._raw_sockets: list[RawIp] = []
        try:
            self.tun.configure(mtu=config.daemon.tun_mtu)
            self.routes = Routes(self.tun.name, table=self._policy_routing(config.daemon))
            self._open_raw_sockets()
        except (LocalError, OSError):
            self._close_sockets_and_rules()
            self.tun.close()
            raise
        for sock in self._raw_sockets:
            loop.add_reader(sock.fileno(), self._raw_readable, sock)
        loop.add_reader(self.tun.fileno(), self._tun_readable)
        self.children: dict[int, ChildSaInfo] = {}  # by inbound SPI
        self.acquires: list[Acquire] = []
        self.limits: list[Expired] = []
        self.unrouted = 0
        self.handed_out = self.handed_in = self.handoff_lost = 0  # packets of other workers' pairs
        self._policies = PolicyKeys()  # installed policies' keys, by child name (policy_index.py)
        self._child_keys = ChildKeys()  # installed SAs per policy key and per child
        self._owned_rules: dict[str, list[tuple[int, list[str]]]] = {}  # pass shunts' rules by child
        self._shunts: dict[tuple[str, str], tuple[ConnectionConfig, ChildConfig]] = {}
        # pairs (inbound SPI) that moved since DPD's and the checkpoints' last look (moved())
        self._received: set[int] = set()
        self._moved: set[int] = set()
        self._vips: dict[int, tuple[str, ...]] = {}  # virtual IPs on the TUN, by IKE SA (a client)
        self._split: dict[int, tuple[TrafficSelector, ...]] = {}  # split-include networks, by IKE SA
        self.on_events: Callable[[], None] = lambda: None
        # our own IKE/ESP/AH bypassed in the SPD, from every address we have, as they change
        self.own = OwnTraffic(
            self.processor, (config.daemon.port, config.daemon.nat_port), self.tun.name, loop
        )
        try:  # route-based children: a TUN device each (daemon/routebased.py)
            rb = RouteBasedInterfaces(config, loop, self.processor, self._emit, self._drain_events)
        except (LocalError, OSError):
            self.close()
            raise
        self.route_based = rb
        if isinstance(self.processor, ReplicatedProcessor):  # [daemon] workers: daemon/workers.py
            try:
                nat_port = config.daemon.nat_port
                nat_t = [u for f in (socket.AF_INET, socket.AF_INET6) if (u := udp(f, nat_port)) is not None]
                self.pool = WorkerPool(
                    loop, self.tun, self.processor, self.mark, self._worker_events, nat_t=nat_t
                )
                self.pool.start()
            except (LocalError, OSError):
                self.close()
                raise
            loop.add_reader(self.pool.inbox.fileno(), self._inbox_readable)
        log.info("data plane on %s (MTU %d)", self.tun.name, config.daemon.tun_mtu)

    def _open_raw_sockets(self) -> None:
        mark = self.mark
        steer = (0, self.workers) if self.workers > 1 else None  # our share of the SPIs: io/steering.py
        self._raw_sockets += [RawIp(ESP, mark=mark, steer=steer), RawIp(AH, mark=mark)]
        self.raw: dict[int, RawIp | _Families] = {ESP: self._raw_sockets[0], AH: self._raw_sockets[1]}
        try:  # ESP over IPv6 (AH over IPv6 needs its header, which IPv6 raw sockets do not give)
            esp6 = RawIp(ESP, socket.AF_INET6, mark=mark, steer=steer)
        except LocalError as e:
            log.info("no IPv6 ESP socket: %s", e)
        else:
            self._raw_sockets.append(esp6)
            self.raw[ESP] = _Families(self._raw_sockets[0], esp6)
        self.hdrincl = HeaderIncluded()
        set_mark(self.hdrincl.sock, mark)

    def _policy_routing(self, daemon: DaemonConfig) -> int | None:
        """The rules that send unmarked traffic to the TUN's table (module ``io.routes``); that
        table, or None (main) when ``route_table`` is 0 or the rules cannot be installed."""
        if not daemon.route_table:
            log.info("routes into %s in the main table (route_table = 0)", self.tun.name)
            return None
        purge_stale(daemon)  # what a daemon killed with -9 left behind (daemon/hostnet.py)
        rule = tun_table_rule(daemon.route_table, daemon.fwmark, daemon.route_priority)
        for version in (4, 6):
            try:
                self.rules.add(version, rule)
            except LocalError as e:
                if version == 4:
                    log.warning("policy routing unavailable (%s): routes in the main table", e)
                    return None
                log.info("no IPv6 policy routing: %s", e)
        self.mark = daemon.fwmark
        log.info(
            "routes into %s in table %d: rule 'not fwmark %#x lookup %d' (priority %d)",
            self.tun.name,
            daemon.route_table,
            daemon.fwmark,
            daemon.route_table,
            daemon.route_priority,
        )
        return daemon.route_table

    def close(self) -> None:
        if self.pool is not None:
            self.loop.remove_reader(self.pool.inbox.fileno())
            self.pool.close()
            self.pool = None
        self.loop.remove_reader(self.tun.fileno())
        self.own.close()
        for sock in self._raw_sockets:
            self.loop.remove_reader(sock.fileno())
        try:
            self.routes.remove_all()
        except LocalError as e:
            log.info("route clean-up: %s", e)
        self._close_sockets_and_rules()
        self.tun.close()
        if hasattr(self, "route_based"):
            self.route_based.close()

    def _close_sockets_and_rules(self) -> None:
        for sock in self._raw_sockets:
            sock.close()
        if hasattr(self, "hdrincl"):
            self.hdrincl.close()
        try:
            self.rules.remove_all()
        except LocalError as e:
            log.warning("rule clean-up: %s", e)

    # ---- policies -----------------------------------------------------------------------------

    def _selectors(
        self, conn: ConnectionConfig, child: ChildConfig, local: str | None, remote: str | None
    ) -> tuple[list[TrafficSelector], list[TrafficSelector]]:
        local = local or first_address(conn.local_addrs)
        remote = remote or first_address(conn.remote_addrs)
        lts = [t.resolve(ipaddress.ip_address(local)) if t.dynamic and local else t for t in child.local_ts]
        rts = [
            t.resolve(ipaddress.ip_address(remote)) if t.dynamic and remote else t for t in child.remote_ts
        ]
        return [t for t in lts if not t.dynamic], [t for t in rts if not t.dynamic]

    def protect(
        self,
        conn: ConnectionConfig,
        child: ChildConfig,
        local: str | None = None,
        remote: str | None = None,
        *,
        negotiated: ChildSaInfo | None = None,
        pair: int | None = None,
    ) -> None:
        """The policies and the routes of one child (idempotent): ``protect`` for a negotiated child,
        ``bypass`` for a pass shunt (with rules that keep its flows out of the TUN), ``discard`` for a
        drop shunt (routed into the TUN, where it is dropped and counted). For an SA just
        ``negotiated`` the policy is its selectors as agreed (a virtual IP, a narrowed subnet), keyed
        per peer on a connection that serves many (:func:`policy_key`). A child with several
        selector pairs gets one policy key per ``pair``."""
        if negotiated is None and pair is None and not child.shunt and pair_count(conn, child.name) > 1:
            for i in range(pair_count(conn, child.name)):
                self.protect(conn, child, local, remote, pair=i)
            return
        key = policy_key(conn, child.name, negotiated, pair)
        if key in self._policies or child.interface is not None:
            return  # route-based: what enters its interface is its traffic (daemon/routebased.py)
        if negotiated is not None:
            lts = [TrafficSelector.from_text(negotiated.local_ts)]
            rts = [TrafficSelector.from_text(negotiated.remote_ts)]
        elif pair is not None:
            one = selector_pairs(child.local_ts, child.remote_ts)[pair]
            lts, rts = self._selectors(
                conn, replace(child, local_ts=one[:1], remote_ts=one[1:]), local, remote
            )
        else:
            lts, rts = self._selectors(conn, child, local, remote)
        pairs = [(l_ts, r_ts) for l_ts in lts for r_ts in rts if l_ts.version == r_ts.version]
        if not pairs:
            log.warning("%s/%s: no concrete traffic selectors, no policy", *key)
            return
        action = _ACTIONS[child.mode]
        for l_ts, r_ts in pairs:
            self.processor.add_policy(Policy(l_ts, r_ts, action, key, policy_priority(action, l_ts, r_ts)))
        if action == "bypass":
            self._pass_rules(pairs, f"{conn.name}/{child.name}")
        else:
            routed = self._split_routes(negotiated, rts)
            for version in sorted({ts.version for ts in routed}):
                src = local_address_in([ts for ts in lts if ts.version == version])
                family = [ts for ts in routed if ts.version == version]
                self.routes.add_selectors(family, src=src, owner="/".join(key))
        self._policies.add(key)
        log.info(
            "policy %s/%s (%s): %s === %s via %s",
            *key,
            action,
            ",".join(map(str, lts)),
            ",".join(map(str, rts)),
            self.tun.name,
        )

    def _pass_rules(self, pairs: list[tuple[TrafficSelector, TrafficSelector]], owner: str) -> None:
        """Rules just before the TUN table's: a pass shunt's flows use the main table."""
        if not self.mark:
            log.warning("%s: pass policy without policy routing: its flows are dropped in the TUN", owner)
            return
        priority = str(self.config.daemon.route_priority - 1)
        for l_ts, r_ts in pairs:
            for selector in pass_rule_selectors(l_ts, r_ts):
                spec = [*selector, "lookup", "main", "priority", priority]
                self.rules.add(l_ts.version, spec)
                self._owned_rules.setdefault(owner, []).append((l_ts.version, spec))

    def unprotect(self, conn_name: str, child_name: str) -> None:
        """Remove what :meth:`protect` installed for one child (``child_name`` is the second half
        of its policy key): its policies (packets queued for it are dropped), its routes (unless
        another child needs them) and a pass shunt's rules. Its SAs stay until :meth:`child_down`.
        Nothing to remove is no error."""
        for key in self._policies.named(conn_name, child_name):  # with several selector pairs: child#N
            self._unprotect(key)

    def _unprotect(self, key: tuple[str, str]) -> None:
        conn_name, child_name = key
        self._policies.discard(key)
        self.processor.remove_policies(key)
        owner = f"{conn_name}/{child_name}"
        try:
            self.routes.remove_owner(owner)
            for version, spec in self._owned_rules.pop(owner, []):
                self.rules.remove(version, spec)
        except LocalError as e:
            log.warning("%s: route clean-up: %s", owner, e)
        log.info("policy %s/%s removed", *key)

    def install_traps(self) -> None:
        """Trap policies (``start_action = "trap"``) and the pass/drop shunts, at start and reload
        (shunts gone from the configuration or changed are removed first)."""
        shunts = {
            (conn.name, child.name): (conn, child)
            for conn in self.config.connections
            for child in conn.shunts
        }
        for key, old in list(self._shunts.items()):
            new = shunts.get(key)
            if new is None or _shunt_inputs(*new) != _shunt_inputs(*old):
                self.unprotect(*key)
                del self._shunts[key]
        for key, (conn, child) in shunts.items():
            self.protect(conn, child)
            self._shunts[key] = (conn, child)
        for conn in self.config.connections:
            for child in conn.children:
                if child.start_action == "trap":
                    self.protect(conn, child)

    def policies(self) -> dict[str, Any]:
        """What ``list-pols`` shows: the SPD in lookup order, the data plane's drop counters and
        the policy-routing rules."""
        return {
            "policies": [
                {
                    "conn": e.policy.key[0] if e.policy.key else None,
                    "child": e.policy.key[1] if e.policy.key else None,
                    "action": e.policy.action,
                    "local_ts": str(e.policy.local_ts),
                    "remote_ts": str(e.policy.remote_ts),
                    "priority": e.policy.priority,
                    "installed": bool(e.child and e.child.sa),
                }
                for e in self.processor.spd.entries
            ],
            "drops": self.drops(),
            "workers": self.worker_stats(),
            "unrouted": self.unrouted,
            "table": self.routes.table,
            "fwmark": self.mark,
            "rules": [f"-{v} {' '.join(args)}" for v, args in self.rules.installed()],
        }

    # ---- SAs ------------------------------------------------------------------------------------

    def child_up(self, info: ChildSaInfo, now: float) -> None:
        conn = self.config.connection(info.conn)
        child = conn.child(info.child)
        if info.protocol == ProtocolId.IPSEC_AH and ":" in info.remote[0]:
            # IPv6 raw sockets do not hand over the header AH's ICV covers; the AH sender is IPv4
            raise LocalError("AH over IPv6 is not supported by this data plane (ESP is)")
        self.protect(conn, child, info.local[0], info.remote[0], negotiated=info)
        inbound = sa_params(info.spi_in, info.keys_in, info, child)
        outbound = sa_params(info.spi_out, info.keys_out, info, child)
        self.children[info.spi_in] = info
        key = policy_key(conn, child.name, info)
        self._child_keys.add(info.spi_in, key, info.conn, info.child)
        # a rekey we initiated: keep sending on the old SA a moment, until our QM3 has surely
        # reached the peer and it has installed the new one (processor.install)
        delay = REKEY_SWITCH_DELAY if info.replaces is not None and info.initiator else 0.0
        self._emit(
            self.processor.install(
                inbound, outbound, key, now=now, ah=bundle_params(info, child), switch_after=delay
            )
        )

    def child_down(self, spi_in: int) -> ChildSaInfo | None:
        info = self.children.pop(spi_in, None)
        if info is not None:
            self.processor.remove(spi_in)
            self._received.discard(spi_in)
            self._moved.discard(spi_in)
            self._child_keys.discard(spi_in)
        return info

    def child_closed(self, conn_name: str, child_name: str, gone: ChildSaInfo | None = None) -> None:
        """A child closed with nothing to follow (``ChildSaDeleted.then == "none"``: deleted,
        ``dpd_action = "clear"``...): its policy and routes go, unless it is trapped
        (``start_action = "trap"``) or another of its SAs is still installed (a rekey). ``gone``,
        the SA just removed, names the per-peer policy of a connection that serves many peers."""
        try:
            conn: ConnectionConfig | None = self.config.connection(conn_name)
        except KeyError:
            conn = None
        if conn is not None and gone is not None and "@" in policy_key(conn, child_name, gone)[1]:
            key = policy_key(conn, child_name, gone)  # a policy of its own (a peer's, narrowed)
            if not self._child_keys.has_key(key):
                self.unprotect(*key)
            if serves_many(conn):
                return
        if self._child_keys.has_child(conn_name, child_name):
            return
        try:
            child = self.config.connection(conn_name).child(child_name)
        except KeyError:
            child = None  # gone from the configuration (reload): nothing keeps its policy
        if child is None or child.start_action != "trap":
            self.unprotect(conn_name, child_name)

    # ---- virtual IPs (Mode Config client) --------------------------------------------------------

    def add_vips(self, ike_sa: int, addresses: tuple[str, ...], split_include: tuple[str, ...] = ()) -> None:
        """Put the virtual IPs Mode Config gave us on the TUN (host routes' source, the policies'
        local selector); the split-include networks the gateway sent (Cisco Unity) decide what
        of the IKE SA's children's remote selectors is routed into the tunnel."""
        self.tun.configure(mtu=self.config.daemon.tun_mtu, addresses=[_host(a) for a in addresses])
        self._vips[ike_sa] = addresses
        if split_include:
            self._split[ike_sa] = tuple(TrafficSelector.from_text(n) for n in split_include)

    def _split_routes(self, info: ChildSaInfo | None, rts: list[TrafficSelector]) -> list[TrafficSelector]:
        """Split tunneling: with split-include networks for this IKE SA, route only those of them
        a remote selector covers (the policy stays as negotiated); else the remote selectors."""
        split = self._split.get(info.ike_sa, ()) if info is not None else ()
        inside = [net for net in split if any(covers(r, net) for r in rts)]
        return inside if inside else rts

    def remove_vips(self, ike_sa: int) -> None:
        self._split.pop(ike_sa, None)
        gone = self._vips.pop(ike_sa, ())
        still = {a for addrs in self._vips.values() for a in addrs}
        for address in gone:
            if address in still:
                continue  # a renewed IKE SA holds it too
            version = "-6" if ":" in address else "-4"
            try:
                run_netlink([version, "addr", "del", _host(address), "dev", self.tun.name])
            except LocalError as e:
                log.info("virtual IP %s: %s", address, e)

    def counters(self) -> dict[int, dict[str, int]]:
        out: dict[int, dict[str, int]] = {}
        for spi_in, info in self.children.items():
            cin = self.processor.counters(spi_in, "in")
            cout = self.processor.counters(info.spi_out, "out")
            out[spi_in] = {
                "bytes_in": cin.get("bytes", 0),
                "packets_in": cin.get("packets", 0),
                "bytes_out": cout.get("bytes", 0),
                "packets_out": cout.get("packets", 0),
                **{k: v for k, v in cin.items() if k.startswith("drop_")},  # replay, icv, padding, policy...
            }
        return out

    def _take_moved(self) -> None:
        received, sent = self.processor.take_moved()
        self._received |= received
        self._moved |= received | sent

    def inbound_activity(self) -> dict[int, list[int]]:
        """IKE SA id -> inbound SPIs of its IPsec SAs that received packets since the last call
        (DPD: the peer lives; a rekey collision: which pair the peer sends on). Costs what moved,
        not what is installed (Processor.take_moved)."""
        self._take_moved()
        received, self._received = self._received, set()
        children = self.children
        out: dict[int, list[int]] = {}
        for spi in received:
            info = children.get(spi)
            if info is not None:
                out.setdefault(info.ike_sa, []).append(spi)
        return out

    def prefer(self, spi_in: int) -> None:
        """Send the child's traffic on the pair with inbound SPI ``spi_in`` (a rekey collision's
        survivor), not on the one installed last."""
        self.processor.prefer(spi_in)

    def moved(self) -> set[int]:
        """Inbound SPIs of the installed pairs that received or sent since the last call (the
        state store's counter checkpoints)."""
        self._take_moved()
        moved, self._moved = self._moved, set()
        return moved & self.children.keys()

    # ---- packets --------------------------------------------------------------------------------

    def _tun_readable(self) -> None:
        packets = self.tun.read(64)
        if packets:
            self._emit(self.processor.outbound_many(packets, self.loop.time()))
        self._drain_events()

    def _raw_readable(self, sock: RawIp) -> None:
        now = self.loop.time()
        if sock.protocol == ESP:  # the per-packet path: a batch in, one TUN write batch out
            self.esp_many(sock.receive_payloads(64), now)
            return
        inbound, emit = self.processor.inbound, self._emit
        delivered: list[bytes] = []
        for p in sock.receive(64):  # AH: its ICV covers the IP header, so the whole packet
            emit(inbound(p.packet or p.data, p.protocol, p.src, p.dst, now), delivered)
        if delivered:
            self.tun.write_many(delivered)
        self._drain_events()

    def esp_many(self, packets: list[bytes], now: float) -> None:
        """ESP packets of one read batch (raw socket payloads, or ESP-in-UDP with the markers
        gone), in order; what they carry is written in one batch: the TUN coalesces the TCP
        segments in it."""
        delivered, other = self.processor.inbound_esp_many(packets, now)
        if other:
            self._emit(other)
        if delivered:
            self.tun.write_many(delivered)
        self._drain_events()

    def _emit(
        self, outputs: list[Output], delivered: list[bytes] | None = None, *, handoff: bool = True
    ) -> None:
        """Carry out the processor's outputs; inner packets are collected in ``delivered`` (to be
        written as one batch) if it is given, else written at once. ``handoff`` False: packets
        that were handed to us are not handed on again (daemon/dp_worker.py says why)."""
        raw: list[tuple[bytes, str, str | None]] = []
        raw_ah: list[tuple[bytes, str, str | None]] = []
        udp: list[SendUdp] = []
        handoffs: list[Handoff] = []
        for o in outputs:
            if type(o) is SendIp:  # the per-packet cases first, without isinstance's walk
                (raw if o.protocol == ESP else raw_ah).append((o.payload, o.dst, o.src))
            elif type(o) is SendUdp:
                udp.append(o)
            elif type(o) is Handoff:
                handoffs.append(o)
            elif isinstance(o, DeliverVia):
                self.route_based.deliver(o.interface, o.ip_packet)
            elif isinstance(o, Deliver):
                if delivered is not None:
                    delivered.append(o.ip_packet)
                else:
                    self.tun.write(o.ip_packet)
            elif isinstance(o, SendIp):
                (raw if o.protocol == ESP else raw_ah).append((o.payload, o.dst, o.src))
            elif isinstance(o, SendUdp):
                udp.append(o)
            elif isinstance(o, SendPacket):
                self.hdrincl.send(o.packet, o.dst)
            elif isinstance(o, Bypass):
                self.unrouted += 1  # routed into the TUN but no policy covers it: dropped
        for proto, batch in ((ESP, raw), (AH, raw_ah)):
            if len(batch) == 1:
                payload, dst, src = batch[0]
                self.raw[proto].send(payload, dst, src=src)
            elif batch:  # one sendmmsg per protocol (io.batch), each in the processor's order
                self.raw[proto].send_many(batch)
        if udp:
            self._send_udp(udp)
        if handoffs:
            self._hand_off(handoffs, handoff)

    # ---- several workers ([daemon] workers, daemon/workers.py) -----------------------------------

    def _hand_off(self, handoffs: list[Handoff], allowed: bool) -> None:
        if self.pool is None or not allowed:
            self.handoff_lost += len(handoffs)
            return
        sent, lost = send_handoffs(self.pool.inboxes, handoffs)
        self.handed_out += sent
        self.handoff_lost += lost

    def _inbox_readable(self) -> None:
        """Packets a worker handed us: of pairs we own (UDP-encapsulated, AH, route-based ones)."""
        assert self.pool is not None
        outbound, inbound = inbox_batch(self.pool.inbox)
        self.handed_in += len(outbound) + len(inbound)
        now = self.loop.time()
        if outbound:
            self._emit(self.processor.outbound_many(outbound, now), handoff=False)
        if inbound:
            delivered, other = self.processor.inbound_esp_many(inbound, now)
            if other:
                self._emit(other, handoff=False)
            if delivered:
                self.tun.write_many(delivered)
        self._drain_events()

    def _worker_events(self, events: list[Acquire | Expired]) -> None:
        for ev in events:
            (self.acquires if isinstance(ev, Acquire) else self.limits).append(ev)  # type: ignore[arg-type]
        if events:
            self.on_events()

    def drops(self) -> dict[str, int]:
        """The drop counters by reason, the workers' included."""
        if isinstance(self.processor, ReplicatedProcessor):
            return self.processor.drops_total()
        return dict(self.processor.drops)

    def worker_stats(self) -> list[dict[str, Any]]:
        """Each worker's counts (``list-pols``): empty with one."""
        if self.pool is None:
            return []
        own = {"handed_out": self.handed_out, "handed_in": self.handed_in, "handoff_lost": self.handoff_lost}
        pids = self.pool.pids()
        out: list[dict[str, Any]] = [{"worker": 0, "pid": os.getpid(), **own}]
        for k in range(1, self.pool.size):
            out.append({"worker": k, "pid": pids.get(k), **self.pool.stats.get(k, {})})
        return out

    def resumed(self, spi_in: int, cp: Checkpoint | None) -> None:
        """A restored pair's counters were set from ``cp``: its owner sets them too."""
        if isinstance(self.processor, ReplicatedProcessor):
            self.processor.resumed(spi_in, cp)

    def _send_udp(self, sends: list[SendUdp]) -> None:
        """ESP-in-UDP: each run to one peer from one port in one call (UDP GSO, io.udp)."""
        send_udp(sends, self._udp)

    def _drain_events(self) -> None:
        got = False
        while (ev := self.processor.next_event()) is not None:
            got = True
            if isinstance(ev, Acquire):
                self.acquires.append(ev)
            else:
                self.limits.append(ev)
        if got:
            self.on_events()

    def timer(self, now: float) -> float | None:
        self.processor.handle_timer(now)
        self._drain_events()
        return self.processor.get_timer()
