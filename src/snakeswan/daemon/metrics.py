"""The Prometheus endpoint (``[daemon] metrics = "127.0.0.1:9400"``), with prometheus-client.

Counters move with the trace records the engine and the data plane emit (the daemon hands each
record to :meth:`Metrics.on_record`): establishments, failures by reason (the Notify type, or
``timeout``), rekeys, DPD events, retransmissions, a phase 1 latency histogram. Gauges are read
from the engine and the data plane when scraped: IKE SAs by state, IPsec SAs by state, bytes and
packets per IPsec SA, drops by reason (the processor's counters). Scrapes are served on the
daemon's own event loop (a small asyncio HTTP/1.0 server), so reading the SA tables never races
with the protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from snakeswan.trace import Record
from snakeswan.wire.enums import NotifyType, name_of

if TYPE_CHECKING:
    from snakeswan.daemon.dataplane import DataPlane
    from snakeswan.ike.engine import Engine

log = logging.getLogger("snakeswan.daemon")

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_FIRST = ("MM1", "AM1")
_DPD_NOTIFIES = {"R_U_THERE": "probe_received", "R_U_THERE_ACK": "ack"}
Source = Callable[[], "tuple[Engine, DataPlane | None]"]


class _State(Collector):
    """Gauges read at scrape time from the engine and the data plane."""

    def __init__(self, source: Source) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        engine, dp = self.source()
        ike = GaugeMetricFamily("snakeswan_ike_sas", "IKE (ISAKMP) SAs by state", labels=["state"])
        by_state = {"connecting": 0, "established": 0, "deleted": 0}
        children = 0
        for sa in engine.ike_sas:
            by_state[sa.state.value] = by_state.get(sa.state.value, 0) + 1
            children += len(sa.children)
        for state, n in sorted(by_state.items()):
            ike.add_metric([state], n)
        yield ike
        ipsec = GaugeMetricFamily("snakeswan_ipsec_sas", "IPsec SA pairs by state", labels=["state"])
        ipsec.add_metric(["established"], children)
        ipsec.add_metric(["installed"], len(dp.children) if dp is not None else 0)
        yield ipsec
        yield from self._dataplane(dp)

    def _dataplane(self, dp: DataPlane | None) -> Iterator[Metric]:
        labels = ["conn", "child", "spi_in", "direction"]
        nbytes = CounterMetricFamily("snakeswan_ipsec_bytes", "Inner bytes per IPsec SA", labels=labels)
        packets = CounterMetricFamily("snakeswan_ipsec_packets", "Packets per IPsec SA", labels=labels)
        sa_drops = CounterMetricFamily(
            "snakeswan_ipsec_sa_drops",
            "Inbound packets dropped per IPsec SA and reason",
            labels=[*labels[:3], "reason"],
        )
        drops = CounterMetricFamily(
            "snakeswan_dataplane_drops", "Packets dropped by reason", labels=["reason"]
        )
        if dp is not None:
            for spi_in, c in dp.counters().items():
                info = dp.children.get(spi_in)
                conn, child = (info.conn, info.child) if info is not None else ("?", "?")
                spi = f"{spi_in:08x}"
                for d in ("in", "out"):
                    nbytes.add_metric([conn, child, spi, d], c.get(f"bytes_{d}", 0))
                    packets.add_metric([conn, child, spi, d], c.get(f"packets_{d}", 0))
                for key, n in c.items():
                    if key.startswith("drop_"):
                        sa_drops.add_metric([conn, child, spi, key.removeprefix("drop_")], n)
            for reason, n in sorted(dp.drops().items()):
                drops.add_metric([reason], n)
        queued = GaugeMetricFamily(
            "snakeswan_dataplane_queued_packets",
            "Packets waiting for an IPsec SA, per policy",
            labels=["policy"],
        )
        if dp is not None:
            for policy, state in dp.processor.spd.children.items():
                if state.queue:
                    queued.add_metric(["/".join(policy)], len(state.queue))
        yield from (nbytes, packets, sa_drops, drops, queued)


class Metrics:
    """The registry, the counters the trace moves, and the HTTP endpoint."""

    def __init__(self, source: Source, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.established = Counter("snakeswan_established", "SAs established", ["kind", "conn"], registry=r)
        self.failures = Counter(
            "snakeswan_failures",
            "Negotiations failed, by exchange and reason",
            ["exchange", "reason"],
            registry=r,
        )
        self.rejected = Counter(
            "snakeswan_messages_rejected",
            "Messages dropped as unauthentic",
            ["exchange", "notify"],
            registry=r,
        )
        self.rekeys = Counter("snakeswan_rekeys", "Rekeys started", ["kind"], registry=r)
        self.dpd = Counter("snakeswan_dpd_events", "Dead Peer Detection events", ["event"], registry=r)
        self.retransmissions = Counter(
            "snakeswan_retransmissions", "Messages sent again", ["exchange"], registry=r
        )
        self.messages = Counter("snakeswan_ike_messages", "IKE messages", ["direction"], registry=r)
        self.latency = Histogram(
            "snakeswan_ike_handshake_seconds",
            "Phase 1 duration: first message to ISAKMP SA established",
            ["role"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        r.register(_State(source))
        self._started: dict[str, tuple[float, str]] = {}  # IKE SA id -> (time, role)
        self._server: asyncio.AbstractServer | None = None

    # ---- counters from the trace ------------------------------------------------------------

    def on_record(self, rec: Record) -> None:
        f, ev = rec.fields, rec.event
        sa = str(f.get("sa", ""))
        if ev in ("sent", "received"):
            self.messages.labels(ev).inc()
            if str(f.get("msg")) in _FIRST and sa not in self._started:
                self._started[sa] = (self.clock(), "initiator" if ev == "sent" else "responder")
        elif ev == "ike_sa_established":
            self.established.labels("ike", str(f.get("conn", "?"))).inc()
            start = self._started.pop(sa, None)
            if start is not None:
                self.latency.labels(start[1]).observe(max(0.0, self.clock() - start[0]))
        elif ev == "child_sa_established":
            self.established.labels("ipsec", str(f.get("child", "?"))).inc()
        elif ev == "exchange_failed":
            self.failures.labels(str(f.get("exchange", "?")), _notify(f.get("notify"))).inc()
        elif ev == "give_up":
            self.failures.labels(str(f.get("exchange", "?")), "timeout").inc()
        elif ev == "message_rejected":
            self.rejected.labels(str(f.get("exchange", "?")), str(f.get("notify", "?"))).inc()
        elif ev == "retransmit":
            self.retransmissions.labels(str(f.get("exchange", "?"))).inc()
        elif ev in ("ike_rekey", "child_rekey"):
            self.rekeys.labels("ike" if ev == "ike_rekey" else "ipsec").inc()
        elif ev in ("dpd_probe", "dpd_timeout"):
            self.dpd.labels(ev.removeprefix("dpd_")).inc()
        elif ev == "notify_received" and f.get("type") in _DPD_NOTIFIES:
            self.dpd.labels(_DPD_NOTIFIES[str(f.get("type"))]).inc()
        elif ev == "ike_sa_deleted":
            self._started.pop(sa, None)

    def scrape(self) -> bytes:
        return generate_latest(self.registry)

    # ---- the endpoint -------------------------------------------------------------------------

    async def serve(self, address: tuple[str, int]) -> None:
        self._server = await asyncio.start_server(self._client, address[0], address[1])
        log.info("metrics on http://%s/metrics", f"[{address[0]}]:{address[1]}" if ":" in address[0] else
                 f"{address[0]}:{address[1]}")  # fmt: skip

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5.0)
            while (line := await asyncio.wait_for(reader.readline(), 5.0)) not in (b"\r\n", b"\n", b""):
                del line  # headers are not needed
            parts = request.decode("latin-1").split()
            if len(parts) >= 2 and parts[0] == "GET" and parts[1].split("?")[0] in ("/metrics", "/"):
                status, body, ctype = "200 OK", self.scrape(), "text/plain; version=0.0.4; charset=utf-8"
            else:
                status, body, ctype = "404 Not Found", b"not found: GET /metrics\n", "text/plain"
            head = f"HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            with contextlib.suppress(ConnectionError):
                writer.close()


def _notify(value: object) -> str:
    if isinstance(value, int):
        return name_of(NotifyType, value)
    return str(value or "?")
