"""Control requests that wait for an outcome, as ``swanctl --initiate`` does over vici: ``up`` with
``wait`` streams the trace records of its IKE SA and ends with the result (every requested IPsec SA
established) or the reason it failed (a failed exchange, the IKE SA deleted, an SA the data plane
refused); ``down`` with ``wait`` streams what its deletion logged.

The daemon feeds records and events in (:meth:`Waiters.on_record`, :meth:`Waiters.on_event`,
:meth:`Waiters.fail`) and asks :meth:`Waiters.check` after every pump; each :class:`Waiter` is a
queue its control connection drains.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from snakeswan.control.protocol import encode
from snakeswan.ike.events import (
    Event,
    IkeSaDeleted,
    IkeSaEstablished,
    NegotiationFailed,
    VirtualIps,
    XauthResult,
)
from snakeswan.ike.sa import IkeSa, IkeState
from snakeswan.trace import Record

Item = dict[str, Any]


class Waiter:
    """One ``up`` waiting for IKE SA ``ike_sa`` of ``conn`` to carry ``children``."""

    def __init__(self, conn: str, children: Iterable[str]) -> None:
        self.conn = conn
        self.children = tuple(children)
        self.ike_sa = 0  # known once the engine took the request
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        self.done = False

    def line(self, subsystem: str, event: str, text: str) -> None:
        if not self.done:
            record = {"subsystem": subsystem, "event": event, "text": text}
            self.queue.put_nowait({"ok": True, "record": record})

    async def send_until_done(self, writer: asyncio.StreamWriter, timeout: float) -> None:
        """Write the queued records to ``writer`` as they come, then the outcome (or a timeout)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                item = await asyncio.wait_for(self.queue.get(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                item = {
                    "ok": False,
                    "error": f"{self.conn}: no outcome within {timeout:g} s "
                    f"(IKE SA #{self.ike_sa} keeps negotiating; see snakeswan list-sas)",
                }
            writer.write(encode(item))
            await writer.drain()
            if "record" not in item:
                return

    def finish(self, ok: bool, text: str) -> None:
        if self.done:
            return
        self.done = True
        item: Item = {"ok": True, "result": {"ike_sa": self.ike_sa, "message": text}}
        self.queue.put_nowait(item if ok else {"ok": False, "error": text})


class Waiters:
    def __init__(self) -> None:
        self._waiting: list[Waiter] = []
        self._captured: list[Item] | None = None

    def add(self, conn: str, children: Iterable[str]) -> Waiter:
        w = Waiter(conn, children)
        self._waiting.append(w)
        return w

    def remove(self, w: Waiter) -> None:
        if w in self._waiting:
            self._waiting.remove(w)

    @contextmanager
    def capture(self) -> Iterator[list[Item]]:
        """Every record emitted inside the block (a synchronous command such as ``down``)."""
        captured: list[Item] = []
        self._captured = captured
        try:
            yield captured
        finally:
            self._captured = None

    def on_record(self, rec: Record) -> None:
        if self._captured is not None:
            self._captured.append({"ok": True, "record": _item(rec)})
        sa = rec.fields.get("sa")
        for w in self._waiting:
            if sa is not None and sa == w.ike_sa:
                w.line(rec.subsystem, rec.event, rec.render())

    def on_event(self, ev: Event) -> None:
        for w in self._waiting:
            if isinstance(ev, IkeSaEstablished) and ev.ike_sa == w.ike_sa:
                w.line("daemon", "ike_sa_up", f"IKE SA #{ev.ike_sa} {ev.conn} established: {ev.proposal}")
            elif isinstance(ev, XauthResult) and ev.ike_sa == w.ike_sa:
                if ev.ok:
                    w.line("daemon", "xauth", f"XAUTH of '{ev.user}' successful")
                else:
                    w.finish(False, f"{ev.conn}: XAUTH of '{ev.user}' failed: {ev.reason}")
            elif isinstance(ev, VirtualIps) and ev.ike_sa == w.ike_sa and ev.local:
                w.line("daemon", "virtual_ips", f"virtual IP {', '.join(ev.addresses)}")
            elif isinstance(ev, NegotiationFailed) and ev.ike_sa == w.ike_sa:
                w.finish(False, f"{ev.conn}: {ev.exchange} failed: {ev.reason}")
            elif isinstance(ev, IkeSaDeleted) and ev.ike_sa == w.ike_sa:
                w.finish(False, f"{ev.conn}: IKE SA #{ev.ike_sa} deleted: {ev.reason}")

    def fail(self, ike_sa: int, reason: str) -> None:
        for w in self._waiting:
            if w.ike_sa == ike_sa:
                w.finish(False, reason)

    def check(self, sas: Iterable[IkeSa]) -> None:
        """Finish the waiters whose IKE SA is established with every requested child."""
        if not self._waiting:
            return
        by_id = {sa.unique_id: sa for sa in sas}
        for w in self._waiting:
            sa = by_id.get(w.ike_sa)
            if w.done or sa is None or sa.state is not IkeState.ESTABLISHED:
                continue
            up = {c.child: c for c in sa.children}
            if all(name in up for name in w.children):
                parts = [f"IKE SA #{sa.unique_id} {w.conn} established"]
                parts += [
                    f"IPsec SA {w.conn}/{n} established (SPIs {up[n].spi_in:08x}_i {up[n].spi_out:08x}_o)"
                    for n in w.children
                ]
                w.finish(True, "; ".join(parts))


def _item(rec: Record) -> Item:
    return {"subsystem": rec.subsystem, "event": rec.event, "text": rec.render()}
