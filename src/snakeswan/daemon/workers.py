"""Several data-plane workers, one per core (``[daemon] workers = N``): the daemon's side.

The daemon is worker 0: its data plane stays as it is, on queue 0 of a multi-queue TUN device.
Workers 1..N-1 are processes (:mod:`snakeswan.daemon.dp_worker`), each on a queue of its own.
cryptography's ciphers hold the GIL, so threads would not add a core; and an IKEv1 SA cannot be
split between senders (one sequence number space, one replay window at the peer), so:

- **every pair has one owner**, the worker that protects and opens its packets
  (:meth:`ReplicatedProcessor.owner_for`): the inbound SPI modulo N for ESP pairs, which the
  kernel steers there by SPI (:mod:`snakeswan.io.steering`): raw ESP by each worker's socket
  filter, ESP-in-UDP by the program of the NAT-T port's ``SO_REUSEPORT`` group, in which each
  worker has a socket behind the daemon's (:meth:`WorkerPool._join`); the daemon for AH and
  route-based ones (its sockets and devices carry those).
- **every processor holds every policy and pair** (:class:`ReplicatedProcessor` sends each
  change to each worker, in order). A worker that reads a packet of a pair it does not own hands
  it to the owner's inbox (:class:`~snakeswan.ipsec.Handoff`). The kernel makes that rare for
  connections both ways: a TUN queue gets the flows whose packets it last wrote (the owner's).
- **the daemon's copy of a pair counts what its owner reports** once a second
  (:data:`REPORT_INTERVAL`): ``list-sas``, DPD's sign of life and the checkpoints read it, up to a
  second late. Volume limits are the owner's, reported at once; time limits the daemon's.
- **a worker that dies is started again** with the whole state; the pairs it owned go on from
  the daemon's last report with their outbound sequence numbers jumped ahead as after a restart
  (:mod:`snakeswan.ipsec.checkpoint`), and their replay windows closed below the last top.

Control messages are pickled tuples on a ``SOCK_SEQPACKET`` socket pair between the daemon and its
own child: ``("policy", Policy)``, ``("unpolicy", key)``, ``("install", inbound, outbound, key, now,
ah, switch_after, owner)``, ``("remove", spi_in)``, ``("prefer", spi_in)`` (the pair its child sends
on), ``("resume", spi_in, Checkpoint)``, and ``("ready",)`` after the whole state a new worker gets
(it reads no packet before: one read before its policy came would be dropped as covered by none;
the kernel queues them meanwhile); from the worker ``("events", [...])``, ``("counters", {spi_in:
PairCounters})``, ``("stats", counts, drops)``. Keys cross that socket, nothing else: no file, no
log line. Handed-off packets go as datagrams on ``SOCK_DGRAM`` socket pairs, one inbox a worker, a
type byte first (``o`` an inner packet to protect, ``i`` an ESP packet to open).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import snakeswan
from snakeswan.errors import LocalError
from snakeswan.io.batch import HAVE_MMSG, recvmmsg, sendmmsg
from snakeswan.io.rawip import grow_buffers
from snakeswan.io.steering import (
    MAX_WORKERS,
    attach,
    detach_reuseport,
    first_socket_program,
    owner_of,
    reuseport_program,
)
from snakeswan.io.tun import Tun
from snakeswan.io.udp import UdpSocket, family_of
from snakeswan.ipsec import Acquire, Expired, Handoff, Output, Policy, Processor, SaParams, SendUdp
from snakeswan.ipsec.checkpoint import Checkpoint, take
from snakeswan.ipsec.sad import PairCounters
from snakeswan.trace import Tracer

log = logging.getLogger("snakeswan.dataplane")

__all__ = ["REPORT_INTERVAL", "ReplicatedProcessor", "WorkerPool", "owner_of"]

REPORT_INTERVAL = 1.0  # seconds between a worker's counter reports
CONTROL_BUFFER = 4 << 20  # the control sockets' kernel buffers
MAX_MESSAGE = 1 << 20  # a control message at most (a report chunk is ~150 KB)
MAX_OUTBOX = 1_000_000  # control messages a worker has not taken yet: more, and it is stuck
INBOX_BYTES = 1 << 16
_OUT, _IN = b"o", b"i"
_ESP = 50


def encode(msg: tuple[object, ...]) -> bytes:
    return pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)


def decode(data: bytes) -> tuple[object, ...]:
    msg = pickle.loads(data)  # the daemon and its own child, nobody else
    if not isinstance(msg, tuple) or not msg:
        raise ValueError("a control message is a non-empty tuple")
    return msg


def receive(sock: socket.socket, buffer: bytearray) -> bytes | None:
    """One control message (``buffer`` is reused: at least :data:`MAX_MESSAGE`), b"" when the other
    end closed, None when nothing is queued. ``ValueError`` for a message cut short."""
    try:
        n, _, flags, _ = sock.recvmsg_into([buffer])
    except (BlockingIOError, InterruptedError, TimeoutError):
        return None
    if flags & socket.MSG_TRUNC:
        raise ValueError(f"a control message over {len(buffer)} bytes")
    return bytes(buffer[:n])


def send_udp(sends: list[SendUdp], sock_for: Callable[[int, int], UdpSocket | None]) -> int:
    """ESP-in-UDP: each run to one peer from one port in one call (UDP GSO, io/udp.py), from the
    socket ``sock_for(family, port)``; returns how many had no socket (not sent)."""
    i, unsent = 0, 0
    while i < len(sends):
        o, j = sends[i], i + 1
        key = (o.src, o.sport, o.dst, o.dport)
        while j < len(sends) and (sends[j].src, sends[j].sport, sends[j].dst, sends[j].dport) == key:
            j += 1
        sock = sock_for(family_of(o.src), o.sport)
        if sock is not None:
            sock.send_esp_many([s.payload for s in sends[i:j]], o.src, (o.dst, o.dport))
        else:
            unsent += j - i
        i = j
    return unsent


def send_handoffs(inboxes: dict[int, socket.socket], handoffs: list[Handoff]) -> tuple[int, int]:
    """Hand each packet to its owner's inbox: (how many went, how many were lost: no such
    worker, or its inbox is full)."""
    by_worker: dict[int, list[tuple[bytes, bytes, bytes]]] = {}
    for h in handoffs:
        by_worker.setdefault(h.worker, []).append(((_IN if h.inbound else _OUT) + h.packet, b"", b""))
    sent = lost = 0
    for worker, messages in by_worker.items():
        sock = inboxes.get(worker)
        if sock is None:
            lost += len(messages)
            continue
        done = 0
        if HAVE_MMSG:
            done, _err = sendmmsg(sock.fileno(), messages)
        else:
            for data, _, _ in messages:
                try:
                    sock.send(data, socket.MSG_DONTWAIT)
                except OSError:
                    break
                done += 1
        sent += done
        lost += len(messages) - done
    return sent, lost


def inbox_batch(inbox: socket.socket, limit: int = 64) -> tuple[list[bytes], list[bytes]]:
    """What is queued in an inbox: (inner packets to protect, ESP packets to open)."""
    if HAVE_MMSG:
        datagrams = recvmmsg(inbox.fileno(), limit, INBOX_BYTES)
    else:
        datagrams = []
        with contextlib.suppress(BlockingIOError, InterruptedError):
            for _ in range(limit):
                datagrams.append(inbox.recv(INBOX_BYTES, socket.MSG_DONTWAIT))
    outbound = [d[1:] for d in datagrams if d[:1] == _OUT]
    inbound = [d[1:] for d in datagrams if d[:1] == _IN]
    return outbound, inbound


def foreign_sockets(family: int, port: int, ours: list[UdpSocket]) -> int:
    """How many UDP sockets of ``family`` bound to ``port`` in this network namespace are not
    ``ours`` (by inode, from /proc/net/udp or udp6). The group's order is its members' joining
    order: one that joined between ours would shift the workers' indexes."""
    inodes = {os.fstat(sock.fileno()).st_ino for sock in ours}
    table = Path("/proc/net/udp6" if family == socket.AF_INET6 else "/proc/net/udp")
    count = 0
    for line in table.read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) > 9 and int(fields[1].rsplit(":", 1)[1], 16) == port and int(fields[9]) not in inodes:
            count += 1
    return count


