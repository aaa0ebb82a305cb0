"""One data-plane worker process (``[daemon] workers = N``, N > 1): ``python -m
snakeswan.daemon.dp_worker``, started by the daemon (:mod:`snakeswan.daemon.workers`).

What it holds: one queue of the daemon's multi-queue TUN device (its fd inherited), its own raw
ESP sockets (IPv4 and IPv6, in the daemon's network namespace, with its firewall mark) carrying
the SPI filter of its number (:mod:`snakeswan.io.steering`), its sockets in the NAT-T port's
``SO_REUSEPORT`` groups (opened and held by the daemon: ESP-in-UDP of its SPIs), its inbox (a
datagram socket the other workers and the daemon hand it packets through) and a control socket to
the daemon. Its
:class:`~snakeswan.ipsec.Processor` is a replica of the daemon's: the daemon sends every policy and
SA pair, and the worker processes the packets of the pairs it owns and hands the others' to their
owner (:class:`~snakeswan.ipsec.Handoff`).

Once a second it reports the counters of its pairs that moved (the daemon's copy takes them:
listings, DPD's sign of life, checkpoints), its drop counters and its own counts. Acquires and
the volume limits its pairs reach go to the daemon at once; time limits are the daemon's own
processor's to report (every replica has the same clock). It exits when the daemon closes the
control socket (a daemon killed with -9 included), and ignores SIGINT, SIGTERM and SIGHUP, which a
terminal or a service manager may send to the whole process group: the daemon decides when it
stops (a graceful stop deletes the SAs while the workers still carry traffic).
"""

from __future__ import annotations

import argparse
import logging
import math
import pickle
import select
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable

from snakeswan.daemon.workers import (
    MAX_MESSAGE,
    REPORT_INTERVAL,
    decode,
    encode,
    inbox_batch,
    receive,
    send_handoffs,
    send_udp,
)
from snakeswan.errors import LocalError
from snakeswan.io.entropy import BufferedRandom
from snakeswan.io.rawip import ESP, RawIp
from snakeswan.io.tun import Tun
from snakeswan.io.udp import UdpSocket
from snakeswan.ipsec import (
    Acquire,
    Bypass,
    Deliver,
    Expired,
    Handoff,
    Output,
    Processor,
    SendIp,
    SendUdp,
)
from snakeswan.ipsec.checkpoint import resume

log = logging.getLogger("snakeswan.dataplane")

REPORT_CHUNK = 1000  # pairs per report message (a control message stays well under its buffer)


