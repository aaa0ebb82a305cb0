"""What stands between an established ISAKMP SA and its first Quick Mode: the OCSP verdict on the
peer's certificate (``ike/revocation.py``) and the XAUTH / Mode Config rounds
(``ike/remote_access.py``), with the Transactions that carry them and the drivers' verdicts
(RADIUS for XAUTH, an OCSP responder) coming back into the engine. Split from the engine, which
calls :meth:`Gate.remote_access` after every step on an established SA."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from snakeswan.errors import PeerError
from snakeswan.ike import crypt, informational, revocation, xauth
from snakeswan.ike.context import Context
from snakeswan.ike.events import NegotiationFailed
from snakeswan.ike.exchange import Exchange
from snakeswan.ike.leases import Leases
from snakeswan.ike.remote_access import RemoteAccess, is_xauth
from snakeswan.ike.sa import IkeSa
from snakeswan.ike.sa_table import SaTable
from snakeswan.ike.timers import Timers
from snakeswan.ike.transaction import Deferred, OnReply, Transaction
from snakeswan.wire.enums import NotifyType
from snakeswan.wire.message import Header, Message
from snakeswan.wire.payloads import AttributePayload

__all__ = ["Gate", "GateHooks"]


@dataclass(frozen=True)
class GateHooks:
    """What the gate may ask of the engine."""

    guard: Callable[..., bool]  # (sa, action, exchange, now): run, errors handled as the engine does
    after: Callable[[IkeSa, float], None]  # a step on the SA is done: timers, indexes, what follows
    trace_received: Callable[[IkeSa, Exchange, Message], None]
    delete_ike: Callable[[int, float, str], None]


class Gate:
    def __init__(
        self, ctx: Context, table: SaTable, timers: Timers, leases: Leases, hooks: GateHooks
    ) -> None:
        self.ctx = ctx
        self.table = table
        self.timers = timers
        self.leases = leases
        self.hooks = hooks

    # ---- XAUTH and Mode Config ----------------------------------------------------------------

    def remote_access(self, sa: IkeSa, now: float) -> bool:
        """Start or advance the XAUTH / Mode Config rounds of ``sa``; False if the SA is gone."""
        ra = sa.remote_access
        if ra is None and sa.conn is not None:
            ra = sa.remote_access = RemoteAccess(sa, sa.conn, self.ctx, self.leases, self.start_transaction)
            if ra.needed:
                ra.begin(now, self.ctx.retransmit.budget())
        if ra is None:
            return True
        if ra.failed is not None:
            self.remote_access_failed(sa, now)
            return False
        ra.proceed(now)
        return True

    def start_transaction(
        self, sa: IkeSa, label: str, attr: AttributePayload, on_reply: OnReply, now: float
    ) -> None:
        mid = informational.new_message_id(sa, self.ctx)
        self.timers.touch(sa)
        tx = Transaction(sa, self.ctx, mid, label)
        sa.exchanges[mid] = tx
        tx.start(attr, on_reply, now)

    def new_transaction(self, sa: IkeSa, header: Header, data: bytes, now: float) -> None:
        """A Transaction the peer starts (its XAUTH request, Mode Config request or set)."""
        if sa.revocation is not None and not sa.revocation.passed:  # its retransmission will do
            self.ctx.tracer.emit(
                "ike", "drop", reason="waiting for OCSP", sa=sa.unique_id, exchange="transaction"
            )
            return
        tx = Transaction(sa, self.ctx, header.message_id, "Transaction")
        ra = sa.remote_access

        def run() -> None:
            msg, ciphertext = crypt.open_message(sa, data)
            attr = msg.first(AttributePayload)
            tx.label = "XAUTH" if attr is not None and is_xauth(attr) else "ModeCfg"
            self.hooks.trace_received(sa, tx, msg)
            if ra is None:
                raise PeerError(NotifyType.ATTRIBUTES_NOT_SUPPORTED, "no XAUTH or Mode Config on this SA")
            try:
                tx.respond(msg, ciphertext, data, ra.answer, now)
            except Deferred:
                return  # dropped and traced; its retransmission gets the answer
            sa.exchanges[header.message_id] = tx

        self.hooks.guard(sa, run, tx, now)

    def remote_access_failed(self, sa: IkeSa, now: float) -> None:
        """XAUTH or Mode Config failed (or never happened in time): nothing is installed, the peer
        gets a Delete, and the reason names the user."""
        ra = sa.remote_access
        if ra is not None and ra.failed is None:
            ra.fail(ra.stalled())
        reason = (ra.failed if ra is not None else None) or "remote access failed"
        self.ctx.tracer.emit(
            "ike", "exchange_failed", sa=sa.unique_id, exchange="remote_access", reason=reason
        )
        self.ctx.emit(NegotiationFailed(sa.unique_id, sa.name, "remote_access", reason))
        if sa.unique_id in self.table.by_id:
            self.hooks.delete_ike(sa.unique_id, now, reason)

    # ---- the drivers' verdicts ----------------------------------------------------------------

    def xauth_verdict(self, sa_id: int, ok: bool, reason: str, now: float) -> None:
        sa = self.table.get(sa_id)
        ra = sa.remote_access if sa is not None else None
        if sa is None or ra is None or ra.xauth.state != "checking" or ra.user is None:
            self.ctx.tracer.emit("ike", "xauth_verdict_ignored", sa=sa_id, reason="no XAUTH check under way")
            return
        self.timers.touch(sa)
        ra.decided(xauth.Verdict(ra.user, ok, reason), now)
        self.hooks.after(sa, now)

    def ocsp_verdict(self, sa_id: int, response: bytes | None, reason: str, now: float) -> None:
        sa = self.table.get(sa_id)
        if sa is None or not revocation.waiting(sa):
            self.ctx.tracer.emit("ike", "ocsp_verdict_ignored", sa=sa_id, reason="no OCSP check under way")
            return
        self.timers.touch(sa)
        refusal = revocation.conclude(self.ctx, sa, response, reason, now)
        if refusal is None:
            self.hooks.after(sa, now)
            return
        self.ctx.tracer.emit("ike", "exchange_failed", sa=sa.unique_id, exchange="ocsp", reason=refusal)
        self.ctx.emit(NegotiationFailed(sa.unique_id, sa.name, "ocsp", refusal))
        self.hooks.delete_ike(sa.unique_id, now, refusal)
