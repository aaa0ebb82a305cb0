r"""All of the engine's timer policy in one place (DESIGN.md principle 12): retransmissions, NAT-T
keepalives, Dead Peer Detection, IPsec SA rekey/expiry and ISAKMP SA renewal/expiry.

:class:`Timers` decides *when*; what to do is asked of the engine through :class:`EngineHooks`
(bound methods), so this module never reaches into the engine's tables itself.

Cost per SA is flat (issue 15): each ISAKMP SA's next due time (the earliest of its exchanges'
retransmissions, keepalive, renewal, expiry, DPD and remote-access deadline) sits in one heap
(:class:`~snakeswan.ike.schedule.Schedule`), the IPsec SAs' timers in another. The engine
:meth:`Timers.touch`\ es an SA whenever it worked on it; :meth:`Timers.due` recomputes only the
touched SAs, :meth:`Timers.fire` looks only at the SAs that are due. Nothing walks all SAs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from snakeswan.config.model import ConnectionConfig
from snakeswan.ike import bundle, close_actions, dpd, informational, linger, peers, renewal
from snakeswan.ike.context import Context
from snakeswan.ike.events import Address, ChildSaInfo, ChildSaPreferred, Datagram, NegotiationFailed
from snakeswan.ike.exchange import Exchange
from snakeswan.ike.lifetimes import ChildLifetimes, ChildTimer
from snakeswan.ike.sa import IkeSa, IkeState
from snakeswan.ike.schedule import Schedule
from snakeswan.wire.enums import NotifyType, ProtocolId
from snakeswan.wire.payloads import DeletePayload, NotifyPayload

PER_TICK = 256  # ISAKMP SAs (and IPsec SA timers) handled by one fire()
# after a rekey collision is seen, how long a peer that keeps the same pair as we do may still
# send on the other one (its own view of the collision comes a round trip later; the data plane
# reports traffic once a second)
COLLISION_GRACE = 2.0


def _exchanges(sa: IkeSa) -> list[Exchange]:
    return [*([sa.phase1] if sa.phase1 is not None else []), *sa.exchanges.values()]


def sa_due(sa: IkeSa) -> float | None:
    """The next time anything of ``sa`` is due: an exchange's retransmission, the NAT-T keepalive,
    renewal, expiry, DPD, the remote-access deadline."""
    times = [t for ex in _exchanges(sa) if (t := ex.retx.due()) is not None]
    times += [
        t
        for t in (sa.keepalive_due, sa.rekey_at, sa.expire_at, _ra_deadline(sa), sa.half_open_until)
        if t is not None
    ]
    if sa.dpd is not None and (t := sa.dpd.due()) is not None:
        times.append(t)
    if sa.prune_at is not None:  # completed exchanges to forget (ike/linger.py)
        times.append(sa.prune_at)
    return min(times) if times else None


def _since(t: float | None, since: float) -> bool:
    return t is not None and t >= since


def _ra_deadline(sa: IkeSa) -> float | None:
    """When XAUTH / Mode Config must be over, while they are not (the SA is then deleted)."""
    ra = sa.remote_access
    if ra is None or ra.deadline is None or ra.ready or ra.failed is not None:
        return None
    return ra.deadline


class RemoveSa(Protocol):
    def __call__(
        self, sa: IkeSa, reason: str, cause: str = ..., now: float = ..., *, quiet: bool = ...
    ) -> None: ...


@dataclass(frozen=True)
class EngineHooks:
    """What the timer policy may ask of the engine."""

    sas: Callable[[], list[IkeSa]]
    sa: Callable[[int], IkeSa | None]  # by unique id
    conn_sas: Callable[[str], list[IkeSa]]  # the SAs of one connection
    same_ids: Callable[[IkeSa], list[IkeSa]]  # the other SAs between the same two identities
    give_up: Callable[[Exchange], None]
    delete_ike: Callable[[int, float, str], None]
    remove_sa: RemoveSa  # (sa, reason, cause, now): cause as in ike/close_actions.py
    remove_child: Callable[[IkeSa, int, str, str, float], None]  # (sa, spi_in, reason, cause, now)
    drop_exchange: Callable[[IkeSa, Exchange], None]
    start_phase1: Callable[[ConnectionConfig, Address, Address, float], IkeSa]
    start_quick_mode: Callable[..., None]  # (sa, child, now, rekey_of[, fallback])
    remote_access_failed: Callable[[IkeSa, float], None]  # XAUTH/Mode Config not done in time


class Timers:
    def __init__(self, ctx: Context, hooks: EngineHooks, keepalive_interval: float) -> None:
        self.ctx = ctx
        self.hooks = hooks
        self.keepalive_interval = keepalive_interval
        self.lifetimes = ChildLifetimes(ctx.rng)
        self._schedule = Schedule()  # ISAKMP SA unique id -> its next due time
        self._touched: dict[int, IkeSa] = {}

    # ---- the engine's get_timer / handle_timer ------------------------------------------------

    def touch(self, sa: IkeSa) -> None:
        """The engine worked on ``sa`` (its due time may have changed)."""
        self._touched[sa.unique_id] = sa

    def forget(self, sa: IkeSa) -> None:
        self._touched.pop(sa.unique_id, None)
        self._schedule.set(sa.unique_id, None)

    def _refresh(self) -> None:
        touched, self._touched = self._touched, {}
        for sa in touched.values():
            self._schedule.set(sa.unique_id, None if sa.state is IkeState.DELETED else sa_due(sa))

    def due(self) -> float | None:
        self._refresh()
        times = [t for t in (self._schedule.peek(), self.lifetimes.due()) if t is not None]
        return min(times) if times else None

    def scan_due(self, sas: list[IkeSa]) -> float | None:
        """:meth:`due` the slow way, every SA looked at (tests check the heaps against it)."""
        times = [t for sa in sas if sa.state is not IkeState.DELETED and (t := sa_due(sa)) is not None]
        if (t := self.lifetimes.scan_due()) is not None:
            times.append(t)
        return min(times) if times else None

    def fire(self, now: float) -> None:
        """What is due at ``now``, at most :data:`PER_TICK` IPsec SA timers and as many ISAKMP SAs
        in one call: the rest stay due, so ``due()`` is in the past and the driver calls again after
        its other work. Thousands of half-open SAs expiring at once (a spoofed MM1 flood) never
        stall the daemon and its data plane (issue 17: 26 s for 26,594 in one call)."""
        self._refresh()
        for action, timer in self.lifetimes.pop_due(now, PER_TICK):
            if action == "delete" and timer.rival is not None:
                self._collision_end(timer, now)
            else:
                self._child(action, timer.ike_sa, timer.spi_in, now)
        for sa_id in self._schedule.pop_due(now, PER_TICK):
            sa = self.hooks.sa(sa_id)  # type: ignore[arg-type]
            if sa is None or sa.state is IkeState.DELETED:
                continue
            self.touch(sa)
            self._fire_sa(sa, now)

    def _fire_sa(self, sa: IkeSa, now: float) -> None:
        if sa.half_open_until is not None and sa.half_open_until <= now:
            self.ctx.tracer.emit("ike", "half_open_timeout", sa=sa.unique_id, remote=sa.remote)
            ex = sa.phase1
            if ex is not None and ex.peer_notifies:  # a peer that spoke, if unauthenticated: say why
                reason = f"half-open: the peer never answered; {ex.peer_said()}"
                self.ctx.emit(NegotiationFailed(sa.unique_id, sa.name, ex.name, reason, ex.peer_notify))
            self.hooks.remove_sa(sa, "half-open: the peer never answered", quiet=True)
            return
        if (t := _ra_deadline(sa)) is not None and t <= now and sa.state is IkeState.ESTABLISHED:
            self.ctx.tracer.emit("ike", "remote_access_timeout", sa=sa.unique_id)
            self.hooks.remote_access_failed(sa, now)
            return
        if sa.prune_at is not None and sa.prune_at <= now:
            linger.prune(sa, now)
        renewal.check_volume(sa, now)
        self._ike(sa, now)
        if sa.dpd is not None and sa.state is not IkeState.DELETED:
            self._dpd(sa, now)
        if sa.keepalive_due is not None and sa.keepalive_due <= now and sa.state is not IkeState.DELETED:
            self.ctx.outbox.append(Datagram(b"\xff", sa.local, sa.remote, keepalive=True))
            sa.keepalive_due = now + self.keepalive_interval
        for ex in _exchanges(sa):
            due = ex.retx.due()
            if due is None or due > now:
                continue
            data = ex.retx.fire(now)
            if data is not None:
                self.ctx.tracer.emit(
                    "ike", "retransmit", sa=ex.sa.unique_id, exchange=ex.name, mid=ex.message_id
                )
                self.ctx.send(data, ex.sa.local, ex.sa.remote)
            else:
                self.hooks.give_up(ex)

    # ---- hooks the engine calls ---------------------------------------------------------------

    def after(self, sa: IkeSa, now: float) -> None:
        """After any successful step on ``sa``: start the timers of what just came into being."""
        for c in list(sa.children):
            cfg = peers.child_config(self.ctx.config.connections, sa.conn, c.conn, c.child)
            if c.spi_in not in self.lifetimes.timers and cfg is not None:
                self.lifetimes.track(c, cfg, now)
                if c.replaces is not None:
                    self._successor(c, now)
        if sa.state is not IkeState.ESTABLISHED:
            return
        if sa.expire_at is None:
            renewal.schedule(sa, now, self.ctx.rng)
        if sa.replaces is not None and sa.ready:  # XAUTH / Mode Config over too: children move
            self._renewed(sa)
        renewal.check_volume(sa, now)
        if sa.dpd is None and sa.conn is not None and sa.conn.dpd_delay > 0 and sa.dpd_supported:
            timeout = sa.conn.dpd_timeout or dpd.DEFAULT_TIMEOUT
            seq = int.from_bytes(self.ctx.rng(4), "big") & 0x7FFFFFFF
            sa.dpd = dpd.DpdState(sa.conn.dpd_delay, timeout, now, seq)
        if sa.nat is not None and sa.nat.local_behind and sa.keepalive_due is None:
            sa.keepalive_due = now + self.keepalive_interval

    def rekey_now(self, sa_id: int, spi_in: int, now: float) -> None:
        t = self.lifetimes.timers.get(spi_in)
        if t is not None and not t.rekeying and t.delete_at is None:
            t.rekey_at = None
            t.rekeying = True
            self.lifetimes.update(spi_in)
            self._child("rekey", sa_id, spi_in, now)

    def alive(self, sa: IkeSa, now: float, spis: Iterable[int] = ()) -> None:
        """Authenticated traffic from the peer (on the IPsec SAs with inbound SPIs ``spis``, if
        the data plane saw it): no DPD probe needed for a while."""
        if sa.dpd is not None:
            sa.dpd.inbound(now)
        for spi in spis:
            self.lifetimes.seen(spi, now)

    # ---- ISAKMP SA ----------------------------------------------------------------------------

    def _ike(self, sa: IkeSa, now: float) -> None:
        if sa.expire_at is not None and sa.expire_at <= now:
            self.ctx.tracer.emit("ike", "ike_expire", sa=sa.unique_id, at=round(now, 3))
            self.hooks.delete_ike(sa.unique_id, now, "ISAKMP SA lifetime expired")
        elif sa.rekey_at is not None and sa.rekey_at <= now and sa.conn is not None:
            sa.rekey_at = None
            self.ctx.tracer.emit("ike", "ike_rekey", sa=sa.unique_id, at=round(now, 3))
            new = self.hooks.start_phase1(sa.conn, sa.local, sa.remote, now)
            new.replaces = sa.unique_id

    def _renewed(self, new: IkeSa) -> None:
        """A renewal we initiated is established: the children move over, the old SA is deleted."""
        old = self.hooks.sa(new.replaces) if new.replaces is not None else None
        new.replaces = None  # once: the children move, the old SA goes
        if old is None:
            return
        moved = renewal.adopt_children(old, new, self.lifetimes)
        self.ctx.tracer.emit("ike", "ike_renewed", old=old.unique_id, new=new.unique_id, children=moved)
        informational.send(
            old, self.ctx, [DeletePayload(ProtocolId.ISAKMP, (old.icookie + old.rcookie,), 16)]
        )
        self.hooks.remove_sa(old, f"renewed by IKE SA #{new.unique_id}")

    # ---- IPsec SAs ----------------------------------------------------------------------------

    def _child(self, action: str, sa_id: int, spi_in: int, now: float, why: str = "") -> None:
        sa = self.hooks.sa(sa_id)
        child = next((c for c in sa.children if c.spi_in == spi_in), None) if sa else None
        cfg = (
            peers.child_config(self.ctx.config.connections, sa.conn, child.conn, child.child)
            if sa and child
            else None
        )
        if sa is None or child is None or sa.conn is None:
            self.lifetimes.forget(spi_in)
            return
        self.ctx.tracer.emit(
            "ike",
            f"child_{action}",
            sa=sa.unique_id,
            child=child.child,
            spi_in=f"{spi_in:08x}",
            at=round(now, 3),
        )
        if action == "rekey":
            if sa.state is IkeState.ESTABLISHED and cfg is not None:
                self.hooks.start_quick_mode(sa, cfg, now, spi_in)
            return
        if sa.state is IkeState.ESTABLISHED:
            informational.send(sa, self.ctx, list(bundle.delete_payloads(child)))
        reason = why or ("rekeyed" if action == "delete" else "expired")
        self.hooks.remove_child(sa, spi_in, reason, close_actions.LOCAL, now)

    def _successor(self, new: ChildSaInfo, now: float) -> None:
        """``new`` rekeyed ``new.replaces``. If that SA already has another successor, both ends
        rekeyed it at once (a collision): the pair holding the lowest of the four SPIs is redundant
        (a rule both ends compute alike, after RFC 7296 2.8.1's lowest nonce). We send on the other
        one from now on, and delete the redundant one after the overlap, whichever end started it
        (:meth:`_collision_end` may still change that); the old SA goes too."""
        old = self.lifetimes.timers.get(new.replaces) if new.replaces is not None else None
        first = old.replaced_by if old is not None else None
        holder = self.lifetimes.timers.get(first) if first is not None else None
        owner = self.hooks.sa(holder.ike_sa) if holder is not None else None
        sibling = next((c for c in owner.children if c.spi_in == first), None) if owner else None
        assert new.replaces is not None
        if sibling is None or sibling.spi_in == new.spi_in:
            self.lifetimes.replaced(new.replaces, now, we_delete=new.initiator, by=new.spi_in)
            return
        loser = min((sibling, new), key=lambda c: min(c.spi_in, c.spi_out))
        kept = new if loser is sibling else sibling
        self.ctx.tracer.emit(
            "ike",
            "child_rekey_collision",
            child=new.child,
            old=f"{new.replaces:08x}",
            redundant=f"{loser.spi_in:08x}",
            kept=f"{kept.spi_in:08x}",
        )
        self.lifetimes.replaced(new.replaces, now, we_delete=True)
        self.lifetimes.redundant(loser.spi_in, now, rival=kept.spi_in)
        self.ctx.emit(ChildSaPreferred(kept.ike_sa, kept.spi_in))

    def _collision_end(self, loser: ChildTimer, now: float) -> None:
        """The overlap after a rekey collision is over: the redundant pair goes, unless the peer
        showed that it sees it otherwise. strongSwan's IKEv1 deletes neither pair and sends on the
        one it installed last: if the data plane saw the peer send on the redundant pair and not on
        the other since the collision settled, deleting the redundant one would leave the peer
        nothing to send on, so the other one goes instead. If the other one is gone already (the
        peer deleted it, or it expired), the redundant pair is the child's last and stays."""
        kept = self.lifetimes.timers.get(loser.rival) if loser.rival is not None else None
        settled = (loser.collided_at or now) + COLLISION_GRACE
        if kept is None:
            self._collision_trace(loser.spi_in, None, "the other pair is gone")
            self.lifetimes.keep(loser.spi_in, loser.saved_rekey)
            return
        if _since(loser.last_inbound, settled) and not _since(kept.last_inbound, settled):
            self._collision_trace(loser.spi_in, kept.spi_in, "the peer sends on the redundant pair")
            rekey = loser.saved_rekey if loser.saved_rekey is not None else kept.rekey_at
            self.lifetimes.keep(loser.spi_in, rekey)
            self.ctx.emit(ChildSaPreferred(loser.ike_sa, loser.spi_in))
            why = "redundant (rekey collision; the peer sends on the other pair)"
            self._child("delete", kept.ike_sa, kept.spi_in, now, why)
            return
        self._collision_trace(kept.spi_in, loser.spi_in, "the lowest SPI is redundant")
        self._child("delete", loser.ike_sa, loser.spi_in, now, "redundant (rekey collision)")

    def _collision_trace(self, kept: int, deleted: int | None, why: str) -> None:
        self.ctx.tracer.emit(
            "ike",
            "child_rekey_collision_end",
            kept=f"{kept:08x}",
            deleted=f"{deleted:08x}" if deleted is not None else "-",
            why=why,
        )

    # ---- DPD ----------------------------------------------------------------------------------

    def _dpd(self, sa: IkeSa, now: float) -> None:
        assert sa.dpd is not None
        action = sa.dpd.on_timer(now)
        if action == "probe":
            seq = sa.dpd.outstanding or 0
            self.ctx.tracer.emit("ike", "dpd_probe", sa=sa.unique_id, seq=seq)
            spi = sa.icookie + sa.rcookie
            probe = NotifyPayload(NotifyType.R_U_THERE, ProtocolId.ISAKMP, spi, seq.to_bytes(4, "big"))
            informational.send(sa, self.ctx, [probe])
        elif action == "dead":
            self._dead_peer(sa, now)

    def _dead_peer(self, sa: IkeSa, now: float) -> None:
        """No answer to R-U-THERE within dpd_timeout: drop the SAs; each child's dpd_action follows
        (ike/close_actions.py: clear -> nothing, trap -> the data plane keeps its policy, restart)."""
        self.ctx.tracer.emit("ike", "dpd_timeout", sa=sa.unique_id)
        self.hooks.remove_sa(sa, "dead peer (DPD timeout)", close_actions.DPD, now)
