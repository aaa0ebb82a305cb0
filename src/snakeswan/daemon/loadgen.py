"""A load generator (the IKEv1 counterpart of strongSwan's load-tester): N simulated peers in one
process, one sans-I/O engine with N connections (each its own IKE identity, and optionally its
own XAUTH user and a Mode Config request), over real UDP sockets on ports 500/4500, against any
gateway. Initiations follow a rate (tunnels/s) or keep a number of negotiations in flight; each
tunnel's latency is initiate -> its IPsec SA; failures are counted by reason.

The generator's own CPU is shared with the gateway when both run on one machine; ``reuse_dh``
(``--reuse-dh``) makes it cheaper by reusing one DH key pair for all its peers (one modular
exponentiation per tunnel instead of two here; the gateway still draws its own and computes g^xy).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from snakeswan.config.identity import Identity
from snakeswan.config.loader import parse_config
from snakeswan.config.model import Config
from snakeswan.errors import LocalError
from snakeswan.ike.engine import Engine
from snakeswan.ike.events import ChildSaEstablished, NegotiationFailed
from snakeswan.io.udp import UdpSocket
from snakeswan.trace import Tracer


@dataclass(frozen=True)
class LoadSpec:
    gateway: str
    local: str
    n: int
    psk: str
    rate: float = 0.0  # tunnels started per second; 0: as fast as ``concurrency`` allows
    concurrency: int = 100
    ike: str = "aes128-sha256-modp2048"
    esp: str = "aes128gcm16"
    aggressive: bool = False
    identity: str = "peer{i}.load"
    remote_id: str = "%any"
    local_ts: str = "dynamic"
    remote_ts: str = "dynamic"
    xauth_user: str | None = None  # e.g. "user{i}"
    xauth_password: str | None = None  # e.g. "pw{i}"
    vips: bool = False
    timeout: float = 60.0
    port: int = 500
    nat_port: int = 4500
    first: int = 0  # peer numbers first .. first + n - 1 (a share of several processes)
    bind: bool = False  # sockets bound to ``local`` only (several processes, one address each)
    reuse_dh: bool = False  # one DH key pair per group for all our peers (the gateway's work unchanged)

    def config_text(self) -> str:
        blocks = [f"[daemon]\nport = {self.port}\nnat_port = {self.nat_port}\ndataplane = false\n"]
        for i in range(self.first, self.first + self.n):
            lid = self.identity.format(i=i)
            rounds = f'local-psk = {{ auth = "psk", round = 1, id = "{lid}" }}\n'
            if self.xauth_user:
                user = self.xauth_user.format(i=i)
                rounds += f'local-xauth = {{ auth = "xauth", round = 2, xauth_id = "{user}" }}\n'
            blocks.append(
                f'[connections.c{i}]\nlocal_addrs = ["{self.local}"]\nremote_addrs = ["{self.gateway}"]\n'
                f'proposals = ["{self.ike}"]\naggressive = {str(self.aggressive).lower()}\n'
                + ('vips = ["0.0.0.0"]\n' if self.vips else "")
                + rounds
                + f'remote = {{ auth = "psk", id = "{self.remote_id}" }}\n'
                f'[connections.c{i}.children.load]\nlocal_ts = ["{self.local_ts}"]\n'
                f'remote_ts = ["{self.remote_ts}"]\nesp_proposals = ["{self.esp}"]\n'
            )
            if self.xauth_user and self.xauth_password:
                user, pw = self.xauth_user.format(i=i), self.xauth_password.format(i=i)
                blocks.append(f'[secrets.xauth-{i}]\nid = "{user}"\nsecret = "{pw}"\n')
        blocks.append(f'[secrets.ike-load]\nsecret = "{self.psk}"\n')
        return "\n".join(blocks)


def build_config(spec: LoadSpec) -> Config:
    """The generator's configuration: N connections alike but for their names and identities.
    Without XAUTH (each peer's user and secret differ) the first peer's connection is parsed and
    the others are copies sharing every object with it but the name and the local ID: parsing
    25,000 connections from TOML took ~10 s and ~350 MiB a process."""
    if spec.xauth_user or spec.n <= 1:
        return parse_config(spec.config_text(), "<load>")
    config = parse_config(dataclasses.replace(spec, n=1).config_text(), "<load>")
    template = config.connections[0]
    copies = [
        dataclasses.replace(
            template,
            name=f"c{i}",
            local=dataclasses.replace(template.local, id=Identity.parse(spec.identity.format(i=i))),
        )
        for i in range(spec.first + 1, spec.first + spec.n)
    ]
    return dataclasses.replace(config, connections=(template, *copies))


@dataclass
class LoadResult:
    started: int = 0
    established: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    def percentile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, object]:
        rate = self.established / self.elapsed if self.elapsed else 0.0
        ms = {f"p{int(q * 100)}": round(v * 1e3, 1) for q in (0.5, 0.9, 0.99) if (v := self.percentile(q))}
        return {
            "started": self.started,
            "established": self.established,
            "failed": sum(self.failures.values()),
            "failures": dict(self.failures),
            "seconds": round(self.elapsed, 3),
            "per_second": round(rate, 1),
            "latency_ms": ms,
        }


class LoadGenerator:
    def __init__(self, spec: LoadSpec, progress: Callable[[LoadResult], None] | None = None) -> None:
        self.spec = spec
        self.engine = Engine(build_config(spec), os.urandom, tracer=Tracer(keep=100))
        if spec.reuse_dh:
            self.engine.ctx.reused_dh = {}
        self.result = LoadResult()
        self._progress = progress
        self._started_at: dict[str, float] = {}
        self._done: set[str] = set()
        self._sockets: dict[int, UdpSocket] = {}

    def run(self) -> LoadResult:
        gc.set_threshold(50_000, 1, 1000)  # as the daemon's (daemon.GC_THRESHOLDS): N SAs here too
        return asyncio.run(self._main())

    async def _main(self) -> LoadResult:
        loop = asyncio.get_running_loop()
        try:
            for port, nat_t in ((self.spec.port, False), (self.spec.nat_port, True)):
                bind = self.spec.local if self.spec.bind else None
                self._sockets[port] = UdpSocket(port, family=socket.AF_INET, nat_t=nat_t, bind=bind)
        except OSError as e:
            raise LocalError(f"load: cannot open UDP port: {e.strerror}") from None
        for s in self._sockets.values():
            loop.add_reader(s.fileno(), self._readable, s)
        t0 = time.monotonic()
        self.engine.ctx.wall_offset = time.time() - loop.time()
        next_report = t0 + 1.0
        try:
            while True:
                now = loop.time()
                self._start_more(time.monotonic() - t0, now)
                self._pump(now)
                finished = len(self._done) >= self.spec.n
                if finished or time.monotonic() - t0 > self.spec.timeout:
                    break
                timer = self.engine.get_timer()
                if timer is not None and timer <= now:
                    self.engine.handle_timer(now)
                    self._pump(now)
                if self._progress is not None and time.monotonic() >= next_report:
                    self.result.elapsed = time.monotonic() - t0
                    self._progress(self.result)
                    next_report += 1.0
                await asyncio.sleep(0.002)
        finally:
            for s in self._sockets.values():
                loop.remove_reader(s.fileno())
                s.close()
        self.result.elapsed = time.monotonic() - t0
        unanswered = len(self._started_at.keys() - self._done)
        if unanswered:
            self.result.failures["no answer before the timeout"] += unanswered
        return self.result

    def _start_more(self, elapsed: float, now: float) -> None:
        spec, r = self.spec, self.result
        in_flight = r.started - len(self._done)
        allowed = spec.n if spec.rate <= 0 else min(spec.n, int(elapsed * spec.rate) + 1)
        while r.started < allowed and in_flight < spec.concurrency:
            name = f"c{self.spec.first + r.started}"
            self._started_at[name] = time.monotonic()
            try:
                self.engine.initiate(name, now=now)
            except LocalError as e:
                r.failures[str(e)] += 1
                self._done.add(name)
            r.started += 1
            in_flight += 1

    def _readable(self, sock: UdpSocket) -> None:
        now = asyncio.get_running_loop().time()
        for rx in sock.receive(64):
            if rx.kind == "ike":
                self.engine.receive_datagram(rx.data, rx.src, rx.dst, now)
        self._pump(now)

    def _pump(self, now: float) -> None:
        for d in self.engine.datagrams_to_send(now):
            port = d.src[1]
            sock = self._sockets.get(port)
            if sock is not None:
                if d.keepalive:
                    sock.send(d.data, d.src[0], d.dst, ike=False)
                else:
                    sock.send(d.data, d.src[0], d.dst)
        while (ev := self.engine.next_event()) is not None:
            if isinstance(ev, ChildSaEstablished):
                name = ev.child.conn
                if name not in self._done:
                    self._done.add(name)
                    self.result.established += 1
                    self.result.latencies.append(time.monotonic() - self._started_at[name])
            elif isinstance(ev, NegotiationFailed) and ev.conn not in self._done:
                self._done.add(ev.conn)
                self.result.failures[ev.reason.split(":")[0][:80]] += 1