class ReplicatedProcessor(Processor):
    """The daemon's processor (worker 0) when there are workers: every change also goes to
    each of them (:attr:`send`, set by the pool), and each pair gets its owner."""

    def __init__(self, rng: Callable[[int], bytes], *, workers: int, tracer: Tracer | None = None) -> None:
        super().__init__(rng, tracer=tracer, worker=0)
        self.workers = workers
        self.send: Callable[[tuple[object, ...]], None] = lambda msg: None
        self.worker_drops: dict[int, dict[str, int]] = {}  # what each worker counted
        # (family, local port) of the NAT-T sockets whose SO_REUSEPORT group the workers joined
        self.udp_steered: set[tuple[int, int]] = set()

    def owner_for(self, inbound: SaParams, ah: tuple[SaParams, SaParams] | None) -> int:
        """ESP: the worker the kernel steers its SPI to (raw ESP; ESP-in-UDP on a NAT-T port the
        workers share); else the daemon (module docstring)."""
        if ah is not None or inbound.protocol != _ESP or inbound.interface is not None:
            return 0
        if inbound.encap:
            family = socket.AF_INET6 if ":" in inbound.local[0] else socket.AF_INET
            if (family, inbound.local[1]) not in self.udp_steered:
                return 0
        return owner_of(inbound.spi, self.workers)

    def add_policy(self, policy: Policy) -> None:
        super().add_policy(policy)
        self.send(("policy", policy))

    def remove_policies(self, key: tuple[str, str]) -> int:
        count = super().remove_policies(key)
        self.send(("unpolicy", key))
        return count

    def install(
        self,
        inbound: SaParams,
        outbound: SaParams,
        policy_key: tuple[str, str],
        *,
        now: float | None = None,
        ah: tuple[SaParams, SaParams] | None = None,
        switch_after: float = 0.0,
        owner: int = -1,
    ) -> list[Output]:
        if owner < 0:
            owner = self.owner_for(inbound, ah)
        start = now if now is not None else self._now  # the replicas' lifetimes start with ours
        out = super().install(
            inbound, outbound, policy_key, now=now, ah=ah, switch_after=switch_after, owner=owner
        )
        self.send(("install", inbound, outbound, policy_key, start, ah, switch_after, owner))
        return out

    def remove(self, spi_in: int) -> None:
        super().remove(spi_in)
        self.send(("remove", spi_in))

    def prefer(self, spi_in: int) -> None:
        super().prefer(spi_in)
        self.send(("prefer", spi_in))

    def resumed(self, spi_in: int, cp: Checkpoint | None) -> None:
        """The pair's counters were set from a checkpoint (a restore): its owner does the same."""
        self.send(("resume", spi_in, cp))

    def state(self) -> list[tuple[object, ...]]:
        """Every policy and pair as the messages that make a new replica of this processor."""
        msgs: list[tuple[object, ...]] = [("policy", e.policy) for e in self.spd.entries]
        for spi_in, (sa_in, sa_out) in self._pairs.items():
            ah = None
            if sa_in.bundle is not None and sa_out.bundle is not None:
                ah = (sa_in.bundle.params, sa_out.bundle.params)
            key = sa_out.policy_key
            msgs.append(("install", sa_in.params, sa_out.params, key, self._now, ah, 0.0, sa_in.owner))
            if sa_in.owner:
                # it goes on from our copy's counters (the owner's last report), numbers jumped
                cp = replace(take(sa_in, sa_out, None), sent_last_interval=0)
                msgs.append(("resume", spi_in, cp))
        for key, spis in self._by_key.items():  # a child sending on another pair than its newest
            child = self.spd.children.get(key)
            if child is not None and child.sa is not None and child.sa.pair_in != next(reversed(spis)):
                msgs.append(("prefer", child.sa.pair_in))
        return msgs

    def drops_total(self) -> dict[str, int]:
        total = dict(self.drops)
        for drops in self.worker_drops.values():
            for reason, n in drops.items():
                total[reason] = total.get(reason, 0) + n
        return total


