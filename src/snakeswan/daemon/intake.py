"""The daemon's intake of UDP datagrams: drained in batches, shed before parsing (issue 15).

Each time a socket is readable, :meth:`Intake.drain` reads up to :attr:`Intake.max_reads`
``recvmmsg`` calls' worth (64 datagrams each), then sorts the IKE datagrams with
:class:`~snakeswan.ike.shedding.Shedder` from their raw bytes: ESP-in-UDP and IKE for SAs we hold
first, new IKE SAs under the budget (lowered while the reads come back full and half of what
they hold is IKE), the rest dropped and counted here rather than by the kernel's overflow. Only
what is kept gets its addresses and control messages decoded and the engine's parse. The loop
goes back to its other work (timers, the control socket) after each drain, and the socket,
still readable, brings us back.

What was shed is logged once every :data:`LOG_EVERY` seconds at most, as counts by reason.
"""

from __future__ import annotations

import logging

from snakeswan.ike.shedding import Shedder, prefix_of
from snakeswan.io.udp import KEEPALIVE, NON_ESP_MARKER, Received, UdpSocket

log = logging.getLogger("snakeswan.daemon")
LOG_EVERY = 5.0
_Raw = tuple[bytes, bytes, bytes]  # data, packed source sockaddr, control buffer


def _packed_source(name: bytes) -> bytes:
    """The address inside a packed ``sockaddr_in`` (16 bytes) / ``sockaddr_in6`` (28)."""
    return name[8:24] if len(name) >= 28 else name[4:8]


class Intake:
    def __init__(self, shedder: Shedder[_Raw], *, max_reads: int = 16, per_read: int = 64) -> None:
        self.shedder = shedder
        self.max_reads = max_reads
        self.per_read = per_read
        self._logged_at: float | None = None
        self._logged = 0

    def drain(self, sock: UdpSocket, now: float) -> list[Received]:
        """What to hand on from ``sock`` now: ESP first, then IKE as :meth:`Shedder.sort` keeps it."""
        raw: list[_Raw] = []
        backlog = True
        for _ in range(self.max_reads):
            got = sock.receive_raw(self.per_read)
            raw += got
            if len(got) < self.per_read:
                backlog = False
                break
        out: list[Received] = []
        batch: list[tuple[bytes, bytes, _Raw]] = []
        for entry in raw:
            data, name, control = entry
            if sock.nat_t:
                if sock.coalesced(control):  # UDP GRO: cut apart, then each on its own merits
                    for r in sock.decode(data, name, control):
                        if r.kind == "esp":
                            out.append(r)
                        elif r.kind == "ike":
                            ike = NON_ESP_MARKER + r.data
                            batch.append((r.data, prefix_of(_packed_source(name)), (ike, name, control)))
                    continue
                if data == KEEPALIVE:
                    continue  # NAT-T keepalives carry nothing to act on
                if data[:4] != NON_ESP_MARKER:
                    out.extend(sock.decode(data, name, control))  # ESP: the data plane's business
                    continue
                batch.append((data[4:], prefix_of(_packed_source(name)), entry))
            else:
                batch.append((data, prefix_of(_packed_source(name)), entry))
        # a backlog of ESP-in-UDP (a busy data plane) is not an IKE overload: only when at least
        # half of what was read is IKE does the budget for new IKE SAs fall
        backlog = backlog and 2 * len(batch) >= len(raw)
        for data, name, control in self.shedder.sort(batch, now, backlog=backlog):
            out.extend(sock.decode(data, name, control))
        self._report(now)
        return out

    def report(self, now: float) -> None:
        """Log what was shed since the last line now, whatever the interval (at shutdown)."""
        self._report(now, force=True)

    def _report(self, now: float, *, force: bool = False) -> None:
        total = sum(self.shedder.dropped.values())
        if total == self._logged:
            return
        if not force and self._logged_at is not None and now - self._logged_at < LOG_EVERY:
            return
        counts = ", ".join(f"{n} x {reason}" for reason, n in self.shedder.dropped.most_common())
        log.warning("%d IKE datagrams dropped before parsing so far (%s)", total, counts)
        self._logged_at, self._logged = now, total
