"""The daemon's data plane: the sans-I/O :class:`~snakeswan.ipsec.Processor` wired to the TUN
device (cleartext side), raw ESP/AH sockets and the UDP 4500 socket (protected side), and routes.

- Policies: every child's local_ts/remote_ts is a protect policy. Children with
  ``start_action = "trap"`` get their policy and route at start, so that the first packet
  ("interesting traffic") makes the processor emit ``Acquire`` and the engine negotiate; others
  when their SA is installed.
- A negotiated child (``ChildSaEstablished``) becomes an inbound/outbound SA pair; a rekey installs
  the new pair next to the old one (outbound moves to the newest) until the engine deletes the old.
- Byte limits are counted here and reported to the engine; so is inbound traffic (for DPD).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from collections.abc import Callable

from snakeswan.config.model import ChildConfig, Config, ConnectionConfig
from snakeswan.config.traffic import TrafficSelector
from snakeswan.errors import LocalError
from snakeswan.ike.events import ChildSaInfo, SaKeys
from snakeswan.io.rawip import AH, ESP, HeaderIncluded, RawIp
from snakeswan.io.routes import Routes, local_address_in
from snakeswan.io.tun import Tun
from snakeswan.io.udp import UdpSocket, family_of
from snakeswan.ipsec import (
    Acquire,
    Bypass,
    Deliver,
    Expired,
    Output,
    Policy,
    Processor,
    SaParams,
    SendIp,
    SendPacket,
    SendUdp,
)
from snakeswan.trace import Tracer
from snakeswan.wire.enums import ProtocolId

log = logging.getLogger("snakeswan.dataplane")


def _concrete(addrs: tuple[str, ...]) -> str | None:
    for a in addrs:
        try:
            return str(ipaddress.ip_address(a))
        except ValueError:
            continue
    return None


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
        self.processor = Processor(os.urandom, tracer=tracer)
        self.tun = Tun(config.daemon.tun)
        self.tun.configure(mtu=config.daemon.tun_mtu)
        self.routes = Routes(self.tun.name)
        self.raw = {ESP: RawIp(ESP), AH: RawIp(AH)}
        self.hdrincl = HeaderIncluded()
        for sock in self.raw.values():
            loop.add_reader(sock.fileno(), self._raw_readable, sock)
        loop.add_reader(self.tun.fileno(), self._tun_readable)
        self.children: dict[int, ChildSaInfo] = {}  # by inbound SPI
        self.acquires: list[Acquire] = []
        self.limits: list[Expired] = []
        self.unrouted = 0
        self._policies: set[tuple[str, str]] = set()
        self._inbound_seen: dict[int, int] = {}
        self.on_events: Callable[[], None] = lambda: None
        log.info("data plane on %s (MTU %d)", self.tun.name, config.daemon.tun_mtu)

    def close(self) -> None:
        self.loop.remove_reader(self.tun.fileno())
        for sock in self.raw.values():
            self.loop.remove_reader(sock.fileno())
            sock.close()
        self.hdrincl.close()
        try:
            self.routes.remove_all()
        except LocalError as e:
            log.info("route clean-up: %s", e)
        self.tun.close()

    # ---- policies -----------------------------------------------------------------------------

    def _selectors(
        self, conn: ConnectionConfig, child: ChildConfig, local: str | None, remote: str | None
    ) -> tuple[list[TrafficSelector], list[TrafficSelector]]:
        local = local or _concrete(conn.local_addrs)
        remote = remote or _concrete(conn.remote_addrs)
        lts = [t.resolve(ipaddress.ip_address(local)) if t.dynamic and local else t for t in child.local_ts]
        rts = [
            t.resolve(ipaddress.ip_address(remote)) if t.dynamic and remote else t for t in child.remote_ts
        ]
        return [t for t in lts if not t.dynamic], [t for t in rts if not t.dynamic]

    def protect(
        self, conn: ConnectionConfig, child: ChildConfig, local: str | None = None, remote: str | None = None
    ) -> None:
        """The protect policy and the routes of one child (idempotent)."""
        key = (conn.name, child.name)
        if key in self._policies:
            return
        lts, rts = self._selectors(conn, child, local, remote)
        if not lts or not rts:
            log.warning("%s/%s: no concrete traffic selectors, no policy", *key)
            return
        for l_ts in lts:
            for r_ts in rts:
                self.processor.add_policy(Policy(l_ts, r_ts, "protect", key))
        src = local_address_in(lts)
        self.routes.add_selectors(rts, src=src, owner=f"{conn.name}/{child.name}")
        self._policies.add(key)
        log.info(
            "policy %s/%s: %s === %s via %s",
            *key,
            ",".join(map(str, lts)),
            ",".join(map(str, rts)),
            self.tun.name,
        )

    def install_traps(self) -> None:
        for conn in self.config.connections:
            for child in conn.children:
                if child.start_action == "trap":
                    self.protect(conn, child)

    # ---- SAs ------------------------------------------------------------------------------------

    def _params(self, spi: int, keys: SaKeys, info: ChildSaInfo, child: ChildConfig) -> SaParams:
        local_ts = (TrafficSelector.from_text(info.local_ts),)
        remote_ts = (TrafficSelector.from_text(info.remote_ts),)
        hard_bytes = info.life_kilobytes * 1024 if info.life_kilobytes else child.life_bytes
        return SaParams(
            spi=spi,
            protocol=ESP
            if info.protocol == ProtocolId.IPSEC_ESP
            else AH,  # ISAKMP protocol id -> IP protocol
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
        )

    def child_up(self, info: ChildSaInfo, now: float) -> None:
        conn = self.config.connection(info.conn)
        child = conn.child(info.child)
        self.protect(conn, child, info.local[0], info.remote[0])
        inbound = self._params(info.spi_in, info.keys_in, info, child)
        outbound = self._params(info.spi_out, info.keys_out, info, child)
        self.children[info.spi_in] = info
        self._emit(self.processor.install(inbound, outbound, (info.conn, info.child), now=now))

    def child_down(self, spi_in: int) -> None:
        if self.children.pop(spi_in, None) is not None:
            self.processor.remove(spi_in)
            self._inbound_seen.pop(spi_in, None)

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

    def inbound_activity(self) -> list[int]:
        """IKE SA ids whose IPsec SAs received packets since the last call (DPD: the peer lives)."""
        alive = []
        for spi_in, info in self.children.items():
            n = self.processor.counters(spi_in, "in").get("packets", 0)
            if n != self._inbound_seen.get(spi_in, 0):
                self._inbound_seen[spi_in] = n
                alive.append(info.ike_sa)
        return alive

    # ---- packets --------------------------------------------------------------------------------

    def _tun_readable(self) -> None:
        now = self.loop.time()
        outbound = self.processor.outbound
        for packet in self.tun.read(64):
            self._emit(outbound(packet, now))
        self._drain_events()

    def _raw_readable(self, sock: RawIp) -> None:
        now = self.loop.time()
        for p in sock.receive(64):
            data = p.packet if p.protocol == AH and p.packet else p.data
            self._emit(self.processor.inbound(data, p.protocol, p.src, p.dst, now))
        self._drain_events()

    def esp_in_udp(self, data: bytes, src: tuple[str, int], dst: tuple[str, int], now: float) -> None:
        self._emit(self.processor.inbound(data, ESP, src[0], dst[0], now, udp=(src[1], dst[1])))
        self._drain_events()

    def _emit(self, outputs: list[Output]) -> None:
        for o in outputs:
            if isinstance(o, SendUdp):
                sock = self._udp(family_of(o.src), o.sport)
                if sock is not None:
                    sock.send(o.payload, o.src, (o.dst, o.dport), ike=False)
            elif isinstance(o, SendIp):
                self.raw[o.protocol].send(o.payload, o.dst, src=o.src)
            elif isinstance(o, Deliver):
                self.tun.write(o.ip_packet)
            elif isinstance(o, SendPacket):
                self.hdrincl.send(o.packet, o.dst)
            elif isinstance(o, Bypass):
                self.unrouted += 1  # routed into the TUN but no policy covers it: dropped

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
