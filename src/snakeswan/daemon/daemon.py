"""The daemon: wires the IKE engine to UDP sockets, a timer, the control socket and the logs.

One asyncio loop. The UDP sockets are read with ``loop.add_reader`` (no datagram transports); after
every input the engine's output is flushed (:meth:`Daemon._pump`): datagrams sent, events handled,
the one timer re-armed from ``engine.get_timer()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import ipaddress
import logging
import os
import signal
import socket
import time
from typing import Any, TextIO

from snakeswan.config.loader import load_config
from snakeswan.config.model import Config
from snakeswan.control.protocol import COMMANDS
from snakeswan.crypto.dh_stock import DhStock, modp_groups
from snakeswan.daemon import cluster_state, eventlog, keylog, loglimit, persistence, views
from snakeswan.daemon.childsa import child_of_key
from snakeswan.daemon.cluster import ClusterNode
from snakeswan.daemon.control_server import ControlServer, raise_file_limit
from snakeswan.daemon.dataplane import DataPlane
from snakeswan.daemon.dh_worker import DhWorker, configured_groups
from snakeswan.daemon.instance import InstanceLock, claim_socket_path
from snakeswan.daemon.intake import Intake
from snakeswan.daemon.metrics import Metrics
from snakeswan.daemon.persistence import Persistence, Restored
from snakeswan.daemon.revocation import ask_ocsp
from snakeswan.daemon.routebased import interfaces
from snakeswan.daemon.waiters import Waiters
from snakeswan.errors import ConfigError, LocalError
from snakeswan.ike.engine import Engine
from snakeswan.ike.events import (
    ChildSaDeleted,
    ChildSaEstablished,
    ChildSaPreferred,
    Datagram,
    Event,
    IkeSaDeleted,
    KeyLog,
    OcspCheck,
    VirtualIps,
    XauthCheck,
)
from snakeswan.ike.impair import Impairer
from snakeswan.ike.shedding import Shedder
from snakeswan.io.kvstore import KvStore
from snakeswan.io.radius import RadiusAnswer, RadiusClient
from snakeswan.io.udp import UdpSocket, family_of, source_address_for
from snakeswan.trace import Record, Tracer

log = logging.getLogger("snakeswan.daemon")
LOG_SUMMARY_INTERVAL = 5.0
# the cyclic GC less often than Python's default (700, 10, 10): tens of thousands of SAs are
# millions of long-lived objects, and its passes over them were ~25 % of the CPU per handshake
# at 4,000-20,000 SAs (0.5 of 2.0 ms, both ends); with these, ~0.1 ms (bench note, issue 15).
# The middle one is small on purpose: a generation-1 pass walks what the generation-0 passes
# since the last one kept, so its pause grows with that count (at 50,000 SAs, 20 gave passes of
# up to 385 ms and a handshake p99 of 680 ms; 1 gives 48 ms and 433 ms, for the same total work);
# the last keeps full passes as rare as before (one per ~2,000 generation-0 passes)
GC_THRESHOLDS = (50_000, 1, 1000)


class Daemon:
    def __init__(
        self,
        config_path: str,
        *,
        control_path: str,
        keylog_path: str | None = None,
        log_keys: bool = False,
        impair: list[str] | None = None,
    ) -> None:
        self.config_path = config_path
        self.control_path = control_path
        self.keylog_path = keylog_path
        self.config: Config = load_config(config_path)
        self.tracer = Tracer(sink=self._on_record, log_keys=log_keys)  # log_keys: explicit opt-in
        self.engine = Engine(self.config, os.urandom, tracer=self.tracer, keylog=keylog_path is not None)
        self.sockets: dict[tuple[int, int], UdpSocket] = {}
        self.child_since: dict[int, float] = {}
        self.esp_dropped = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._stop = asyncio.Event()
        self._keylog_file: TextIO | None = None
        self.dataplane: DataPlane | None = None
        self.dataplane_error: str | None = None  # why the configured data plane is not running
        self.persist: Persistence | None = None  # [daemon] state: SAs written to a store (issue 14)
        self.cluster: ClusterNode | None = None  # [cluster]: shares owned through etcd
        self.dh_worker: DhWorker | None = None  # [daemon] dh_precompute: key pairs made ahead
        self.waiters = Waiters()
        self.metrics = Metrics(lambda: (self.engine, self.dataplane), time.monotonic)
        self.log_limit = loglimit.LogLimiter()
        self.intake = Intake(Shedder[tuple[bytes, bytes, bytes]](self.engine.knows))  # shed before parsing
        self.intake.shedder.apply(self.config.daemon.shedding)  # [daemon] new_sa_*
        # --impair: misbehave on purpose (tests, labs); None unless asked for
        self.impairer = Impairer.from_texts(impair, self.tracer) if impair else None
        if self.impairer is not None:
            self.impairer.attach(self.engine.ctx)  # payload rules act as messages are built
        self.control = ControlServer(
            control_path,
            self.handle_command,
            self.waiters.capture,
            self._up_waiting,
            lambda: self.tracer.records,
        )

    # ---- life cycle ---------------------------------------------------------------------------

    def run(self) -> int:
        # a reader that goes away (`snakeswan log | head`) must not kill the daemon: EPIPE instead
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        raise_file_limit()  # a thousand control clients at once, each a descriptor
        gc.set_threshold(*GC_THRESHOLDS)
        try:  # uvloop when installed (optional): a faster event loop, same behaviour
            import uvloop  # type: ignore[import-not-found]  # noqa: PLC0415

            uvloop.install()
        except ImportError:
            pass
        asyncio.run(self._main())
        return 0

    @property
    def mark(self) -> int:
        """The firewall mark of our sockets: their packets skip the TUN's routing table (io.routes)."""
        d = self.config.daemon
        return d.fwmark if d.dataplane and d.route_table else 0

    def _udp_socket(self, port: int, family: int, nat_t: bool) -> UdpSocket:
        d = self.config.daemon
        # with data-plane workers, theirs join the NAT-T socket's group (daemon/workers.py)
        reuseport = nat_t and d.dataplane and d.workers > 1
        try:
            return UdpSocket(port, family=family, nat_t=nat_t, mark=self.mark, reuseport=reuseport)
        except OSError as e:
            if e.errno != errno.EPERM or not self.mark:
                raise
            log.warning("UDP %d: %s; IKE may be routed into the TUN device", port, e.strerror)
            return UdpSocket(port, family=family, nat_t=nat_t, reuseport=reuseport)

    def _open_sockets(self) -> None:
        d = self.config.daemon
        for port, nat_t in ((d.port, False), (d.nat_port, True)):
            for family in (socket.AF_INET, socket.AF_INET6):
                try:
                    s = self._udp_socket(port, family, nat_t)
                except OSError as e:
                    if family == socket.AF_INET:
                        hint = " (another IKE daemon on this port?)" if e.errno == errno.EADDRINUSE else ""
                        raise LocalError(f"cannot open UDP port {port}: {e.strerror}{hint}") from None
                    log.info("no IPv6 socket on port %d: %s", port, e.strerror)
                    continue
                self.sockets[(family, port)] = s
                assert self._loop is not None
                self._loop.add_reader(s.fileno(), self._readable, s)
        log.info("listening on UDP %d and %d (NAT-T)", d.port, d.nat_port)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        # the engine's time is the loop's (monotonic); certificates are valid by the wall clock
        self.engine.ctx.wall_offset = time.time() - self._loop.time()
        lock = InstanceLock(self.control_path)
        lock.acquire()  # before any socket: a second daemon changes nothing of the first's
        serving = False
        try:
            if self.keylog_path:
                try:
                    self._keylog_file = open(self.keylog_path, "a", buffering=1)  # noqa: SIM115 - lives with the daemon
                except OSError as e:
                    raise LocalError(f"cannot open the key log {self.keylog_path}: {e.strerror}") from None
            self._open_sockets()
            self._start_dataplane()
            self._open_state()
            self._dh_helper()
            claim_socket_path(self.control_path)
            await self.control.start()
            serving = True
            if self.config.daemon.metrics is not None:
                await self.metrics.serve(self.config.daemon.metrics)
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._loop.add_signal_handler(sig, self._stop.set)
            self._loop.add_signal_handler(signal.SIGHUP, self._reload_on_signal)
            log.info(
                "snakeswan daemon started (pid %d): %d connections from %s",
                os.getpid(),
                len(self.config.connections),
                self.config_path,
            )
            if self.impairer is not None:
                log.warning(
                    "IMPAIRMENTS ACTIVE (this daemon misbehaves on purpose, for tests only): %s",
                    ", ".join(str(r) for r in self.impairer.rules),
                )
            self._start_actions()
            self._loop.call_later(LOG_SUMMARY_INTERVAL, self._log_summary)
            self._pump()
            await self._stop.wait()
            if self.cluster is not None:  # hand the shares over first: their SAs go on elsewhere
                await self.cluster.stop()
            log.info("stopping: deleting %d IKE SAs", len(self.engine.ike_sas))
            for sa in self.engine.ike_sas:
                with contextlib.suppress(LocalError):
                    self.engine.delete_ike(sa.unique_id, self._now(), "daemon stopping")
            self._pump()
        finally:
            self._shutdown(serving)
            lock.release()

    def _shutdown(self, serving: bool) -> None:
        """Undo what was set up, whatever got that far: routes, rules and the TUN device (the data
        plane), the UDP sockets, the control socket (ours: the lock is still held) last."""
        assert self._loop is not None
        if serving:
            self.control.close()
        self.intake.report(self._loop.time())  # what was shed and not yet logged
        self.log_limit.log_summary(time.monotonic())  # and the records the log limit kept out
        self.metrics.close()
        if self.dh_worker is not None:
            stock = self.dh_worker.stock
            log.info("DH key pairs: %d made ahead by the helper, %d made here", stock.taken, stock.missed)
            self._stop_dh_helper()
        if self.dataplane is not None:
            self.dataplane.close()
            self.dataplane = None
        for s in self.sockets.values():
            self._loop.remove_reader(s.fileno())
            s.close()
        self.sockets.clear()
        if self._keylog_file:
            self._keylog_file.close()
        if self.persist is not None:
            self.persist.close()
        if serving:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.control_path)
            log.info("stopped")

    def _dh_helper(self) -> None:
        """``[daemon] dh_precompute``: a helper process makes the MODP key pairs of the configured
        groups ahead of need (at start; a reload changes the groups, starts or stops it, or
        replaces a helper that was lost)."""
        if self._loop is None:  # not started (a reload in a test): start does this
            return
        groups = modp_groups(configured_groups(self.config))
        if not self.config.daemon.dh_precompute or not groups:
            self._stop_dh_helper()
            return
        if self.dh_worker is not None and self.dh_worker.running:
            self.dh_worker.stock.set_groups(groups)
            self.dh_worker.refill()
            return
        if self.dh_worker is not None:  # lost: a reload (the operator's doing) starts a new one
            self.dh_worker.close()
        stock = DhStock(groups)
        self.dh_worker = DhWorker(self._loop, stock)
        self.engine.ctx.dh_stock = stock
        self.dh_worker.start()

    def _stop_dh_helper(self) -> None:
        if self.dh_worker is not None:
            self.dh_worker.close()
            self.dh_worker = None
            self.engine.ctx.dh_stock = None  # the exchanges make their own pairs

    def _reload_on_signal(self) -> None:
        """SIGHUP: reload as `snakeswan reload` does; a bad file keeps the running configuration."""
        try:
            self._reload()
        except ConfigError as e:
            log.error("reload on SIGHUP failed, configuration unchanged: %s", e)

    def _start_dataplane(self) -> None:
        if not self.config.daemon.dataplane:
            log.info("data plane disabled by configuration ([daemon] dataplane = false): IKE only")
            return
        assert self._loop is not None
        try:
            self.dataplane = DataPlane(
                self.config, self._loop, lambda family, port: self.sockets.get((family, port)), self.tracer
            )
        except (LocalError, OSError) as e:
            self.dataplane_error = str(e)
            log.error(
                "data plane not available (%s): IPsec SAs will be refused; "
                "set [daemon] dataplane = false to negotiate IKE only",
                e,
            )
            return
        self.dataplane.on_events = self._pump
        self.dataplane.install_traps()
        self._loop.call_later(1.0, self._activity)

    def _open_state(self) -> None:
        """Open the state store, bring back the SAs it holds (before any start action); in a
        cluster, the shares' stores as the node wins them (daemon/cluster_state.py)."""
        if self.config.daemon.state == "etcd":
            self.persist, self.cluster = cluster_state.start(self)
            return
        self.persist = persistence.start(self)

    def restore(self, store: KvStore | None) -> Restored:
        """Bring back the SAs recorded in ``store`` (None: our own state store), now: at start, or
        on a running daemon (a standby taking over); SAs already up are left alone."""
        if self.persist is None:
            raise LocalError('no state store ([daemon] state = "none")')
        r = self.persist.restore(store, self._now(), prune=store is None)
        self.child_since.update(self.persist.since)
        self._pump()
        return r

    def _activity(self) -> None:
        """Once a second: IPsec SAs that received traffic tell DPD that their peer lives."""
        if self.dataplane is None or self._loop is None:
            return
        now = self._now()
        for sa_id, spis in self.dataplane.inbound_activity().items():
            self.engine.traffic_seen(sa_id, now, spis)
        self._loop.call_later(1.0, self._activity)

    def _dataplane_requests(self, now: float) -> None:
        dp = self.dataplane
        if dp is None:
            return
        acquires, dp.acquires = dp.acquires, []
        for a in acquires:
            log.info(
                "acquire: %s %s -> %s (proto %d) needs %s/%s",
                a.version,
                a.src,
                a.dst,
                a.protocol,
                *a.policy_key,
            )
            try:
                self._initiate(a.policy_key[0], child_of_key(a.policy_key[1]), pump=False)
            except LocalError as e:
                log.warning("acquire for %s/%s: %s", *a.policy_key, e)
        limits, dp.limits = dp.limits, []
        for ev in limits:
            info = dp.children.get(ev.spi) or next(
                (c for c in dp.children.values() if c.spi_out == ev.spi), None
            )
            if info is None:
                continue
            log.info("IPsec SA %08x_i reached its %s limit (%s)", info.spi_in, ev.kind, ev.reason)
            with contextlib.suppress(LocalError):
                if ev.kind == "soft":
                    self.engine.rekey_child(info.ike_sa, info.spi_in, now)
                else:
                    self.engine.delete_child(info.ike_sa, info.spi_in, now)

    def _start_actions(self) -> None:
        for conn in self.config.connections:
            for child in conn.children:
                if child.start_action == "start":
                    try:
                        self._initiate(conn.name, child.name)
                    except LocalError as e:
                        log.error("start_action of %s/%s: %s", conn.name, child.name, e)

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    # ---- engine I/O ---------------------------------------------------------------------------

    def _readable(self, sock: UdpSocket) -> None:
        now = self._now()
        esp: list[bytes] = []
        for r in self.intake.drain(sock, now):
            if r.kind == "ike":
                if self.impairer is not None:
                    self.impairer.inbound(r.data)
                self.engine.receive_datagram(r.data, r.src, r.dst, now)
            elif r.kind == "esp":
                esp.append(r.data)
        if esp:  # the intake hands ESP over first, IKE after: one data plane batch
            if self.dataplane is not None:
                self.dataplane.esp_many(esp, now)
            else:
                self.esp_dropped += len(esp)
        self._pump()

    def _send(self, d: Datagram) -> None:
        if self.impairer is not None:
            for x in self.impairer.outbound(d, self._now()):
                self._send_one(x)
        else:
            self._send_one(d)

    def _send_one(self, d: Datagram) -> None:
        sock = self.sockets.get((family_of(d.src[0]), d.src[1]))
        if sock is None:
            log.warning("no socket for %s:%d, datagram dropped", *d.src)
            return
        try:
            sock.send(d.data, d.src[0], d.dst, ike=not d.keepalive)
        except OSError as e:
            log.warning("sending to %s:%d failed: %s", d.dst[0], d.dst[1], e.strerror)

    def _pump(self) -> None:
        now = self._now()
        self._dataplane_requests(now)
        for d in self.engine.datagrams_to_send(now):
            self._send(d)
        while (ev := self.engine.next_event()) is not None:
            self._on_event(ev, now)
        if self.persist is not None:
            self.persist.flush()  # the SAs this iteration touched, one batch
        for d in self.engine.datagrams_to_send(now):
            self._send(d)
        self._arm_timer(now)
        self.waiters.check(self.engine.table)  # the table itself: no copy of every SA per input
        if self.dh_worker is not None:
            self.dh_worker.refill()  # top up the key pairs this input took

    def _arm_timer(self, now: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due = self.engine.get_timer()
        if self.dataplane is not None:
            dp_due = self.dataplane.processor.get_timer()
            if dp_due is not None:
                due = dp_due if due is None else min(due, dp_due)
        if self.impairer is not None and (held := self.impairer.get_timer()) is not None:
            due = held if due is None else min(due, held)  # delayed/reordered datagrams
        if due is not None:
            assert self._loop is not None
            self._timer = self._loop.call_at(max(due, now), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        now = self._now()
        self.engine.handle_timer(now)
        if self.dataplane is not None:
            self.dataplane.timer(now)
        for d in self.impairer.release(now) if self.impairer is not None else ():
            self._send_one(d)
        self._pump()

    def _on_event(self, ev: Event, now: float) -> None:
        self.waiters.on_event(ev)
        if self.persist is not None:
            self.persist.on_event(ev)
        if isinstance(ev, ChildSaEstablished):
            c = ev.child
            self.child_since[c.spi_in] = now
            if self.dataplane is not None or self.dataplane_error is not None:
                try:
                    if self.dataplane is None:
                        raise LocalError(f"the data plane is not available ({self.dataplane_error})")
                    self.dataplane.child_up(c, now)
                except (LocalError, OSError) as e:
                    log.error(
                        "IPsec SA %s/%s could not be installed in the data plane: %s; deleting it",
                        c.conn,
                        c.child,
                        e,
                    )
                    self.waiters.fail(c.ike_sa, f"IPsec SA {c.conn}/{c.child} not installed: {e}")
                    # no half SA: the peer is told (Delete) and list-sas no longer shows it
                    with contextlib.suppress(LocalError):
                        self.engine.delete_child(c.ike_sa, c.spi_in, now)
                    return
            if self._keylog_file:
                for line in keylog.esp_lines(c):
                    self._keylog_file.write(line + "\n")
        elif isinstance(ev, KeyLog) and self._keylog_file and ev.ikev1_line:
            self._keylog_file.write(ev.ikev1_line + "\n")
        elif isinstance(ev, VirtualIps):
            self._virtual_ips(ev)
        elif isinstance(ev, XauthCheck):
            self._radius_check(ev)
        elif isinstance(ev, OcspCheck):
            ask_ocsp(self._loop, self.engine, ev, self._now, self._pump)
        elif isinstance(ev, IkeSaDeleted):
            if self.dataplane is not None:
                self.dataplane.remove_vips(ev.ike_sa)
        elif isinstance(ev, ChildSaPreferred):
            if self.dataplane is not None:
                self.dataplane.prefer(ev.spi_in)
        elif isinstance(ev, ChildSaDeleted):
            self.child_since.pop(ev.spi_in, None)
            if self.dataplane is not None:
                gone = self.dataplane.child_down(ev.spi_in)
                if ev.then == "none":  # "trap" keeps the policy, "start" negotiates again
                    self.dataplane.child_closed(ev.conn, ev.child, gone)
        eventlog.log_event(ev)

    def _radius_check(self, ev: XauthCheck) -> None:
        """Ask the RADIUS server in a worker thread; the engine gets the verdict when it comes."""
        radius = self.config.radius
        assert self._loop is not None
        if radius is None:  # the loader refuses this; a reload may have removed the section
            self.engine.xauth_verdict(ev.ike_sa, False, "no [radius] server configured", self._now())
            return
        log.info("IKE SA #%d %s: asking RADIUS %s about '%s'", ev.ike_sa, ev.conn, radius.address, ev.user)
        future = self._loop.run_in_executor(None, RadiusClient(radius).authenticate, ev.user, ev.password)

        def done(f: asyncio.Future[RadiusAnswer]) -> None:
            try:
                answer = f.result()
            except Exception as e:  # a bug in the client must not leave the SA waiting silently
                answer = RadiusAnswer(False, f"RADIUS check failed: {e!r}")
            self.engine.xauth_verdict(ev.ike_sa, answer.ok, answer.reason, self._now())
            self._pump()

        future.add_done_callback(done)

    def _virtual_ips(self, ev: VirtualIps) -> None:
        if ev.local and self.dataplane is not None:
            try:
                self.dataplane.add_vips(ev.ike_sa, ev.addresses, ev.split_include)
            except LocalError as e:
                log.error(
                    "virtual IP %s could not be put on %s: %s", ev.addresses, self.dataplane.tun.name, e
                )

    def _on_record(self, rec: Record) -> None:
        self.waiters.on_record(rec)  # every record: an `up` waiting follows its own SA
        self.metrics.on_record(rec)  # counters: every record, whatever the log shows
        if self.persist is not None:
            self.persist.on_record(rec)  # lifetimes lowered after the fact: rewrite the SA's record
        if self.log_limit.log(rec, time.monotonic()):  # logged (not kept out by the rate limit)
            self.control.publish(rec)

    def _log_summary(self) -> None:
        """Every few seconds: how many records of each kind the rate limit kept out of the log."""
        self.log_limit.log_summary(time.monotonic())
        if self._loop is not None:
            self._loop.call_later(LOG_SUMMARY_INTERVAL, self._log_summary)

    # ---- control ------------------------------------------------------------------------------

    def _initiate(self, conn_name: str, child: str | None, *, pump: bool = True) -> int:
        local = None
        try:
            conn = self.config.connection(conn_name)
        except KeyError:
            raise LocalError(f"no connection named {conn_name!r}") from None
        if self.dataplane_error is not None and conn.children:
            raise LocalError(
                f"{conn_name}: its IPsec SAs need the data plane, which is not available "
                f"({self.dataplane_error}); [daemon] dataplane = false negotiates IKE only"
            )
        if not any(_is_ip(a) for a in conn.local_addrs):
            remote = next((a for a in conn.remote_addrs if _is_ip(a)), None)
            if remote is not None:
                local = source_address_for(remote, mark=self.mark)
        sa_id = self.engine.initiate(conn_name, child, self._now(), local=local)
        if pump:
            self._pump()
        return sa_id

    def _down(self, conn_name: str, child: str | None) -> int:
        count = 0
        now = self._now()
        for sa in self.engine.ike_sas:
            if sa.name != conn_name:
                continue
            if child is None:
                self.engine.delete_ike(sa.unique_id, now)
                count += 1
            else:
                for c in [c for c in sa.children if c.child == child]:
                    self.engine.delete_child(sa.unique_id, c.spi_in, now)
                    count += 1
        self._pump()
        if count == 0:
            raise LocalError(f"no SA of {conn_name}{'/' + child if child else ''} to delete")
        return count

    def _rekey(self, conn_name: str, child: str | None) -> int:
        """Rekey the IPsec SAs of ``conn_name`` (or of its child ``child``) now, make before break."""
        count = 0
        now = self._now()
        for sa in self.engine.ike_sas:
            if sa.name == conn_name:
                for c in [c for c in sa.children if child is None or c.child == child]:
                    self.engine.rekey_child(sa.unique_id, c.spi_in, now)
                    count += 1
        self._pump()
        if count == 0:
            raise LocalError(f"no IPsec SA of {conn_name}{'/' + child if child else ''} to rekey")
        return count

    def _reload(self) -> list[str]:
        config = load_config(self.config_path)
        if config.daemon.metrics != self.config.daemon.metrics:  # the endpoint is bound at start
            raise ConfigError(f"{self.config_path}: daemon.metrics: changing the endpoint needs a restart")
        if config.daemon.workers != self.config.daemon.workers:  # the TUN queues are made at start
            raise ConfigError(f"{self.config_path}: daemon.workers: changing it needs a restart")
        if interfaces(config) != interfaces(self.config):  # their TUN devices are made at start
            raise ConfigError(f"{self.config_path}: route-based children (interface) change: restart")
        self.config = config
        self.engine.reconfigure(config)
        self.intake.shedder.apply(config.daemon.shedding)
        self._dh_helper()
        if self.dataplane is not None:
            self.dataplane.config = config
            self.dataplane.install_traps()
        log.info("configuration reloaded: %d connections", len(config.connections))
        return [c.name for c in config.connections]

    def handle_command(self, command: str, args: dict[str, Any]) -> Any:
        """Execute one control command (the socket server and tests call this)."""
        if command == "up":
            return {"ike_sa": self._initiate(str(args["conn"]), args.get("child"))}
        if command == "down":
            return self._down(str(args["conn"]), args.get("child"))
        if command == "rekey":
            return self._rekey(str(args["conn"]), args.get("child"))
        if command == "list-sas":
            now = self._now()
            counters = self.dataplane.counters() if self.dataplane is not None else None
            # an iterator: the control server streams it, rendering an SA as it sends it
            return (
                {
                    **views.ike_view(sa, now, self.child_since, counters),
                    **cluster_state.owner_fields(self, sa),
                }
                for sa in list(self.engine.ike_sas)
            )
        if command == "list-conns":
            return iter(views.conns_view(self.config))
        if command == "list-pools":
            return self.engine.leases.listing()
        if command == "list-pols":
            if self.dataplane is None:
                raise LocalError("no data plane: no policies")
            return self.dataplane.policies()
        if command == "reload":
            return self._reload()
        if command == "stop":
            self._stop.set()
            return True
        raise LocalError(f"unknown command {command!r}; known: {', '.join(COMMANDS)}")

    async def _up_waiting(self, writer: asyncio.StreamWriter, args: dict[str, Any]) -> None:
        """``up`` with ``wait``: stream the IKE SA's records, end with the outcome or a timeout."""
        conn_name, child = str(args["conn"]), args.get("child")
        timeout = float(args.get("timeout") or 60.0)
        try:
            conn = self.config.connection(conn_name)
        except KeyError:
            raise LocalError(f"no connection named {conn_name!r}") from None
        w = self.waiters.add(conn_name, [str(child)] if child else [c.name for c in conn.children])
        try:
            with self.waiters.capture() as first:  # MM1/AM1 goes out before the id is known
                w.ike_sa = self._initiate(conn_name, child, pump=False)
            for item in first:
                w.queue.put_nowait(item)
            self._pump()
            await w.send_until_done(writer, timeout)
        finally:
            self.waiters.remove(w)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
