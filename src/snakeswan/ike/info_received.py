"""A received Informational exchange: its Notify and Delete payloads acted on (RFC 2408 4.8, RFC 2409
5.7, RFC 3706 DPD), and INITIAL-CONTACT (RFC 2407 4.6.3.3).

Sending and parsing informational messages is :mod:`snakeswan.ike.informational`; this module
decides what they do to the engine's SAs, through the same :class:`~snakeswan.ike.timers.EngineHooks`
that the timer policy uses, so it never reaches into the engine's tables itself.
"""

from __future__ import annotations

from snakeswan.errors import DecodeError
from snakeswan.ike import close_actions, crypt, informational, renewal, unique
from snakeswan.ike.context import Context
from snakeswan.ike.events import ChildSaInfo, NegotiationFailed, NotifyReceived
from snakeswan.ike.proposals import parse_ike_responder_lifetime
from snakeswan.ike.quick_mode import QuickMode
from snakeswan.ike.sa import IkeSa, IkeState
from snakeswan.ike.timers import EngineHooks, Timers
from snakeswan.wire.enums import NotifyType, ProtocolId, name_of
from snakeswan.wire.message import Header
from snakeswan.wire.payloads import DeletePayload, NotifyPayload

QUICK_MODE_ERRORS = frozenset(
    {
        NotifyType.NO_PROPOSAL_CHOSEN,
        NotifyType.INVALID_ID_INFORMATION,
        NotifyType.BAD_PROPOSAL_SYNTAX,
        NotifyType.ATTRIBUTES_NOT_SUPPORTED,
        NotifyType.INVALID_TRANSFORM_ID,
        NotifyType.INVALID_SPI,
        NotifyType.INVALID_KEY_INFORMATION,
        NotifyType.PAYLOAD_MALFORMED,
        NotifyType.INVALID_PROTOCOL_ID,
    }
)