class WorkerPool:
    """Workers 1..N-1: started, fed, listened to, started again when one dies, stopped."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        tun: Tun,
        processor: ReplicatedProcessor,
        mark: int,
        on_events: Callable[[list[Acquire | Expired]], None],
        command: list[str] | None = None,
        nat_t: list[UdpSocket] | None = None,
    ) -> None:
        size = processor.workers
        if not 2 <= size <= MAX_WORKERS:
            raise LocalError(f"data-plane workers: {size} is out of range 2..{MAX_WORKERS}")
        self.loop = loop
        self.tun = tun
        self.processor = processor
        self.mark = mark
        self.on_events = on_events
        self.command = command or [sys.executable, "-m", "snakeswan.daemon.dp_worker"]
        self.size = size
        self.closing = False
        self.stats: dict[int, dict[str, int]] = {}
        self.restarts = 0
        self._inbox_pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(size)]
        for rd, wr in self._inbox_pairs:
            grow_buffers(rd)
            grow_buffers(wr)
            rd.setblocking(False)
            wr.setblocking(False)
        self.inbox = self._inbox_pairs[0][0]  # the daemon's own
        self.inboxes = {k: pair[1] for k, pair in enumerate(self._inbox_pairs) if k}
        self._queues: dict[int, Tun] = {}
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._controls: dict[int, socket.socket] = {}
        self._outbox: dict[int, deque[bytes]] = {}  # what a worker's socket did not take yet
        self._buffer = bytearray(MAX_MESSAGE)
        self._udp: dict[int, list[UdpSocket]] = {}  # worker -> its NAT-T sockets (a family each)
        try:
            for k in range(1, size):
                self._queues[k] = tun.attach_queue()
        except LocalError:
            self.close()
            raise
        for sock in nat_t or ():
            self._join(sock)
        processor.send = self._broadcast

    def _join(self, daemon_sock: UdpSocket) -> None:
        """Give each worker a socket in the SO_REUSEPORT group of the daemon's NAT-T socket
        ``daemon_sock`` (bound first: index 0), under the program that gives IKE and keepalives
        to it and ESP to its SPI's owner (io/steering.py). The program comes first, so no
        datagram is ever chosen by hash. If the kernel refuses any of it, or a socket not ours is
        bound to the port (it could be in the group, at a worker's index), the daemon keeps the
        ESP-in-UDP pairs of that family, as with one worker."""
        family, port = daemon_sock.family, daemon_sock.port
        joined: list[UdpSocket] = []
        try:
            if not daemon_sock.reuseport:
                raise LocalError("the daemon's socket is not in a SO_REUSEPORT group")
            attach(daemon_sock.sock, reuseport_program(self.size), reuseport=True)
            for _ in range(1, self.size):
                bound = daemon_sock.sock.getsockname()[0]
                joined.append(
                    UdpSocket(port, family=family, nat_t=True, bind=bound, mark=self.mark, reuseport=True)
                )
            foreign = foreign_sockets(family, port, [daemon_sock, *joined])
            if foreign:  # a socket of another process in the group would take a worker's share
                raise LocalError(f"{foreign} other socket(s) bound to UDP {port} (another daemon?)")
        except (LocalError, OSError) as e:
            for sock in joined:
                sock.close()
            try:  # whoever else is in the group: every datagram to the daemon's socket (index 0)
                attach(daemon_sock.sock, first_socket_program(), reuseport=True)
            except LocalError:
                detach_reuseport(daemon_sock.sock)
            log.warning("UDP %d: the workers get no ESP-in-UDP (%s): the daemon processes it", port, e)
            return
        for k, sock in enumerate(joined, start=1):
            self._udp.setdefault(k, []).append(sock)
        self.processor.udp_steered.add((family, port))

    def start(self) -> None:
        for k in range(1, self.size):
            self._spawn(k)
        n = self.size
        log.info("data plane: %d workers (the daemon and %d processes), one TUN queue each", n, n - 1)

    def _spawn(self, k: int) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for sock in (mine, theirs):
            for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, opt, CONTROL_BUFFER)
        queue = self._queues[k]
        writers = [pair[1].fileno() for pair in self._inbox_pairs]
        inbox = self._inbox_pairs[k][0].fileno()
        udp = [sock.fileno() for sock in self._udp.get(k, [])]
        cmd = [
            *self.command,
            f"--index={k}",
            f"--workers={self.size}",
            f"--tun-fd={queue.fileno()}",
            f"--tun-name={queue.name}",
            f"--offload={int(queue.offload)}",
            f"--tso={int(queue.tso)}",
            f"--control-fd={theirs.fileno()}",
            f"--inbox-fd={inbox}",
            f"--inboxes={','.join(map(str, writers))}",
            f"--mark={self.mark}",
            f"--udp-fds={','.join(map(str, udp))}",
            f"--log-level={logging.getLevelName(logging.getLogger('snakeswan').getEffectiveLevel())}",
        ]
        try:
            proc = subprocess.Popen(
                cmd,
                pass_fds=[queue.fileno(), theirs.fileno(), inbox, *writers, *udp],
                env={**os.environ, "PYTHONPATH": str(Path(snakeswan.__file__).resolve().parents[1])},
            )
        except OSError as e:
            mine.close()
            theirs.close()
            raise LocalError(f"data-plane worker {k}: could not start: {e.strerror}") from None
        theirs.close()
        mine.setblocking(False)
        self._procs[k], self._controls[k], self._outbox[k] = proc, mine, deque()
        self.loop.add_reader(mine.fileno(), self._readable, k)
        for msg in self.processor.state():
            self._send(k, msg)
        self._send(k, ("ready",))  # it reads packets from then on (dp_worker.py)

    def _send(self, k: int, msg: tuple[object, ...]) -> None:
        self._queue(k, msg[0], encode(msg))

    def _queue(self, k: int, kind: object, data: bytes) -> None:
        """Queue a message for worker ``k`` and send what its socket takes; the rest goes when it
        is writable (the whole state of a big gateway is more than a socket buffer)."""
        sock, outbox = self._controls.get(k), self._outbox.get(k)
        if sock is None or outbox is None:
            return  # being started again: it gets the whole state then
        if len(data) > MAX_MESSAGE:
            log.error(
                "data-plane worker %d: a %s message of %d bytes is too long: not sent", k, kind, len(data)
            )
            return
        outbox.append(data)
        if len(outbox) == 1:
            self._flush(k)
        elif len(outbox) > MAX_OUTBOX:
            self._lost(k, f"took none of {MAX_OUTBOX} control messages")

    def _flush(self, k: int) -> None:
        sock, outbox = self._controls.get(k), self._outbox.get(k)
        if sock is None or outbox is None:
            return
        while outbox:
            try:
                sock.send(outbox[0])
            except BlockingIOError:
                self.loop.add_writer(sock.fileno(), self._flush, k)
                return
            except OSError as e:
                self._lost(k, f"control socket: {e.strerror}")
                return
            outbox.popleft()
        self.loop.remove_writer(sock.fileno())

    def _broadcast(self, msg: tuple[object, ...]) -> None:
        data = encode(msg)  # once, whatever the number of workers
        for k in list(self._controls):
            self._queue(k, msg[0], data)

    def _readable(self, k: int) -> None:
        sock = self._controls.get(k)
        if sock is None:
            return
        for _ in range(64):
            try:
                data = receive(sock, self._buffer)
                if data is None:
                    return
                if not data:
                    self._lost(k, "exited")
                    return
                msg = decode(data)
            except OSError as e:
                self._lost(k, f"control socket: {e.strerror}")
                return
            except (ValueError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as e:
                self._lost(k, f"sent a malformed message ({e})")
                return
            self._take(k, msg)

    def _take(self, k: int, msg: tuple[object, ...]) -> None:
        kind = msg[0]
        if kind == "events" and isinstance(msg[1], list):
            self.on_events([e for e in msg[1] if isinstance(e, (Acquire, Expired))])
        elif kind == "counters" and isinstance(msg[1], dict):
            for spi_in, counters in msg[1].items():
                pair = self.processor.pair(spi_in) if isinstance(spi_in, int) else None
                if pair is not None and pair[0].owner == k and isinstance(counters, PairCounters):
                    self.processor.absorb(spi_in, counters)
        elif kind == "stats" and len(msg) == 3 and isinstance(msg[1], dict) and isinstance(msg[2], dict):
            self.stats[k] = msg[1]
            self.processor.worker_drops[k] = msg[2]
        else:
            log.warning("data-plane worker %d: unknown message %r: ignored", k, kind)

    def _lost(self, k: int, why: str) -> None:
        """A worker died (or cannot be talked to): started again, unless we are stopping."""
        sock = self._controls.pop(k, None)
        proc = self._procs.pop(k, None)
        self._outbox.pop(k, None)
        if sock is not None:
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_reader(sock.fileno())
                self.loop.remove_writer(sock.fileno())
            sock.close()
        status: int | None = None
        if proc is not None:
            try:
                status = proc.wait(1.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                status = proc.wait()
        if self.closing:
            return
        log.error("data-plane worker %d %s (status %s): starting it again", k, why, status)
        self.restarts += 1
        try:
            self._spawn(k)
        except LocalError as e:
            log.error("%s: its share of the traffic is lost until the daemon restarts", e)

    def pids(self) -> dict[int, int]:
        return {k: p.pid for k, p in self._procs.items()}

    def close(self) -> None:
        self.closing = True
        self._outbox.clear()
        for k in list(self._controls):
            sock = self._controls.pop(k)
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_reader(sock.fileno())
                self.loop.remove_writer(sock.fileno())
            sock.close()  # the worker sees its end close and stops
        for proc in self._procs.values():
            try:
                proc.wait(2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()
        for queue in self._queues.values():
            queue.close()
        self._queues.clear()
        for rd, wr in self._inbox_pairs:
            rd.close()
            wr.close()
        self._inbox_pairs = []
        for group in self._udp.values():
            for member in group:
                member.close()
        self._udp.clear()
