"""The data plane's whole surface, sans-I/O, shaped like the IKE engine (DESIGN.md).

Packets and time in, :mod:`~snakeswan.ipsec.events` outputs and events out; the driver owns the
TUN device, the raw/UDP sockets, the clock and the random source (``rng`` makes the IVs)::

    p = Processor(os.urandom)
    p.add_policy(Policy(local_ts, remote_ts, "protect", key=("conn", "child")))
    p.outbound(packet_from_tun, now)   # -> [SendIp | SendUdp | SendPacket | Bypass]; Acquire event
    p.install(inbound_params, outbound_params, ("conn", "child"), now=now)  # -> queued packets out
    p.inbound(esp_bytes, 50, src, dst, now, udp=(sport, dport))  # -> [Deliver]
    p.handle_timer(now); p.get_timer(); p.next_event()  # Acquire / Expired

Inbound order (RFC 4303 3.4): SA by SPI (drop ``unknown_spi``), replay check (``replay``), ICV
and decryption (``icv``), replay window update, padding (``padding``), the inner packet against the
SA's selectors (``policy``). Other drop reasons: ``malformed``, ``dummy`` (next header 59),
``discard`` (discard policy), ``queue_full`` (oldest queued packet pushed out), ``too_big``,
``internal_error`` (a bug; traced). Nothing raises out of :meth:`Processor.inbound`.
Drops are counted (``drops`` and per SA) and traced at the 1st, 2nd, 4th, 8th... of each reason.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable, Iterable

from snakeswan.errors import LocalError
from snakeswan.ipsec import ah as ah_mod
from snakeswan.ipsec.esp import encapsulate, open_esp, strip_trailer
from snakeswan.ipsec.events import (
    Acquire,
    Bypass,
    Deliver,
    DeliverVia,
    Event,
    Expired,
    Handoff,
    Output,
    SendIp,
    SendPacket,
    SendUdp,
)
from snakeswan.ipsec.packet import (
    IPPROTO_NONE,
    Drop,
    FiveTuple,
    address_text,
    build_ipv4_header,
    build_ipv6_header,
    five_tuple,
    inner_version,
    selector_bytes,
    split_transport,
    transport_header,
)
from snakeswan.ipsec.sad import SEQ_SOFT, PairCounters, Sad, SaParams, SecurityAssociation
from snakeswan.ipsec.spd import BYPASS, DISCARD, ChildState, Policy, Spd, matches
from snakeswan.ipsec.udpencap import fix_checksum
from snakeswan.trace import Tracer

__all__ = ["Processor"]

_ESP = 50
_AH = 51
_SPI_SEQ = struct.Struct("!II")
_ACCEPTED_LIMIT = 1 << 17


class _Elsewhere(Exception):
    """An inbound packet of an SA another worker owns (caught where it is handed off)."""

    def __init__(self, owner: int) -> None:
        self.owner = owner


class Processor:
    """SPD + SAD + ESP/AH. See the module docstring."""

    def __init__(
        self,
        rng: Callable[[int], bytes],
        *,
        tracer: Tracer | None = None,
        queue_limit: int = 64,
        acquire_interval: float = 30.0,
        outer_headers: bool = False,
        worker: int = 0,
    ) -> None:
        self.worker = worker  # which data-plane worker this is: SAs owned by others are handed off
        self._rng = rng
        self._tracer = tracer
        self._acquire_interval = acquire_interval
        self._outer_headers = outer_headers
        self.spd = Spd(queue_limit)
        self.sad = Sad()
        self.drops: dict[str, int] = {}
        self._events: deque[Event] = deque()
        self._pairs: dict[int, tuple[SecurityAssociation, SecurityAssociation]] = {}  # by inbound SPI
        self._by_key: dict[tuple[str, str], dict[int, None]] = {}  # policy key -> inbound SPIs, in order
        self._unstarted: list[SecurityAssociation] = []
        # rekeys we initiated: (when, policy key, new outbound SA) the child switches to then
        self._switches: list[tuple[float, tuple[str, str], SecurityAssociation]] = []
        self._now: float | None = None
        self._ip_id = 0
        # inbound SPI -> (SA, selector bytes of the last inner packet it accepted): see _accept
        self._accepted: dict[int, tuple[SecurityAssociation, bytes]] = {}
        self._moved: list[SecurityAssociation] = []  # SAs that counted packets: take_moved()

    # --- commands -----------------------------------------------------------------------------
    def add_policy(self, policy: Policy) -> None:
        self.spd.add(policy)

    def remove_policies(self, key: tuple[str, str]) -> int:
        """Remove the policies of child ``key`` (its SAs stay until :meth:`remove`)."""
        return self.spd.remove(key)

    def install(
        self,
        inbound: SaParams,
        outbound: SaParams,
        policy_key: tuple[str, str],
        *,
        now: float | None = None,
        ah: tuple[SaParams, SaParams] | None = None,
        switch_after: float = 0.0,
        owner: int = 0,
    ) -> list[Output]:
        """Install both directions of a child; the newest outbound SA of a key is the one used (make
        before break). Returns the packets queued while the SA was negotiated, now protected.
        ``now`` starts the lifetimes (default: the last ``now`` seen, or the next one). ``ah``:
        (inbound, outbound) AH SAs making an AH+ESP bundle with the ESP ``inbound``/``outbound``:
        ESP then AH (transport, over the ESP packet) outbound; inbound ESP must come inside that AH.
        ``switch_after``: a rekey we initiated keeps sending on the SA in use this many seconds
        more (the peer installs the new SA when our last Quick Mode message reaches it; a packet
        on the new SA that overtakes it would be lost), or until the peer sends on the new pair
        (it has it then); the new SA receives at once.
        ``owner``: the data-plane worker that processes the pair's packets; another worker's
        processor holds the pair too (its policy, lifetimes and switches) but hands its packets
        to the owner (:class:`Handoff`), the queued ones included.
        """
        if inbound.spi in self._pairs:
            raise LocalError(f"inbound SPI {inbound.spi:#010x} is installed already")
        sa_in = SecurityAssociation(inbound, "in", policy_key)
        sa_out = SecurityAssociation(outbound, "out", policy_key)
        added: list[SecurityAssociation] = []
        bundled = [] if ah is None else [SecurityAssociation(ah[0], "in", policy_key)]
        bundled += [] if ah is None else [SecurityAssociation(ah[1], "out", policy_key)]
        try:
            for sa in (sa_in, sa_out, *bundled):
                self.sad.add(sa)
                added.append(sa)
        except LocalError:
            for sa in added:
                self.sad.discard(sa)
            raise
        if bundled:
            if sa_in.esp is None or bundled[0].ah is None or not bundled[0].transport:
                raise LocalError("an AH+ESP bundle is an ESP SA pair and a transport-mode AH SA pair")
            sa_in.bundle, bundled[0].bundle = bundled[0], sa_in
            sa_out.bundle, bundled[1].bundle = bundled[1], sa_out
        self._pairs[inbound.spi] = (sa_in, sa_out)
        for sa in (sa_in, sa_out, *bundled):
            sa.pair_in = inbound.spi
            sa.owner = owner
        if len(self._moved) > 4 * len(self._pairs) + 64:  # nobody takes them: keep the live ones
            self._moved = [sa for sa in self._moved if sa.pair_in in self._pairs]
        start = now if now is not None else self._now
        for sa in (sa_in, sa_out, *bundled):
            if start is not None:
                sa.start(start)
                self.sad.schedule(sa)
            else:
                self._unstarted.append(sa)
        self._by_key.setdefault(policy_key, {})[inbound.spi] = None
        child = self.spd.child(policy_key)
        if switch_after > 0 and child.sa is not None and start is not None:
            self._switches.append((start + switch_after, policy_key, sa_out))
        else:
            child.sa = sa_out
        child.acquired_at = None
        queued = list(child.queue)
        child.queue.clear()
        out: list[Output] = []
        if owner != self.worker:
            return [Handoff(owner, packet) for packet in queued]
        for packet in queued:
            if sa_out.interface is not None and not _inside(sa_out, five_tuple(packet)):
                self._drop("policy", sa_out)  # route-based: what was negotiated bounds it
                continue
            try:
                out.append(self._protect(sa_out, packet, packet[0] >> 4))
            except Drop as exc:
                self._drop(exc.reason, sa_out)
            if sa_out.spi not in self.sad.outbound:  # a volume limit hit while flushing
                break
        return out

    def pair(self, spi_in: int) -> tuple[SecurityAssociation, SecurityAssociation] | None:
        """The (inbound, outbound) SAs installed with inbound SPI ``spi_in``."""
        return self._pairs.get(spi_in)

    def remove(self, spi_in: int) -> None:
        """Remove the child SA pair installed with inbound SPI ``spi_in`` (no-op if unknown)."""
        pair = self._pairs.pop(spi_in, None)
        if pair is None:
            return
        self._accepted.pop(spi_in, None)
        keyed = self._by_key.get(pair[1].policy_key)
        if keyed is not None:
            keyed.pop(spi_in, None)
            if not keyed:
                del self._by_key[pair[1].policy_key]
        for sa in pair:
            self.sad.discard(sa)
            if sa.bundle is not None:
                self.sad.discard(sa.bundle)
        self._retarget(pair[1])

    def prefer(self, spi_in: int) -> None:
        """The child of pair ``spi_in`` sends on it from now on, not on the pair installed last (a
        rekey collision's survivor). If that pair is a rekey we initiated whose switch is still
        pending (``install(switch_after=)``), the switch stays as it was: the peer may not have it
        yet. Other pending switches of the child are cancelled. No-op if the pair is unknown."""
        pair = self._pairs.get(spi_in)
        if pair is None:
            return
        sa_out = pair[1]
        key = sa_out.policy_key
        pending = any(sa is sa_out for _, k, sa in self._switches if k == key)
        self._switches = [w for w in self._switches if w[1] != key or w[2] is sa_out]
        child = self.spd.children.get(key)
        if child is not None and not pending and sa_out.spi in self.sad.outbound:
            child.sa = sa_out

    def _retarget(self, gone: SecurityAssociation) -> None:
        """After outbound SA ``gone`` left, its child uses the newest other outbound SA, if any."""
        child = self.spd.children.get(gone.policy_key)
        if child is None or child.sa is not gone:
            return
        child.sa = None
        for spi_in in reversed(self._by_key.get(gone.policy_key, {})):
            sa_out = self._pairs[spi_in][1]
            if sa_out.spi in self.sad.outbound:
                child.sa = sa_out
                break

    # --- timers and events --------------------------------------------------------------------
    def get_timer(self) -> float | None:
        return self.sad.deadline()

    def handle_timer(self, now: float) -> None:
        self._tick(now)
        for event in self.sad.expire_time(now):
            self._expired(event)

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def counters(self, spi: int, direction: str | None = None) -> dict[str, int]:
        """Counters of the SA with this SPI (``direction`` "in" or "out"; None: inbound first):
        bytes, packets, seq (out) or replay_top (in), drop_<reason>. Empty if there is none."""
        if direction == "out":
            sa = self.sad.outbound.get(spi)
        elif direction == "in":
            sa = self.sad.inbound.get((spi, 50)) or self.sad.inbound.get((spi, 51))
        else:
            sa = self.sad.find(spi)
        return sa.counters() if sa is not None else {}

    def take_moved(self) -> tuple[set[int], set[int]]:
        """The pairs (by inbound SPI) whose SAs counted packets since the last call: (those that
        received, those that sent). What the driver's once-a-second work (DPD's sign of life,
        counter checkpoints) needs, found without walking the idle SAs: each SA is put on a list
        by its first packet after a call, so this costs what moved, not what is installed."""
        received: set[int] = set()
        sent: set[int] = set()
        for sa in self._moved:
            sa.moved = False
            (received if sa.direction == "in" else sent).add(sa.pair_in)
        self._moved.clear()
        return received, sent

    def pair_counters(self, spi_in: int) -> PairCounters | None:
        """The counters of the pair with inbound SPI ``spi_in`` (what its owner reports)."""
        pair = self._pairs.get(spi_in)
        if pair is None:
            return None
        sa_in, sa_out = pair
        return PairCounters(
            sa_out.seq,
            sa_out.bytes,
            sa_out.packets,
            sa_in.replay.top,
            sa_in.replay.bitmap,
            sa_in.bytes,
            sa_in.packets,
            tuple(sa_in.drops.items()),
            tuple(sa_out.drops.items()),
        )

    def absorb(self, spi_in: int, counters: PairCounters) -> None:
        """Counters the pair's owner reported, into this processor's copy of it (the daemon's,
        which listings, DPD's sign of life and the checkpoints read); a direction whose counts
        changed is marked moved, as its own packets would have marked it (:meth:`take_moved`)."""
        pair = self._pairs.get(spi_in)
        if pair is None:
            return
        sa_in, sa_out = pair
        if counters.packets_in != sa_in.packets:
            self._mark_moved(sa_in)
        if counters.seq_out != sa_out.seq:
            self._mark_moved(sa_out)
        sa_out.seq, sa_out.bytes, sa_out.packets = counters.seq_out, counters.bytes_out, counters.packets_out
        sa_in.bytes, sa_in.packets = counters.bytes_in, counters.packets_in
        sa_in.replay.top, sa_in.replay.bitmap = counters.replay_top, counters.replay_bitmap
        sa_in.drops, sa_out.drops = dict(counters.drops_in), dict(counters.drops_out)

    def _mark_moved(self, sa: SecurityAssociation) -> None:
        if not sa.moved:
            sa.moved = True
            self._moved.append(sa)

    def _tick(self, now: float) -> None:
        self._now = now
        if self._switches and self._switches[0][0] <= now:
            self._switch(now)
        if self._unstarted:
            for sa in self._unstarted:
                sa.start(now)
                self.sad.schedule(sa)
            self._unstarted.clear()

    def _switch(self, now: float) -> None:
        """Deferred switches that are due: the child sends on its new SA (if it is still there)."""
        due = [w for w in self._switches if w[0] <= now]
        self._switches = [w for w in self._switches if w[0] > now]
        for _, key, sa_out in due:
            child = self.spd.children.get(key)
            if child is not None and sa_out.spi in self.sad.outbound:
                child.sa = sa_out

    def _peer_switched(self, sa_in: SecurityAssociation) -> None:
        """The peer sends on ``sa_in``: it has the pair installed, so a deferred switch to the
        pair's outbound SA is made now (vpnc, for one, takes a rekey's new pair at once and drops
        the old one: every packet we sent on the old one until the switch was due was lost)."""
        pair = self._pairs.get(sa_in.pair_in)
        if pair is None:
            return
        sa_out = pair[1]
        for i, (_, key, waiting) in enumerate(self._switches):
            if waiting is sa_out:
                del self._switches[i]
                child = self.spd.children.get(key)
                if child is not None and sa_out.spi in self.sad.outbound:
                    child.sa = sa_out
                return

    def _expired(self, event: Expired) -> None:
        self._events.append(event)
        if event.kind == "hard" and event.direction == "out":
            child = self.spd.children.get(event.policy_key)
            if child is not None and child.sa is not None and child.sa.spi == event.spi:
                self._retarget(child.sa)

    def _drop(self, reason: str, sa: SecurityAssociation | None = None, spi: int | None = None) -> None:
        """Count a drop (per SA too when ``sa`` is given); trace the 1st, 2nd, 4th, 8th... of each
        reason with the SPI of the SA, or the one the packet named (``spi``)."""
        count = self.drops[reason] = self.drops.get(reason, 0) + 1
        if sa is not None:
            sa.drop(reason)
            spi = sa.spi
        if self._tracer is not None and not count & (count - 1):
            shown = f"{spi:#010x}" if spi is not None else "-"
            self._tracer.emit("ipsec", "drop", reason=reason, count=count, spi=shown)

    # --- outbound -----------------------------------------------------------------------------
    def outbound(self, ip_packet: bytes, now: float) -> list[Output]:
        """A packet from the TUN device: protected, bypassed, queued (Acquire) or dropped."""
        if self._now != now:
            self._tick(now)
        out: list[Output] = []
        route = self._route(ip_packet, now, out)
        if route is not None:
            _child, sa, version = route
            if sa.owner != self.worker:
                return [Handoff(sa.owner, ip_packet)]
            try:
                out.append(self._protect(sa, ip_packet, version))
            except Drop as exc:
                self._drop(exc.reason, sa)
        return out

    def outbound_many(self, packets: Iterable[bytes], now: float) -> list[Output]:
        """:meth:`outbound` for each of ``packets``, in order. Packets in a row with the same
        selectors (the segments of one TCP super-packet) share one policy lookup: their header
        bytes that carry the selectors are compared instead."""
        if self._now != now:
            self._tick(now)
        out: list[Output] = []
        append, protect = out.append, self._protect
        key: bytes | None = None
        sa: SecurityAssociation | None = None
        child: ChildState | None = None
        version, worker, elsewhere = 0, self.worker, False
        for packet in packets:
            k = selector_bytes(packet)
            if k is None or k != key or child is None or child.sa is not sa:
                key = k
                route = self._route(packet, now, out)
                if route is None:
                    child = None
                    continue
                child, sa, version = route
                elsewhere = sa.owner != worker
            assert sa is not None
            if elsewhere:
                append(Handoff(sa.owner, packet))
                continue
            try:
                append(protect(sa, packet, version))
            except Drop as exc:
                self._drop(exc.reason, sa)
        return out

    def outbound_via(self, packets: Iterable[bytes], key: tuple[str, str], now: float) -> list[Output]:
        """Packets routed into a route-based child's own interface: that child's SA, whatever the
        SPD says (no policy of it is there); queued with an Acquire while it has none. What was
        negotiated still bounds them: a packet outside the SA's selectors is dropped (policy)."""
        if self._now != now:
            self._tick(now)
        out: list[Output] = []
        child = self.spd.child(key)
        for packet in packets:
            try:
                ft = five_tuple(packet)
            except Drop as exc:
                self._drop(exc.reason)
                continue
            sa = child.sa
            if sa is None:
                self._queue(child, packet, ft, now)
                continue
            if not _inside(sa, ft):
                self._drop("policy", sa)
                continue
            try:
                out.append(self._protect(sa, packet, ft[0]))
            except Drop as exc:
                self._drop(exc.reason, sa)
        return out

    def _route(
        self, packet: bytes, now: float, out: list[Output]
    ) -> tuple[ChildState, SecurityAssociation, int] | None:
        """The child, its outbound SA and the IP version for ``packet``; None when it is bypassed
        (appended to ``out``), discarded, queued for an SA still to be negotiated, or malformed."""
        try:
            ft = five_tuple(packet)
        except Drop as exc:
            self._drop(exc.reason)
            return None
        entry = self.spd.lookup(ft)
        if entry is None or entry.action == BYPASS:
            out.append(Bypass(packet))
            return None
        if entry.action == DISCARD:
            self._drop("discard")
            return None
        child = entry.child
        assert child is not None
        sa = child.sa
        if sa is None:
            self._queue(child, packet, ft, now)
            return None
        return child, sa, ft[0]

    def _queue(self, child: ChildState, packet: bytes, ft: FiveTuple, now: float) -> None:
        if len(child.queue) == child.queue.maxlen:
            self._drop("queue_full")  # the deque pushes the oldest out
        child.queue.append(packet)
        if child.acquired_at is None or now - child.acquired_at >= self._acquire_interval:
            child.acquired_at = now
            version, src, dst, proto, sport, dport = ft
            size = 4 if version == 4 else 16
            self._events.append(
                Acquire(
                    child.key,
                    version,
                    address_text(src.to_bytes(size, "big")),
                    address_text(dst.to_bytes(size, "big")),
                    proto,
                    sport,
                    dport,
                )
            )

    def _protect(self, sa: SecurityAssociation, packet: bytes, version: int) -> Output:
        seq = sa.seq + 1
        sa.seq = seq
        if not sa.moved:
            sa.moved = True
            self._moved.append(sa)
        esp = sa.esp
        if esp is not None:
            if sa.transport:
                header, proto, payload = split_transport(packet)
                data = encapsulate(esp, payload, proto, seq, self._rng, chained_iv=True)
            else:
                header = b""
                data = encapsulate(esp, packet, 4 if version == 4 else 41, seq, self._rng, chained_iv=True)
            out = (
                self._esp_output(sa, data, header)
                if sa.bundle is None
                else self._bundle_output(sa, data, header)
            )
        else:
            out = self._ah_output(sa, packet, seq)
        sa.packets += 1
        sa.bytes += len(packet)
        if sa.bytes >= sa.byte_check or seq >= SEQ_SOFT:
            event = self.sad.check_volume(sa)
            if event is not None:
                self._expired(event)
        return out

    def _esp_output(self, sa: SecurityAssociation, data: bytes, header: bytes) -> Output:
        if sa.encap:
            return SendUdp(sa.local_ip, sa.remote_ip, sa.local_port, sa.remote_port, data)
        if not self._outer_headers:
            return SendIp(_ESP, sa.local_ip, sa.remote_ip, data)
        if header:  # transport mode: the original header, protocol ESP
            return SendPacket(sa.local_ip, sa.remote_ip, transport_header(header, _ESP, len(data)) + data)
        if len(sa.local_packed) == 4:
            self._ip_id = (self._ip_id + 1) & 0xFFFF
            outer = build_ipv4_header(sa.local_packed, sa.remote_packed, _ESP, len(data), self._ip_id)
        else:
            outer = build_ipv6_header(sa.local_packed, sa.remote_packed, _ESP, len(data))
        return SendPacket(sa.local_ip, sa.remote_ip, outer + data)

    def _bundle_output(self, sa: SecurityAssociation, data: bytes, header: bytes) -> Output:
        """ESP ``data`` of an AH+ESP bundle as an IP packet, then AH (transport) over that packet."""
        ah_sa = sa.bundle
        assert ah_sa is not None
        if header:
            packet = transport_header(header, _ESP, len(data)) + data
        elif len(sa.local_packed) == 4:
            self._ip_id = (self._ip_id + 1) & 0xFFFF
            packet = build_ipv4_header(sa.local_packed, sa.remote_packed, _ESP, len(data), self._ip_id) + data
        else:
            packet = build_ipv6_header(sa.local_packed, sa.remote_packed, _ESP, len(data)) + data
        ah_sa.seq += 1
        ah_sa.packets += 1
        ah_sa.bytes += len(packet)
        return self._ah_output(ah_sa, packet, ah_sa.seq)

    def _ah_output(self, sa: SecurityAssociation, packet: bytes, seq: int) -> Output:
        codec = sa.ah
        assert codec is not None
        if sa.transport:
            data = ah_mod.encapsulate_transport(codec, packet, seq)
        else:
            self._ip_id = (self._ip_id + 1) & 0xFFFF
            data = ah_mod.encapsulate_tunnel(
                codec, packet, seq, sa.local_packed, sa.remote_packed, self._ip_id
            )
        return SendPacket(sa.local_ip, sa.remote_ip, data)

    # --- inbound ------------------------------------------------------------------------------
    def inbound(
        self,
        esp_or_ah: bytes,
        protocol: int,
        src: str,
        dst: str,
        now: float,
        *,
        udp: tuple[int, int] | None = None,
    ) -> list[Output]:
        """A protected packet from the network.

        ESP (``protocol`` 50): ``esp_or_ah`` is the ESP packet without the IP header (from a raw
        socket after the header, or a UDP 4500 payload without marker: ``udp`` = (source port,
        destination port)). AH (51): the complete IP packet, header included (for IPv6, whose raw
        sockets do not return it, rebuild it with ``packet.build_ipv6_header``).
        ``src``/``dst`` are the outer addresses, for diagnostics.
        """
        if self._now != now:
            self._tick(now)
        try:
            if protocol == _ESP:
                return self._inbound_esp(esp_or_ah)
            if protocol == _AH:
                return self._inbound_ah(esp_or_ah)
            raise Drop("malformed", f"IP protocol {protocol} is neither ESP nor AH")
        except _Elsewhere as exc:
            return [Handoff(exc.owner, esp_or_ah, inbound=True)]
        except Drop as exc:  # counted on its SA already, if it had one: the log line names the SPI
            self._drop(exc.reason, spi=_packet_spi(protocol, esp_or_ah))
        except Exception as exc:  # a bug: nothing escapes the data plane (principle 7)
            self._drop("internal_error")
            if self._tracer is not None:
                self._tracer.emit("ipsec", "internal_error", error=repr(exc), src=src, dst=dst)
        return []

    def inbound_esp_many(self, packets: Iterable[bytes], now: float) -> tuple[list[bytes], list[Output]]:
        """:meth:`inbound` for a batch of ESP packets (each as :meth:`inbound` takes ``esp_or_ah``
        with ``protocol`` 50), in order, without an output object per packet: (the inner packets
        for the shared TUN device, in order; the other outputs, route-based children's
        :class:`DeliverVia`). Drops are counted and traced as :meth:`inbound` does."""
        if self._now != now:
            self._tick(now)
        delivered: list[bytes] = []
        other: list[Output] = []
        append, open_packet = delivered.append, self._unwrap_esp
        for data in packets:
            try:
                sa, inner = open_packet(data, None)
                if sa.interface is None:
                    append(inner)
                else:
                    other.append(DeliverVia(inner, sa.interface))
            except Drop as exc:
                self._drop(exc.reason, spi=_packet_spi(_ESP, data))
            except _Elsewhere as exc:
                other.append(Handoff(exc.owner, data, inbound=True))
            except Exception as exc:  # a bug: nothing escapes the data plane (principle 7)
                self._drop("internal_error")
                if self._tracer is not None:
                    self._tracer.emit("ipsec", "internal_error", error=repr(exc))
        return delivered, other

    def _inbound_esp(self, data: bytes, via: SecurityAssociation | None = None) -> list[Output]:
        sa, inner = self._unwrap_esp(data, via)
        return [Deliver(inner)] if sa.interface is None else [DeliverVia(inner, sa.interface)]

    def _unwrap_esp(self, data: bytes, via: SecurityAssociation | None) -> tuple[SecurityAssociation, bytes]:
        """The SA and inner packet of an inbound ESP packet, checked and counted (module
        docstring's order); :class:`Drop` otherwise (counted on the SA)."""
        if len(data) < 8:
            raise Drop("malformed", "short ESP packet")
        spi, seq = _SPI_SEQ.unpack_from(data)
        sa = self.sad.inbound.get((spi, _ESP))
        if sa is None:
            raise Drop("unknown_spi", f"no inbound ESP SA with SPI {spi:#010x}")
        if sa.owner != self.worker:
            raise _Elsewhere(sa.owner)
        try:
            if sa.bundle is not via:  # an AH+ESP bundle's ESP counts only inside its own AH
                raise Drop("policy", "ESP of an AH+ESP bundle without its AH" if via is None else "wrong AH")
            if not sa.replay.check(seq):
                raise Drop("replay", f"sequence number {seq}")
            codec = sa.esp
            assert codec is not None
            plaintext = open_esp(codec, data)
            if plaintext is None:
                raise Drop("icv", f"ESP ICV mismatch, sequence number {seq}")
            sa.replay.update(seq)
            next_header, payload = strip_trailer(plaintext)
            if next_header == IPPROTO_NONE:
                raise Drop("dummy", "dummy packet (next header 59)")
            inner = self._inner(sa, next_header, payload)
            self._admit(sa, inner)
            return sa, inner
        except Drop as exc:
            sa.drop(exc.reason)
            raise

    def _inbound_ah(self, packet: bytes) -> list[Output]:
        _offset, spi, seq = ah_mod.peek(packet)
        sa = self.sad.inbound.get((spi, _AH))
        if sa is None:
            raise Drop("unknown_spi", f"no inbound AH SA with SPI {spi:#010x}")
        try:
            if not sa.replay.check(seq):
                raise Drop("replay", f"sequence number {seq}")
            codec = sa.ah
            assert codec is not None
            verified = ah_mod.verify(codec, packet)
            if verified is None:
                raise Drop("icv", f"AH ICV mismatch, sequence number {seq}")
            sa.replay.update(seq)
            if sa.bundle is not None:
                return self._inbound_bundle(sa, packet, verified)
            next_header, inner = ah_mod.strip(packet, verified, sa.transport)
            if not sa.transport and (not inner or inner_version(next_header) != inner[0] >> 4):
                raise Drop("malformed", f"tunnel-mode AH carrying next header {next_header}")
            return self._accept(sa, inner)
        except Drop as exc:
            sa.drop(exc.reason)
            raise

    def _inbound_bundle(
        self, sa: SecurityAssociation, packet: bytes, verified: tuple[int, int, int]
    ) -> list[Output]:
        """AH of an AH+ESP bundle verified: it must carry its bundle's ESP SA, which goes on."""
        next_header, esp = ah_mod.strip(packet, verified, False)
        esp_sa = sa.bundle
        assert esp_sa is not None
        if next_header != _ESP or len(esp) < 8 or int.from_bytes(esp[:4], "big") != esp_sa.spi:
            raise Drop("policy", f"AH of an AH+ESP bundle carrying protocol {next_header}, not its ESP SA")
        sa.packets += 1
        sa.bytes += len(packet)
        return self._inbound_esp(esp, via=sa)

    def _inner(self, sa: SecurityAssociation, next_header: int, payload: bytes) -> bytes:
        """The inner IP packet of a decrypted ESP payload."""
        if not sa.transport:
            if not payload or inner_version(next_header) != payload[0] >> 4:
                raise Drop("malformed", f"tunnel-mode ESP carrying next header {next_header}")
            return payload
        if sa.fixup is not None:
            payload = fix_checksum(payload, next_header, *sa.fixup)
        if len(sa.remote_packed) == 4:
            header = build_ipv4_header(sa.remote_packed, sa.local_packed, next_header, len(payload), 0)
        else:
            header = build_ipv6_header(sa.remote_packed, sa.local_packed, next_header, len(payload))
        return header + payload

    def _accept(self, sa: SecurityAssociation, inner: bytes) -> list[Output]:
        """:meth:`_admit`, then the inner packet delivered (to the child's own device if it has one)."""
        self._admit(sa, inner)
        return [Deliver(inner)] if sa.interface is None else [DeliverVia(inner, sa.interface)]

    def _admit(self, sa: SecurityAssociation, inner: bytes) -> None:
        """Selectors checked (source in remote_ts, destination in local_ts; :class:`Drop`
        ``policy``), the packet counted (and the SA's volume limits checked).

        The header bytes that decide the selectors of the last packet accepted on each SA are
        remembered: the next packet of the same flow (the common case) is compared, not parsed."""
        key = selector_bytes(inner)
        seen = self._accepted.get(sa.spi)
        if key is None or seen is None or seen[1] != key or seen[0] is not sa:
            version, src, dst, proto, sport, dport = five_tuple(inner)
            if not (
                matches(sa.remote_ranges, version, src, proto, sport)
                and matches(sa.local_ranges, version, dst, proto, dport)
            ):
                raise Drop("policy", "inner packet outside the SA's traffic selectors")
            if key is not None:
                # one entry per inbound SA (remove() drops it): the bound only catches SAs that
                # ended by a hard limit; 1024 made every packet miss on a hub with 10,000 busy SAs
                if len(self._accepted) >= _ACCEPTED_LIMIT:
                    self._accepted.clear()
                self._accepted[sa.spi] = (sa, key)
        sa.packets += 1
        sa.bytes += len(inner)
        if not sa.moved:  # the SA's first packet since the last take_moved()
            sa.moved = True
            self._moved.append(sa)
            if self._switches:
                self._peer_switched(sa)
        if sa.bytes >= sa.byte_check:
            event = self.sad.check_volume(sa)
            if event is not None:
                self._expired(event)


def _inside(sa: SecurityAssociation, ft: FiveTuple) -> bool:
    """An outbound packet lies within the SA's selectors (a route-based child's check)."""
    version, src, dst, proto, sport, dport = ft
    return matches(sa.local_ranges, version, src, proto, sport) and matches(
        sa.remote_ranges, version, dst, proto, dport
    )


def _packet_spi(protocol: int, data: bytes) -> int | None:
    """The SPI an inbound ESP or AH packet names, None if it is too short to name one."""
    if protocol == _ESP:
        return int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    try:
        return ah_mod.peek(data)[1]
    except Drop:
        return None