class InformationalHandler:
    def __init__(self, ctx: Context, hooks: EngineHooks, timers: Timers) -> None:
        self.ctx = ctx
        self.hooks = hooks
        self.timers = timers

    def _alive(self, sa: IkeSa) -> bool:
        return self.hooks.sa(sa.unique_id) is sa

    def handle(self, sa: IkeSa, data: bytes, header: Header, now: float) -> None:
        tracer = self.ctx.tracer
        if header.encrypted and sa.crypto is None:
            tracer.emit("ike", "drop", reason="encrypted informational before keys", sa=sa.unique_id)
            return
        msg, ciphertext = crypt.open_message(sa, data)
        content = informational.parse(sa, msg, ciphertext)
        if content is None:
            tracer.emit("ike", "drop", reason="informational HASH(1) mismatch", sa=sa.unique_id)
            return
        for n in content.notifies:
            if n.notify_type == NotifyType.CONNECTED and content.authenticated:
                self._connected(sa, n, header.message_id, now)
                continue
            self._notify(sa, n, content.authenticated, now)
            if not self._alive(sa):
                return
        if not content.authenticated:
            if content.deletes:
                reason = "plaintext Delete ignored (not authenticated)"
                tracer.emit("ike", "drop", reason=reason, sa=sa.unique_id)
            return
        self.timers.alive(sa, now)  # after the notifies: an R-U-THERE-ACK is matched first
        bundle_ah_gone: set[int] = set()  # the AH SAs of bundles this message's ESP Deletes ended
        for d in content.deletes:
            self._delete(sa, d, now, bundle_ah_gone)

    def _connected(self, sa: IkeSa, n: NotifyPayload, mid: int, now: float) -> None:
        """CONNECTED (commit bit, ike/commit.py): the Quick Mode waiting for it, by message ID or
        by the SPI it names, completes."""
        ex = sa.exchanges.get(mid)
        waiting = [ex] if isinstance(ex, QuickMode) else []
        waiting += [
            e
            for e in sa.exchanges.values()
            if isinstance(e, QuickMode) and e.choice is not None and e.choice.peer_spi == n.spi
        ]
        self.ctx.tracer.emit("ike", "notify_received", sa=sa.unique_id, type="CONNECTED", authenticated=True)
        if any(e.connected(now) for e in waiting):
            self.timers.after(sa, now)
            return
        self.ctx.tracer.emit("ike", "drop", reason="CONNECTED for no Quick Mode waiting", sa=sa.unique_id)

    def _notify(self, sa: IkeSa, n: NotifyPayload, authenticated: bool, now: float) -> None:
        self.ctx.tracer.emit(
            "ike",
            "notify_received",
            sa=sa.unique_id,
            type=name_of(NotifyType, n.notify_type),
            authenticated=authenticated,
        )
        self.ctx.emit(NotifyReceived(sa.unique_id, n.notify_type, n.protocol, n.spi, n.data))
        if n.notify_type < 16384 and sa.state is IkeState.CONNECTING and not authenticated:
            self._unauthenticated_error(sa, n)
        elif n.notify_type < 16384 and sa.state is IkeState.CONNECTING:
            reason = f"peer sent {name_of(NotifyType, n.notify_type)}"
            self.ctx.emit(NegotiationFailed(sa.unique_id, sa.name, "phase1", reason, n.notify_type))
            self.hooks.remove_sa(sa, reason, close_actions.LOCAL, now, quiet=True)
        elif n.notify_type in QUICK_MODE_ERRORS and authenticated:
            # IKEv1 error notifies do not name the exchange: they end our Quick Modes under way
            for ex in list(sa.exchanges.values()):
                if isinstance(ex, QuickMode) and not ex.done and ex.initiator:
                    reason = f"peer sent {name_of(NotifyType, n.notify_type)}"
                    self.hooks.drop_exchange(sa, ex)
                    refused = n.notify_type in (
                        NotifyType.NO_PROPOSAL_CHOSEN,
                        NotifyType.ATTRIBUTES_NOT_SUPPORTED,
                    )
                    nxt = ex.next_fallback() if refused else None
                    if nxt is not None and ex.child is not None:  # e.g. a peer without PFS
                        self.ctx.tracer.emit(
                            "ike", "quick_mode_fallback", sa=sa.unique_id, child=ex.child.name, reason=reason
                        )
                        self.hooks.start_quick_mode(sa, ex.child, now, ex.rekey_of, nxt, ts_pair=ex.ts_pair)
                        continue
                    self.ctx.emit(NegotiationFailed(sa.unique_id, sa.name, ex.name, reason, n.notify_type))
        elif n.notify_type == NotifyType.R_U_THERE and authenticated:
            ack = NotifyPayload(NotifyType.R_U_THERE_ACK, ProtocolId.ISAKMP, n.spi, n.data)
            informational.send(sa, self.ctx, [ack])
        elif (
            n.notify_type == NotifyType.R_U_THERE_ACK
            and authenticated
            and sa.dpd is not None
            and len(n.data) == 4
            and sa.dpd.ack(int.from_bytes(n.data, "big"), now)
        ):
            self.ctx.tracer.emit("ike", "dpd_ack", sa=sa.unique_id, seq=int.from_bytes(n.data, "big"))
        elif n.notify_type == NotifyType.RESPONDER_LIFETIME and n.protocol == ProtocolId.ISAKMP:
            self._ike_responder_lifetime(sa, n, authenticated)

    def _ike_responder_lifetime(self, sa: IkeSa, n: NotifyPayload, authenticated: bool) -> None:
        """The responder runs our ISAKMP SA with shorter lifetimes than we offered: do the same."""
        tracer = self.ctx.tracer
        if not authenticated or not sa.initiator or n.spi != sa.icookie + sa.rcookie:
            tracer.emit(
                "ike",
                "drop",
                reason="RESPONDER-LIFETIME not for this SA or not authenticated",
                sa=sa.unique_id,
            )
            return
        try:
            seconds, kilobytes = parse_ike_responder_lifetime(n.data)
        except DecodeError as e:
            tracer.emit("ike", "drop", reason=f"RESPONDER-LIFETIME: {e}", sa=sa.unique_id)
            return
        if renewal.shorten(sa, seconds, kilobytes):
            assert sa.choice is not None
            tracer.emit(
                "ike",
                "ike_lifetime_lowered",
                sa=sa.unique_id,
                seconds=sa.choice.lifetime,
                kilobytes=sa.choice.life_kilobytes,
            )

    def _unauthenticated_error(self, sa: IkeSa, n: NotifyPayload) -> None:
        """A plaintext error Notify before phase 1 is authenticated: anyone who sees the cookies can
        send one, so it ends nothing. It is logged and kept on the phase 1 exchange, which goes on
        (retransmitting) until an authenticated answer comes or its retransmissions end; then its
        failure names this notify (a peer with another pre-shared key is told so, after the wait)."""
        ex = sa.phase1
        if ex is not None and not ex.done:
            ex.peer_notify = n.notify_type
            ex.peer_notifies += 1
        self.ctx.tracer.emit(
            "ike",
            "unauthenticated_notify_ignored",
            sa=sa.unique_id,
            type=name_of(NotifyType, n.notify_type),
            count=ex.peer_notifies if ex is not None else 1,
            then="phase 1 goes on until an authenticated answer or its retransmissions end",
        )

    def _delete(self, sa: IkeSa, d: DeletePayload, now: float, bundle_ah_gone: set[int]) -> None:
        if d.protocol == ProtocolId.ISAKMP:
            if any(spi == sa.icookie + sa.rcookie for spi in d.spis):
                old = self._renewal_deleting_itself(sa, now)
                if old is not None:
                    sa = old  # the SA it renewed is meant: it goes, the new one adopts its children
                heir = renewal.successor(sa, self.hooks.conn_sas(sa.name))
                if heir is not None:  # the peer renewed the ISAKMP SA: its IPsec SAs live on
                    moved = renewal.adopt_children(sa, heir, self.timers.lifetimes)
                    self.ctx.tracer.emit(
                        "ike", "ike_renewed", old=sa.unique_id, new=heir.unique_id, children=moved
                    )
                self.hooks.remove_sa(sa, "deleted by peer", close_actions.PEER, now)
            return
        for spi in d.spis:
            value = int.from_bytes(spi, "big")
            if d.protocol == ProtocolId.IPSEC_AH and value in bundle_ah_gone:
                bundle_ah_gone.discard(value)  # its bundle went with the ESP Delete before it
                continue
            child = next((c for c in sa.children if _names(c, value, d.protocol)), None)
            if child is None:  # some peers (strongSwan after a failed install) name our inbound SPI
                child = next((c for c in sa.children if c.spi_in == value and c.protocol == d.protocol), None)
                if child is not None:
                    self.ctx.tracer.emit("ike", "delete_names_our_spi", sa=sa.unique_id, spi=spi)
            if child is not None:
                if child.ah is not None and d.protocol != ProtocolId.IPSEC_AH:
                    bundle_ah_gone.add(child.ah.spi_out)
                self.hooks.remove_child(sa, child.spi_in, "deleted by peer", close_actions.PEER, now)
            else:
                self.ctx.tracer.emit("ike", "delete_unknown_spi", sa=sa.unique_id, spi=spi)

    def _renewal_deleting_itself(self, sa: IkeSa, now: float) -> IkeSa | None:
        """vpnc (0.5.3, Debian's) renews its ISAKMP SA at 80 % of the lifetime: Aggressive Mode,
        XAUTH, then a Delete meant for the old SA, but naming the new one it travels on. A Cisco
        Unity client's Delete of a gateway SA whose XAUTH round has just ended (within
        :data:`RENEWAL_DELETE_WINDOW`), while an older SA of the same client and user is up, is
        taken as that: the older SA is returned (None: the Delete means what it says)."""
        ra = sa.remote_access
        if (
            sa.initiator
            or not sa.unity
            or ra is None
            or not ra.server_xauth
            or not sa.ready
            or sa.established_at is None
            or now - sa.established_at > RENEWAL_DELETE_WINDOW
        ):
            return None
        old = renewal.predecessor(sa, self.hooks.conn_sas(sa.name))
        if old is not None:
            self.ctx.tracer.emit("ike", "delete_names_the_new_sa", sa=sa.unique_id, old=old.unique_id)
        return old

    def established(self, sa: IkeSa, now: float, *, initial_contact: bool) -> None:
        """``sa`` is up: INITIAL-CONTACT received (the peer rebooted: every older SA with the same
        identities is stale) and the connection's ``unique`` policy (ike/unique.py)."""
        verdict = unique.on_established(sa, self.hooks.same_ids(sa), initial_contact)
        for other in verdict.remove:
            self.ctx.tracer.emit(
                "ike", "unique_replace", sa=other.unique_id, by=sa.unique_id, reason=verdict.reason
            )
            if other.state is IkeState.ESTABLISHED and not initial_contact:
                self.hooks.delete_ike(other.unique_id, now, verdict.reason)  # the peer is told
            else:
                self.hooks.remove_sa(other, verdict.reason, close_actions.LOCAL, now)
        if verdict.cancel:
            self.ctx.tracer.emit("ike", "unique_keep", sa=sa.unique_id, reason=verdict.reason)
            self.hooks.delete_ike(sa.unique_id, now, verdict.reason)


RENEWAL_DELETE_WINDOW = 10.0  # seconds after the new SA was established


def _names(child: ChildSaInfo, spi_out: int, protocol: int) -> bool:
    """A peer's Delete names ``child``: its ESP/AH SA, or the AH SA of a bundle."""
    if child.spi_out == spi_out and child.protocol == protocol:
        return True
    return child.ah is not None and child.ah.spi_out == spi_out and protocol == ProtocolId.IPSEC_AH
