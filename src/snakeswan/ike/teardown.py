"""Taking things down: an exchange that gave up, an IPsec SA, an ISAKMP SA with everything under
it, and what follows (close_action / dpd_action ``start`` negotiates again). Split from the engine
(which keeps the public surface and the receive path); it acts on the SA table, the timers and the
context, and asks the engine, through callbacks, to initiate or to fail remote access.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from snakeswan.errors import LocalError
from snakeswan.ike import close_actions, peers
from snakeswan.ike.context import Context
from snakeswan.ike.events import ChildSaDeleted, IkeSaDeleted, NegotiationFailed
from snakeswan.ike.exchange import Exchange
from snakeswan.ike.quick_mode import QuickMode
from snakeswan.ike.sa import IkeSa, IkeState
from snakeswan.ike.sa_table import SaTable
from snakeswan.ike.timers import Timers
from snakeswan.ike.transaction import Transaction


class Teardown:
    def __init__(
        self,
        ctx: Context,
        table: SaTable,
        initiate: Callable[[str, str, float], object],
        remote_access_failed: Callable[[IkeSa, float], None],
    ) -> None:
        self.ctx = ctx
        self.table = table
        self._initiate = initiate
        self._remote_access_failed = remote_access_failed
        self.timers: Timers  # set by the engine once the timers exist (they call back into here)

    def give_up(self, ex: Exchange) -> None:
        sa = ex.sa
        reason = f"{ex.name} timed out after {self.ctx.retransmit.tries} retransmissions"
        notify = 0
        if ex.last_rejection is not None:
            reason += f"; last message rejected: {ex.last_rejection.what}"
            notify = ex.last_rejection.notify
        if ex.peer_notifies:
            reason += f"; {ex.peer_said()}"
            notify = notify or ex.peer_notify
        self.ctx.tracer.emit("ike", "give_up", sa=sa.unique_id, exchange=ex.name)
        self.ctx.emit(NegotiationFailed(sa.unique_id, sa.name, ex.name, reason, notify))
        if ex is sa.phase1 and sa.state is IkeState.CONNECTING:
            self.remove_sa(sa, reason, quiet=True)
        elif isinstance(ex, Transaction) and sa.remote_access is not None:
            sa.remote_access.fail(f"{ex.label} not answered: {reason}")
            self._remote_access_failed(sa, 0.0)
        else:
            self.drop_exchange(sa, ex)

    def drop_exchange(self, sa: IkeSa, ex: Exchange) -> None:
        sa.exchanges.pop(ex.message_id, None)
        if isinstance(ex, QuickMode) and ex.spi_in and not ex.done:
            self.ctx.spis.release(ex.spi_in)

    def remove_child(
        self, sa: IkeSa, spi_in: int, reason: str, cause: str = close_actions.LOCAL, now: float = 0.0
    ) -> None:
        gone = self.forget_child(sa, spi_in, reason, cause)
        if gone is not None and gone[1] == "start":
            self.restart(gone[2], [gone[0]], now)

    def forget_child(self, sa: IkeSa, spi_in: int, reason: str, cause: str) -> tuple[str, str, str] | None:
        """Remove one IPsec SA; returns its child's name, follow-up action and connection (None: no
        such SA)."""
        for c in list(sa.children):
            if c.spi_in != spi_in:
                continue
            then = "none"
            cfg = peers.child_config(self.ctx.config.connections, sa.conn, c.conn, c.child)
            if cfg is not None and not self.table.has_sibling(c):
                then = close_actions.action(cfg, cause)
            sa.children.remove(c)
            self.table.child_gone(spi_in)
            self.timers.lifetimes.forget(spi_in)
            self.ctx.spis.release(c.spi_in)
            self.ctx.emit(
                ChildSaDeleted(sa.unique_id, c.conn, c.child, c.protocol, c.spi_in, c.spi_out, reason, then)
            )
            self.ctx.tracer.emit(
                "ike", "child_sa_deleted", sa=sa.unique_id, spi_in=f"{spi_in:08x}", reason=reason, then=then
            )
            return c.child, then, c.conn
        return None

    def restart(self, conn: str, children: list[str], now: float) -> None:
        """close_action/dpd_action ``start``: negotiate these children again (a new ISAKMP SA if
        the old one is gone)."""
        for name in dict.fromkeys(children):
            self.ctx.tracer.emit("ike", "child_restart", conn=conn, child=name)
            with contextlib.suppress(LocalError):
                self._initiate(conn, name, now)

    def remove_sa(
        self,
        sa: IkeSa,
        reason: str,
        cause: str = close_actions.LOCAL,
        now: float = 0.0,
        *,
        quiet: bool = False,
    ) -> None:
        restart: list[str] = []
        elsewhere: list[tuple[str, str]] = []  # (connection, child) of children sharing the SA
        for c in list(sa.children):
            gone = self.forget_child(sa, c.spi_in, reason, cause)
            if gone is not None and gone[1] == "start":
                if sa.conn is None or gone[2] == sa.conn.name:
                    restart.append(gone[0])
                else:
                    elsewhere.append((gone[2], gone[0]))
        if cause != close_actions.LOCAL and sa.conn is not None:
            # children we were negotiating when the SA died are wanted as much as those that were up
            wanted = [
                ex.child.name
                for ex in sa.exchanges.values()
                if isinstance(ex, QuickMode) and ex.initiator and not ex.done and ex.child is not None
            ]
            for name in [*wanted, *sa.pending_children]:
                with contextlib.suppress(KeyError):
                    if close_actions.action(sa.conn.child(name), cause) == "start":
                        restart.append(name)
        for ex in list(sa.exchanges.values()):
            self.drop_exchange(sa, ex)
        if sa.remote_access is not None:
            sa.remote_access.release()
        sa.state = IkeState.DELETED
        self.table.remove(sa)
        self.timers.forget(sa)
        if sa.established_at is not None or not quiet:
            self.ctx.emit(IkeSaDeleted(sa.unique_id, sa.name, reason))
        self.ctx.tracer.emit("ike", "ike_sa_deleted", sa=sa.unique_id, reason=reason)
        if restart and sa.conn is not None:
            self.restart(sa.conn.name, restart, now)
        for conn_name, child_name in elsewhere:
            self.restart(conn_name, [child_name], now)