class Worker:
    """The worker's loop (module docstring). ``inboxes[k]`` writes to worker ``k``'s inbox."""

    def __init__(
        self,
        index: int,
        workers: int,
        tun: Tun,
        control: socket.socket,
        inbox: socket.socket,
        inboxes: dict[int, socket.socket],
        mark: int,
        udp: list[UdpSocket] | None = None,
    ) -> None:
        self.index = index
        self.tun = tun
        self.control = control
        self.inbox = inbox
        self.inboxes = inboxes
        self.processor = Processor(BufferedRandom(), worker=index)
        counts = ("tun_read", "esp_read", "udp_read", "udp_not_esp", "handed_out", "handed_in")
        self.stats = dict.fromkeys((*counts, "handoff_lost", "unrouted"), 0)
        self.udp = {sock.family: sock for sock in udp or ()}  # its sockets in the NAT-T groups
        self.unexpected = 0
        self.stopping = False
        self._buffer = bytearray(MAX_MESSAGE)
        self.raw: list[RawIp] = [RawIp(ESP, mark=mark, steer=(index, workers))]
        try:
            self.raw.append(RawIp(ESP, socket.AF_INET6, mark=mark, steer=(index, workers)))
        except LocalError as e:
            log.info("no IPv6 ESP socket: %s", e)
        self.ready = False  # the daemon's whole state is in: packets may be read
        self.sel = selectors.DefaultSelector()
        self.sel.register(control.fileno(), selectors.EVENT_READ, self._control)

    def _start_reading(self) -> None:
        """After the state: until then the packets wait in the kernel's queues, for a packet
        read before its policy came would be dropped as covered by none."""
        handlers: list[tuple[int, Callable[[], None]]] = [
            (self.tun.fileno(), self._tun),
            (self.inbox.fileno(), self._inbox),
        ]
        handlers += [(sock.fileno(), self._raw_reader(sock)) for sock in self.raw]
        handlers += [(sock.fileno(), self._udp_reader(sock)) for sock in self.udp.values()]
        for fd, handler in handlers:
            self.sel.register(fd, selectors.EVENT_READ, handler)
        self.ready = True

    def run(self) -> int:
        next_report = time.monotonic() + REPORT_INTERVAL
        control = self.control.fileno()
        while not self.stopping:
            timer = self.processor.get_timer()
            wake = min(next_report, timer if timer is not None else math.inf)
            ready = self.sel.select(max(0.0, wake - time.monotonic()))
            # the daemon's changes first: a packet is processed with every change sent before it
            for key, _ in sorted(ready, key=lambda kv: kv[0].fd != control):
                key.data()
                if self.stopping:
                    break
            now = time.monotonic()
            timer = self.processor.get_timer()
            if timer is not None and timer <= now:
                self.processor.handle_timer(now)
            self._forward_events()
            if now >= next_report:
                self._report()
                next_report = now + REPORT_INTERVAL
        self.close()
        return 0

    # ---- packets ----------------------------------------------------------------------------------

    def _tun(self) -> None:
        packets = self.tun.read(64)
        if packets:
            self.stats["tun_read"] += len(packets)
            self._emit(self.processor.outbound_many(packets, time.monotonic()))

    def _raw_reader(self, sock: RawIp) -> Callable[[], None]:
        def readable() -> None:
            payloads = sock.receive_payloads(64)
            if payloads:
                self.stats["esp_read"] += len(payloads)
                self._esp(payloads, handoff=True)

        return readable

    def _udp_reader(self, sock: UdpSocket) -> Callable[[], None]:
        def readable() -> None:
            payloads = []
            for r in sock.receive(64):
                if r.kind == "esp":
                    payloads.append(r.data)
                else:  # the group's program gives IKE and keepalives to the daemon: never here
                    self.stats["udp_not_esp"] += 1
                    if self.stats["udp_not_esp"] == 1:
                        log.warning("worker %d: %s on the NAT-T port: dropped", self.index, r.kind)
            if payloads:
                self.stats["udp_read"] += len(payloads)
                self._esp(payloads, handoff=True)

        return readable

    def _esp(self, payloads: list[bytes], *, handoff: bool) -> None:
        delivered, other = self.processor.inbound_esp_many(payloads, time.monotonic())
        if delivered:
            self.tun.write_many(delivered)
        if other:
            self._emit(other, handoff=handoff)

    def _inbox(self) -> None:
        outbound, inbound = inbox_batch(self.inbox)
        self.stats["handed_in"] += len(outbound) + len(inbound)
        now = time.monotonic()
        if outbound:  # handed over by a worker whose queue the kernel chose: ours to protect
            self._emit(self.processor.outbound_many(outbound, now), handoff=False)
        if inbound:
            self._esp(inbound, handoff=False)

    def _emit(self, outputs: list[Output], *, handoff: bool = True) -> None:
        """Carry out the processor's outputs. ``handoff`` False: what came handed over is not
        handed on again (replicas that disagree for a moment must not bounce a packet)."""
        raw4: list[tuple[bytes, str, str | None]] = []
        raw6: list[tuple[bytes, str, str | None]] = []
        delivered: list[bytes] = []
        handoffs: list[Handoff] = []
        udp: list[SendUdp] = []
        for o in outputs:
            if type(o) is SendIp:
                (raw6 if ":" in o.dst else raw4).append((o.payload, o.dst, o.src))
            elif type(o) is SendUdp:
                udp.append(o)
            elif type(o) is Handoff:
                handoffs.append(o)
            elif type(o) is Deliver:
                delivered.append(o.ip_packet)
            elif type(o) is Bypass:
                self.stats["unrouted"] += 1  # routed into the TUN, no policy covers it: dropped
            else:  # AH, route-based children: pairs the daemon owns
                self.unexpected += 1
                if self.unexpected == 1:
                    name = type(o).__name__
                    log.warning("worker %d: an output it cannot send (%s): dropped", self.index, name)
        if raw4:
            self.raw[0].send_many(raw4)
        if raw6 and len(self.raw) > 1:
            self.raw[1].send_many(raw6)
        if udp:
            self.unexpected += send_udp(udp, self._udp_socket)
        if delivered:
            self.tun.write_many(delivered)
        if handoffs:
            if handoff:
                sent, lost = send_handoffs(self.inboxes, handoffs)
                self.stats["handed_out"] += sent
                self.stats["handoff_lost"] += lost
            else:
                self.stats["handoff_lost"] += len(handoffs)

    def _udp_socket(self, family: int, port: int) -> UdpSocket | None:
        sock = self.udp.get(family)
        return sock if sock is not None and sock.port == port else None

    # ---- the daemon -------------------------------------------------------------------------------

    def _control(self) -> None:
        """Every control message queued (the daemon's changes in order)."""
        while not self.stopping:
            try:
                data = receive(self.control, self._buffer)
                if data is None:
                    return
                msg = decode(data) if data else None
            except (OSError, ValueError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as e:
                log.error("worker %d: control socket: %s: stopping", self.index, e)
                msg = None
            if msg is None:  # the daemon closed it (or talks nonsense): stop
                self.stopping = True
                return
            self.apply(msg)

    def apply(self, msg: tuple[object, ...]) -> None:
        if msg[0] == "ready":
            if not self.ready:
                self._start_reading()
            return
        try:
            out = apply(self.processor, msg)
        except LocalError as e:
            log.warning("worker %d: %s: %s", self.index, msg[0], e)
            return
        if out:
            self._emit(out)

    def _send(self, msg: tuple[object, ...]) -> None:
        data = encode(msg)
        for _ in range(2):
            try:
                self.control.send(data)
                return
            except BlockingIOError:  # the daemon is busy: a second, then this report is lost
                select.select([], [self.control], [], 1.0)
            except OSError as e:  # the daemon is gone (it closes us next)
                log.warning("worker %d: report not sent: %s", self.index, e)
                return
        log.warning("worker %d: the daemon takes no reports: one lost", self.index)

    def _forward_events(self) -> None:
        events: list[Acquire | Expired] = []
        while (ev := self.processor.next_event()) is not None:
            if isinstance(ev, Acquire) or ev.reason != "time":  # time limits: the daemon's own
                events.append(ev)
        if events:
            self._send(("events", events))

    def _report(self) -> None:
        received, sent = self.processor.take_moved()
        mine = []
        for spi_in in received | sent:
            pair = self.processor.pair(spi_in)
            if pair is not None and pair[0].owner == self.index:
                mine.append(spi_in)
        for i in range(0, len(mine), REPORT_CHUNK):
            counters = {spi: self.processor.pair_counters(spi) for spi in mine[i : i + REPORT_CHUNK]}
            self._send(("counters", counters))
        self._send(("stats", dict(self.stats), dict(self.processor.drops)))

    def close(self) -> None:
        for sock in self.raw:
            sock.close()
        for udp in self.udp.values():
            udp.close()
        self.sel.close()


def apply(p: Processor, msg: tuple[object, ...]) -> list[Output]:
    """One control message of the daemon (:mod:`snakeswan.daemon.workers`) applied to this
    worker's processor: what it asks to send (an install's queued packets)."""
    kind, args = msg[0], msg[1:]
    if kind == "policy":
        p.add_policy(args[0])  # type: ignore[arg-type]
    elif kind == "unpolicy":
        p.remove_policies(args[0])  # type: ignore[arg-type]
    elif kind == "install":
        inbound, outbound, key, now, ah, switch_after, owner = args
        return p.install(
            inbound,  # type: ignore[arg-type]
            outbound,  # type: ignore[arg-type]
            key,  # type: ignore[arg-type]
            now=now,  # type: ignore[arg-type]
            ah=ah,  # type: ignore[arg-type]
            switch_after=switch_after,  # type: ignore[arg-type]
            owner=owner,  # type: ignore[arg-type]
        )
    elif kind == "remove":
        p.remove(args[0])  # type: ignore[arg-type]
    elif kind == "prefer":
        p.prefer(args[0])  # type: ignore[arg-type]
    elif kind == "resume":
        spi_in, cp = args
        pair = p.pair(spi_in)  # type: ignore[arg-type]
        if pair is not None and pair[0].owner == p.worker:
            resume(pair[0], pair[1], cp)  # type: ignore[arg-type]
    elif kind != "ready":  # ready: the state is in (Worker.apply starts reading packets)
        log.warning("worker %d: unknown control message %r: ignored", p.worker, kind)
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m snakeswan.daemon.dp_worker", description=__doc__)
    parser.add_argument("--index", type=int, required=True, help="this worker's number (1..workers-1)")
    parser.add_argument("--workers", type=int, required=True, help="how many there are, the daemon too")
    parser.add_argument("--tun-fd", type=int, required=True, help="its queue of the TUN device")
    parser.add_argument("--tun-name", required=True)
    parser.add_argument("--offload", type=int, choices=(0, 1), default=0)
    parser.add_argument("--tso", type=int, choices=(0, 1), default=0)
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--inbox-fd", type=int, required=True)
    parser.add_argument("--inboxes", required=True, help="the inboxes' write fds, by worker, comma-separated")
    parser.add_argument("--mark", type=int, default=0, help="the firewall mark of the daemon's sockets")
    parser.add_argument("--udp-fds", default="", help="its NAT-T sockets (one a family), comma-separated")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # sent to the whole group: the daemon decides
        signal.signal(sig, signal.SIG_IGN)
    logging.basicConfig(
        stream=sys.stderr, level=args.log_level, format=f"%(asctime)s worker {args.index}: %(message)s"
    )
    fds = [int(fd) for fd in args.inboxes.split(",")]
    inboxes = {k: socket.socket(fileno=fd) for k, fd in enumerate(fds) if k != args.index}
    control = socket.socket(fileno=args.control_fd)
    control.setblocking(False)
    inbox = socket.socket(fileno=args.inbox_fd)
    inbox.setblocking(False)
    tun = Tun.adopt(args.tun_fd, args.tun_name, offload=bool(args.offload), tso=bool(args.tso))
    udp = [UdpSocket.adopt(int(fd), nat_t=True) for fd in args.udp_fds.split(",") if fd]
    try:
        worker = Worker(args.index, args.workers, tun, control, inbox, inboxes, args.mark, udp)
    except LocalError as e:
        log.error("worker %d: %s", args.index, e)
        return 1
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
