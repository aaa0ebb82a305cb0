"""The sans-I/O IKEv1 engine: demultiplexes datagrams to ISAKMP SAs and their exchanges.

Surface (after aioquic's ``QuicConnection``): :meth:`Engine.receive_datagram`,
:meth:`Engine.handle_timer`, :meth:`Engine.get_timer`, :meth:`Engine.datagrams_to_send`,
:meth:`Engine.next_event`, and the commands :meth:`Engine.initiate`, :meth:`Engine.delete_ike`,
:meth:`Engine.delete_child`. It never reads a clock or the OS random source: ``now`` and ``rng`` are
passed in. No exception escapes it (DESIGN.md principle 7): a malformed packet is dropped and traced,
an unacceptable one answered with the right Notify, and anything unexpected traced as
``internal_error`` and dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from snakeswan.config.model import ChildConfig, Config, ConnectionConfig, first_address
from snakeswan.errors import AuthenticationError, DecodeError, LocalError, PeerError, SnakeswanError
from snakeswan.ike import (
    bundle,
    close_actions,
    crypt,
    demux,
    informational,
    linger,
    peers,
    pubkey_enc,
    renewal,
    revocation,
    unique,
)
from snakeswan.ike.aggressive_mode import AggressiveMode
from snakeswan.ike.context import Context, SpiAllocator
from snakeswan.ike.cookies import CookieJar
from snakeswan.ike.events import (
    Address,
    Datagram,
    Event,
    NegotiationFailed,
)
from snakeswan.ike.exchange import Exchange
from snakeswan.ike.fragments import Fragmenter, Reassembler
from snakeswan.ike.gate import Gate, GateHooks
from snakeswan.ike.info_received import InformationalHandler
from snakeswan.ike.leases import Leases
from snakeswan.ike.main_mode import MainMode
from snakeswan.ike.mismatch import psk_hint
from snakeswan.ike.quick_mode import QuickMode
from snakeswan.ike.retransmit import RetransmitPolicy
from snakeswan.ike.sa import IkeSa, IkeState
from snakeswan.ike.sa_table import SaTable
from snakeswan.ike.selectors import selector_pairs
from snakeswan.ike.teardown import Teardown
from snakeswan.ike.timers import EngineHooks, Timers
from snakeswan.ike.transaction import Transaction
from snakeswan.trace import Tracer
from snakeswan.wire.enums import ExchangeType, NotifyType, PayloadType, ProtocolId, name_of
from snakeswan.wire.message import Header, Message, decode_header, decode_message, summary
from snakeswan.wire.payloads import DeletePayload, NotifyPayload

_ZERO = bytes(8)
MAX_DONE_EXCHANGES = 16


class Engine:
    def __init__(
        self,
        config: Config,
        rng: Callable[[int], bytes],
        *,
        tracer: Tracer | None = None,
        keylog: bool = False,
        keepalive_interval: float | None = None,
    ) -> None:
        d = config.daemon
        self.config = config
        self._conns: tuple[Config, dict[str, ConnectionConfig]] = (config, {})
        self.ctx = Context(
            config=config,
            rng=rng,
            tracer=tracer or Tracer(),
            spis=SpiAllocator(rng),
            retransmit=RetransmitPolicy(d.retransmit_timeout, d.retransmit_base, d.retransmit_tries),
            keylog=keylog,
            nat_port=d.nat_port,
        )
        self.tracer = self.ctx.tracer
        self._cookies = CookieJar(rng)
        self.table = SaTable()  # every ISAKMP SA and the indexes to find them (ike/sa_table.py)
        self._teardown = Teardown(
            self.ctx,
            self.table,
            self.initiate,
            self._remote_access_failed,
        )
        hooks = EngineHooks(
            sas=lambda: list(self.table),
            sa=self.table.get,
            conn_sas=self.table.of_conn,
            same_ids=self.table.with_ids,
            give_up=self._teardown.give_up,
            delete_ike=self.delete_ike,
            remove_sa=self._teardown.remove_sa,
            remove_child=self._teardown.remove_child,
            drop_exchange=self._teardown.drop_exchange,
            start_phase1=lambda conn, ours, theirs, now: self._start_phase1(
                conn, ours, theirs, now, initial_contact=False
            ),
            start_quick_mode=self._start_quick_mode,
            remote_access_failed=self._remote_access_failed,
        )
        # RFC 3948 2.3: NAT-T keepalives from behind a NAT ([daemon] keep_alive, 20 s by default)
        self.timers = Timers(self.ctx, hooks, keepalive_interval or config.daemon.keep_alive)
        self._teardown.timers = self.timers
        self._info = InformationalHandler(self.ctx, hooks, self.timers)
        self.leases = Leases(config.pools)  # virtual IPs handed out by Mode Config (gateway)
        # OCSP and XAUTH / Mode Config between phase 1 and Quick Mode (ike/gate.py)
        self.gate = Gate(
            self.ctx,
            self.table,
            self.timers,
            self.leases,
            GateHooks(self._guard, self._after, self._trace_received, self.delete_ike),
        )
        # IKE fragmentation (ike/fragments.py): outgoing messages cut, incoming fragments joined
        self._fragmenter = Fragmenter(
            d.fragment_size,
            d.nat_port,
            lambda i, r: self.table.by_cookies(i, r) or self.table.by_cookies(i, _ZERO),
        )
        self.reassembler = Reassembler()

    # ---- public surface -----------------------------------------------------------------------

    def datagrams_to_send(self, now: float) -> list[Datagram]:
        out, self.ctx.outbox = self.ctx.outbox, []
        return self._fragmenter.outgoing(out, self.tracer)

    def next_event(self) -> Event | None:
        return self.ctx.events.popleft() if self.ctx.events else None

    def get_timer(self) -> float | None:
        return self.timers.due()

    def handle_timer(self, now: float) -> None:
        self.timers.fire(now)

    @property
    def ike_sas(self) -> list[IkeSa]:
        return list(self.table)

    def reconfigure(self, config: Config) -> None:
        """Use ``config`` from now on; SAs under way keep the connection they were made for."""
        self.config = config
        self.ctx.config = config
        self.leases.configure(config.pools)

    def initiate(
        self, conn_name: str, child_name: str | None = None, now: float = 0.0, *, local: str | None = None
    ) -> int:
        """Start (or reuse) an ISAKMP SA for ``conn_name`` and negotiate ``child_name`` (or all
        children) under it. ``local`` is our address when the connection names none (the driver
        asks the routing table). Returns the IKE SA's unique id. Raises LocalError for unknown names."""
        conn = self._connection(conn_name)
        if conn is None:
            raise LocalError(f"no connection named {conn_name!r}")
        children = [child_name] if child_name else [c.name for c in conn.children]
        for name in children:
            try:
                conn.child(name)
            except KeyError:
                raise LocalError(f"connection {conn_name!r} has no child {name!r}") from None
        mine = self.table.of_conn(conn.name)
        for sa in sorted(mine, key=lambda s: s.state is not IkeState.ESTABLISHED):
            if sa.state is not IkeState.DELETED:
                self.timers.touch(sa)
                sa.pending_children += children
                self._start_pending(sa, now)
                return sa.unique_id
        ours, theirs = self._initiator_addresses(conn, local)
        first = unique.sends_initial_contact(conn.unique, self.table.peer_sas(theirs[0]))
        sa = self._start_phase1(conn, ours, theirs, now, initial_contact=first, children=children)
        return sa.unique_id

    def _connection(self, name: str) -> ConnectionConfig | None:
        """By name, from a dict made once per configuration (a load generator has 25,000)."""
        of, by_name = self._conns
        if of is not self.config or len(by_name) != len(self.config.connections):
            by_name = {c.name: c for c in self.config.connections}
            self._conns = (self.config, by_name)
        return by_name.get(name)

    def _start_phase1(
        self,
        conn: ConnectionConfig,
        ours: Address,
        theirs: Address,
        now: float,
        *,
        initial_contact: bool,
        children: list[str] | None = None,
    ) -> IkeSa:
        """A new ISAKMP SA we initiate: Main or Aggressive Mode message 1 goes out."""
        if ours[1] == self.ctx.nat_port:  # a renewal after a NAT float starts again on port 500
            ours, theirs = (ours[0], self.config.daemon.port), (theirs[0], conn.remote_port)
        sa = self._new_sa(True, self._cookies.make(ours, theirs, _ZERO, now), ours, theirs)
        sa.conn = conn
        sa.pending_children = list(children or [])
        ex: MainMode | AggressiveMode = (
            AggressiveMode(sa, self.ctx) if conn.aggressive else MainMode(sa, self.ctx)
        )
        ex.p1.initial_contact = initial_contact
        sa.phase1 = ex
        self.table.add_initiator(sa)
        self.table.index(sa)
        self.tracer.emit("ike", "initiate", sa=sa.unique_id, conn=conn.name, mode=ex.name, remote=theirs)
        self._guard(sa, lambda: ex.start(now), ex, now)
        return sa

    def delete_ike(self, sa_id: int, now: float = 0.0, reason: str = "deleted locally") -> None:
        """Send Delete for the SA's IPsec SAs and for itself, and forget all of them."""
        sa = self.table.get(sa_id)
        if sa is None:
            raise LocalError(f"no IKE SA {sa_id}")
        if sa.state is IkeState.ESTABLISHED:
            for child in list(sa.children):
                informational.send(sa, self.ctx, list(bundle.delete_payloads(child)))
            informational.send(
                sa, self.ctx, [DeletePayload(ProtocolId.ISAKMP, (sa.icookie + sa.rcookie,), 16)]
            )
        self._teardown.remove_sa(sa, reason, now=now)

    def forget_ike(self, sa_id: int, now: float = 0.0, reason: str = "forgotten") -> None:
        """Forget the SA and its IPsec SAs without telling the peer (no Delete): another node of a
        cluster carries them on (daemon/cluster.py). Events as for a local delete."""
        sa = self.table.get(sa_id)
        if sa is None:
            raise LocalError(f"no IKE SA {sa_id}")
        self._teardown.remove_sa(sa, reason, now=now, quiet=True)

    def delete_child(self, sa_id: int, spi_in: int, now: float = 0.0) -> None:
        sa = self.table.get(sa_id)
        child = next((c for c in sa.children if c.spi_in == spi_in), None) if sa else None
        if sa is None or child is None:
            raise LocalError(f"no IPsec SA with inbound SPI {spi_in:08x} on IKE SA {sa_id}")
        self.timers.touch(sa)
        informational.send(sa, self.ctx, list(bundle.delete_payloads(child)))
        self._teardown.remove_child(sa, child.spi_in, "deleted locally", close_actions.LOCAL, now)

    # ---- receiving ----------------------------------------------------------------------------

    def receive_datagram(self, data: bytes, src: Address, dst: Address, now: float) -> None:
        try:
            self._receive(data, src, dst, now)
        except DecodeError as e:
            self.tracer.emit("ike", "drop", reason=str(e), src=src)
        except Exception as e:
            self.tracer.emit("ike", "internal_error", error=repr(e), src=src)

    def _receive(self, data: bytes, src: Address, dst: Address, now: float) -> None:
        header = decode_header(data)
        if header.next_payload == PayloadType.FRAGMENT:
            if header.rcookie != _ZERO and self.table.lookup(header.icookie, header.rcookie, src) is None:
                raise DecodeError("unknown cookies", 0, "fragment")
            whole = self.reassembler.add(data, src, now)
            if whole is None:
                return
            data, header = whole, decode_header(whole)
            self.tracer.emit("ike", "reassembled", size=len(data), src=src)
        sa = self.table.lookup(header.icookie, header.rcookie, src)
        if sa is not None:
            self.timers.touch(sa)  # whatever happens to it now, its timers are looked at again
        if sa is None:
            if header.rcookie == _ZERO and header.exchange in (
                ExchangeType.IDENTITY_PROTECTION,
                ExchangeType.AGGRESSIVE,
            ):
                self._new_responder(header, data, src, dst, now)
            else:
                self.tracer.emit(
                    "ike", "drop", reason="unknown cookies", icookie=header.icookie, rcookie=header.rcookie
                )
            return
        if (src, dst) != (sa.remote, sa.local) and not demux.may_float(sa, src, dst, self.ctx.nat_port):
            self.tracer.emit(
                "ike", "drop", reason="wrong address for this SA", sa=sa.unique_id, src=src, dst=dst
            )
            return
        if header.exchange == ExchangeType.INFORMATIONAL:
            self._info.handle(sa, data, header, now)
            renewal.check_volume(sa, now)
            return
        ex = demux.exchange_for(sa, header)
        if ex is None:
            if header.message_id in sa.done_mids:  # a late copy of a completed exchange (ike/linger.py)
                self.tracer.emit(
                    "ike", "drop", reason="exchange already complete", sa=sa.unique_id, mid=header.message_id
                )
            elif header.exchange == ExchangeType.QUICK_MODE and sa.state is IkeState.ESTABLISHED:
                self._new_quick_mode(sa, header, data, now)
            elif header.exchange == ExchangeType.TRANSACTION and sa.state is IkeState.ESTABLISHED:
                self.gate.new_transaction(sa, header, data, now)
            else:
                self.tracer.emit(
                    "ike",
                    "drop",
                    reason="phase 1 not complete"
                    if header.exchange in (ExchangeType.QUICK_MODE, ExchangeType.TRANSACTION)
                    else "no exchange for this message",
                    sa=sa.unique_id,
                    exchange=name_of(ExchangeType, header.exchange),
                    mid=header.message_id,
                )
            return
        if ex.retx.received(data):
            self.tracer.emit("ike", "duplicate", sa=sa.unique_id, exchange=ex.name, mid=header.message_id)
            reply = ex.retx.reply_to_duplicate()
            if reply is not None:
                self.ctx.send(reply, sa.local, sa.remote)
            return
        if isinstance(ex, QuickMode) and ex.other_form(data, now):
            return  # the peer's QM1 (or QM2) in another form, answered (ike/qm_forms.py)
        if ex.done:
            if not ex.late(data, now):
                self.tracer.emit(
                    "ike", "drop", reason="exchange already complete", sa=sa.unique_id, exchange=ex.name
                )
            return
        self._process(sa, ex, header, data, src, dst, now)

    def _process(
        self, sa: IkeSa, ex: Exchange, header: Header, data: bytes, src: Address, dst: Address, now: float
    ) -> None:
        """Decrypt and hand a message to its exchange. Addresses (NAT-T float) and the responder's
        cookie (in its first answer) are taken from the message only if it is accepted."""
        old = (sa.local, sa.remote, sa.rcookie)
        sa.local, sa.remote = dst, src
        rcookie = header.rcookie
        learn_cookie = sa.initiator and sa.rcookie == _ZERO and rcookie != _ZERO
        sa.rcookie = rcookie if learn_cookie else sa.rcookie

        def run() -> None:
            try:
                msg, ciphertext = crypt.open_message(sa, data)
            except crypt.GarbledBody as e:
                if ex is sa.phase1:
                    raise AuthenticationError(
                        NotifyType.AUTHENTICATION_FAILED,
                        f"phase 1 message does not decrypt ({e.what}): "
                        f"{pubkey_enc.garbled_hint(ex) or 'wrong PSK?'}{psk_hint(ex)}",
                    ) from e
                raise
            self._trace_received(sa, ex, msg)
            ex.handle(msg, ciphertext, data, now)

        if not self._guard(sa, run, ex, now):
            if sa.state is not IkeState.DELETED:
                sa.local, sa.remote, sa.rcookie = old
        else:
            self.timers.alive(sa, now)
        if (
            learn_cookie
            and sa.state is not IkeState.DELETED
            and sa.rcookie != _ZERO
            and sa.unique_id in self.table.by_id
        ):
            self.table.learn_rcookie(sa)

    def _guard(
        self, sa: IkeSa, action: Callable[[], None], ex: Exchange | None, now: float, *, first: bool = False
    ) -> bool:
        """Run ``action``. A message that fails authentication, or an unacceptable phase 1 message
        on an SA not yet authenticated (anybody may have forged it), is dropped and counted
        (:meth:`_reject`); any other PeerError ends the exchange with its Notify. ``first``: the
        action is a responder's reaction to the first message of a new SA (nothing to protect)."""
        try:
            action()
        except DecodeError as e:
            self.tracer.emit("ike", "drop", reason=str(e), sa=sa.unique_id)
            return False
        except AuthenticationError as e:
            self._reject(sa, ex, e, now)
            return False
        except PeerError as e:
            if not first and ex is not None and ex is sa.phase1 and sa.state is IkeState.CONNECTING:
                self._reject(sa, ex, e, now)
            else:
                self._fail(sa, ex, e, now)
            return False
        except SnakeswanError as e:
            self._fail(sa, ex, PeerError(NotifyType.NO_PROPOSAL_CHOSEN, str(e)), now)
            return False
        self._after(sa, now)
        return True

    def _reject(self, sa: IkeSa, ex: Exchange | None, e: PeerError, now: float) -> None:
        """Drop a bad message nothing authenticates; the exchange goes on (a forged message must not
        end it) until the real one comes or it times out. In phase 1 the peer is told, so that a
        peer with another pre-shared key gives up at once instead of at its timeout."""
        if ex is None:
            self._fail(sa, ex, e, now)
            return
        ex.rejected += 1
        ex.last_rejection = e
        self.tracer.emit(
            "ike",
            "message_rejected",
            sa=sa.unique_id,
            exchange=ex.name,
            notify=name_of(NotifyType, e.notify),
            reason=e.what,
            count=ex.rejected,
        )
        if ex is sa.phase1 and isinstance(e, AuthenticationError):
            spi = sa.icookie + sa.rcookie
            informational.send(sa, self.ctx, [NotifyPayload(e.notify, ProtocolId.ISAKMP, spi, e.data)])

    def _fail(self, sa: IkeSa, ex: Exchange | None, e: PeerError, now: float) -> None:
        name = ex.name if ex else "?"
        self.tracer.emit(
            "ike", "exchange_failed", sa=sa.unique_id, exchange=name, notify=e.notify, reason=e.what
        )
        self.ctx.emit(NegotiationFailed(sa.unique_id, sa.name, name, e.what, e.notify))
        spi = sa.icookie + sa.rcookie
        informational.send(sa, self.ctx, [NotifyPayload(e.notify, ProtocolId.ISAKMP, spi, e.data)])
        if ex is None or ex is sa.phase1:
            self._teardown.remove_sa(sa, f"{name} failed: {e.what}", quiet=True)
        else:
            self._teardown.drop_exchange(sa, ex)

    def _after(self, sa: IkeSa, now: float) -> None:
        linger.settle(sa, now)  # completed exchanges: forgotten now, or after the peer's budget
        self.timers.touch(sa)
        self.timers.after(sa, now)
        if sa.state is not IkeState.DELETED:
            self.table.index(sa)
            if sa.half_open_until is not None and sa.phase1 is not None and sa.phase1.answered:
                sa.half_open_until = None  # the peer answered from its address (MM3/AM3)
                self.table.settle(sa)
        if sa.state is IkeState.ESTABLISHED:
            if not revocation.asked(self.ctx, sa):  # the peer's certificate waits for OCSP
                return
            if sa.phase1 is not None and getattr(sa.phase1, "p1", None) is not None:
                p1 = sa.phase1.p1  # type: ignore[attr-defined]
                # once: INITIAL-CONTACT received, the unique policy; behind a gateway's XAUTH
                # round, once it is over (clients often share one group identity: the XAUTH
                # user tells them apart, ike/unique.py)
                if not p1.unique_checked and unique.identified(sa):
                    p1.unique_checked = True
                    self._info.established(sa, now, initial_contact=p1.initial_contact and not sa.initiator)
            if sa.state is not IkeState.ESTABLISHED or not self.gate.remote_access(sa, now):
                return
            self._start_pending(sa, now)
        for mid, ex in list(sa.exchanges.items()):
            if ex.done and isinstance(ex, QuickMode | Transaction) and len(sa.exchanges) > MAX_DONE_EXCHANGES:
                del sa.exchanges[mid]

    def _remote_access_failed(self, sa: IkeSa, now: float) -> None:
        self.gate.remote_access_failed(sa, now)

    def _start_pending(self, sa: IkeSa, now: float) -> None:
        if not sa.ready or sa.conn is None:
            return
        while sa.pending_children:
            name = sa.pending_children.pop(0)
            child = sa.conn.child(name)
            for pair in range(len(selector_pairs(child.local_ts, child.remote_ts))):  # one QM each
                busy = any(
                    isinstance(ex, QuickMode)
                    and not ex.done
                    and ex.child is not None
                    and (ex.child.name, ex.ts_pair) == (name, pair)
                    for ex in sa.exchanges.values()
                )
                if busy or any(c.child == name and c.ts_pair == pair for c in sa.children):
                    self.tracer.emit("ike", "child_exists", sa=sa.unique_id, child=name, pair=pair)
                    continue  # already up or being negotiated (an acquire, or `up` twice)
                self._start_quick_mode(sa, child, now, None, ts_pair=pair)

    def _start_quick_mode(
        self,
        sa: IkeSa,
        child: ChildConfig,
        now: float,
        rekey_of: int | None,
        fallback: int = 0,
        ts_pair: int = 0,
    ) -> None:
        mid = informational.new_message_id(sa, self.ctx)
        self.timers.touch(sa)
        qm = QuickMode(sa, self.ctx, mid, child, rekey_of=rekey_of, fallback=fallback, ts_pair=ts_pair)
        sa.exchanges[mid] = qm
        self._guard(sa, lambda: qm.start(now), qm, now)

    def _trace_received(self, sa: IkeSa, ex: Exchange, msg: Message) -> None:
        self.tracer.emit(
            "ike",
            "received",
            sa=sa.unique_id,
            msg=ex.expected(),
            mid=msg.header.message_id,
            payloads=summary(rp.payload for rp in msg.payloads),
            encrypted=msg.header.encrypted,
            src=sa.remote,
            **({"padding": msg.padding} if msg.padding else {}),
        )

    def rekey_child(self, sa_id: int, spi_in: int, now: float) -> None:
        """The data plane saw a soft limit (bytes, sequence numbers): rekey that IPsec SA now."""
        self.timers.rekey_now(sa_id, spi_in, now)

    def xauth_verdict(self, sa_id: int, ok: bool, reason: str, now: float) -> None:
        """The driver's answer to an :class:`~snakeswan.ike.events.XauthCheck` (RADIUS)."""
        self.gate.xauth_verdict(sa_id, ok, reason, now)

    def ocsp_verdict(self, sa_id: int, response: bytes | None, reason: str, now: float) -> None:
        """The driver's answer to an :class:`~snakeswan.ike.events.OcspCheck`: the DER response,
        or None and why there is none (``reason`` also names the responder that answered)."""
        self.gate.ocsp_verdict(sa_id, response, reason, now)

    def traffic_seen(self, sa_id: int, now: float, spis: Iterable[int] = ()) -> None:
        """The data plane received authenticated traffic of this IKE SA's children (DPD: alive),
        on the IPsec SAs with inbound SPIs ``spis`` (a rekey collision's end looks at them)."""
        sa = self.table.get(sa_id)
        if sa is not None:
            self.timers.touch(sa)
            self.timers.alive(sa, now, spis)

    # ---- finding SAs and exchanges ------------------------------------------------------------

    def knows(self, icookie: bytes, rcookie: bytes) -> bool:
        """Whether an SA holds these cookies (asked before parsing by overload shedding,
        ike/shedding.py)."""
        return self.table.knows(icookie, rcookie)

    # ---- new exchanges started by the peer ----------------------------------------------------

    def _new_responder(self, header: Header, data: bytes, src: Address, dst: Address, now: float) -> None:
        aggressive = header.exchange == ExchangeType.AGGRESSIVE
        if header.encrypted or header.message_id != 0:
            self.tracer.emit(
                "ike", "drop", reason="first message must be plaintext with message ID 0", src=src
            )
            return
        if not self._admit(src, now):
            return
        msg = decode_message(data, allow_trailing=True)  # plaintext padding (Libreswan's ikepad)
        conns = peers.candidates(self.config.connections, dst[0], src[0], aggressive=aggressive)
        sa = self._new_sa(False, header.icookie, dst, src)
        sa.half_open_until = now + self.config.daemon.half_open_timeout
        sa.rcookie = self._cookies.make(dst, src, header.icookie, now)
        ex: MainMode | AggressiveMode = AggressiveMode(sa, self.ctx) if aggressive else MainMode(sa, self.ctx)
        sa.phase1 = ex
        self.table.add_responder(sa, src)
        self._trace_received(sa, ex, msg)
        if not conns:
            self._fail(
                sa,
                ex,
                PeerError(NotifyType.NO_PROPOSAL_CHOSEN, f"no connection for {src[0]} -> {dst[0]}"),
                now,
            )
            return
        self._guard(sa, lambda: ex.respond(msg, data, conns, now), ex, now, first=True)

    def _admit(self, src: Address, now: float) -> bool:
        """Anti-clogging (RFC 2408 2.5.3, as strongSwan's block_threshold and half-open limit): a
        source with too many half-open SAs gets no new one; at the global limit the oldest half-open
        SA makes room (a real peer answers MM2 within a round trip and is no longer half-open, so
        a flood of spoofed MM1s only ever evicts its own)."""
        d = self.config.daemon
        if self.table.half_open_from(src[0]) >= d.half_open_per_source:
            self.tracer.emit("ike", "drop", reason="too many half-open SAs from this address", src=src)
            return False
        while len(self.table.half_open) >= d.half_open_limit:
            oldest = self.table.oldest_half_open()
            assert oldest is not None
            self.tracer.emit("ike", "half_open_evicted", sa=oldest.unique_id, remote=oldest.remote)
            self._teardown.remove_sa(oldest, "half-open SA evicted (limit reached)", now=now, quiet=True)
        return True

    def _new_quick_mode(self, sa: IkeSa, header: Header, data: bytes, now: float) -> None:
        if not sa.ready:  # fail closed: no IPsec SA before XAUTH / Mode Config succeeded
            self.tracer.emit(
                "ike",
                "drop",
                reason="Quick Mode before XAUTH/Mode Config completed",
                sa=sa.unique_id,
                mid=header.message_id,
            )
            return
        qm = QuickMode(sa, self.ctx, header.message_id)

        def run() -> None:
            msg, ciphertext = crypt.open_message(sa, data)
            self._trace_received(sa, qm, msg)
            qm.respond(msg, ciphertext, data, now)
            sa.exchanges[header.message_id] = qm

        if not self._guard(sa, run, qm, now):
            if qm.spi_in:
                self.ctx.spis.release(qm.spi_in)
        else:
            self.timers.alive(sa, now)

    # ---- bookkeeping --------------------------------------------------------------------------

    def _new_sa(self, initiator: bool, icookie: bytes, local: Address, remote: Address) -> IkeSa:
        sa = self.table.new(initiator, icookie, local, remote)
        self.timers.touch(sa)
        return sa

    def _initiator_addresses(self, conn: ConnectionConfig, local: str | None) -> tuple[Address, Address]:
        ours = first_address(conn.local_addrs) or local
        theirs = first_address(conn.remote_addrs)
        if theirs is None:
            raise LocalError(f"connection {conn.name}: remote_addrs has no address to initiate to")
        if ours is None:
            raise LocalError(f"connection {conn.name}: local_addrs has no address to initiate from")
        return (ours, self.config.daemon.port), (theirs, conn.remote_port)
