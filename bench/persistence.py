"""What persisting SAs costs (issue 14): handshakes per second with and without the state store,
and the store's write rate per 1,000 SAs (what the daemon asks of it, and what it can do).

Run from the repo root: python bench/persistence.py [--n N] [--sas N] [--rounds N] [--gateway N]

1. Handshakes/s: two sans-I/O engines in one process (as bench/handshake.py: Main Mode + Quick
   Mode, PSK, real randomness, datagrams handed over in memory); with persistence each engine has
   the daemon's :class:`~snakeswan.daemon.persistence.Persistence` on its own SQLite file (WAL), fed
   the engine's events and flushed after every round of datagrams (the daemon flushes once per
   loop iteration). Every handshake is followed by a Delete, so each one writes its record and
   removes it. Both runs in the same process, alternating five times, the best of each and their
   ratio printed (the best: the machine's two cores are shared, interference only slows a run).
2. Store writes per 1,000 SAs: the daemon writes (a) a sealed IKE record when an SA is
   established, rekeyed or deleted and (b) a counter checkpoint per IPsec SA pair that moved, once
   a second. Demand per 1,000 SAs with traffic on every SA: 1,000 checkpoint records/s, plus the
   rekey records (one IPsec SA rekeyed per hour and one ISAKMP renewal per 4 h by default, about 3
   records each): ~1.1/s. Capacity, measured here: a checkpoint round of N SA pairs (one batch, one
   transaction) and a burst of N sealed IKE records (N SAs established at once), records/s.

3. With ``--gateway N`` (root: namespaces): a real snakeswan gateway over sockets takes N MM+QM
   tunnels from ``snakeswan load`` (as bench/gateway_rate.py), once with ``state = "none"`` and
   once with the default SQLite state, in the same run: tunnels/s and the gateway's CPU ms per
   tunnel, and the ratio.

Prints figures and ratios, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from bench.handshake import HUB, NOW, VARIANTS, Variant, engines, establish, spokes  # noqa: E402

from snakeswan.config.loader import parse_config  # noqa: E402
from snakeswan.daemon.persistence import Persistence  # noqa: E402
from snakeswan.ike.engine import Engine  # noqa: E402
from snakeswan.ike.events import ChildSaEstablished, NegotiationFailed  # noqa: E402
from snakeswan.io.sqlite_store import SqliteKvStore  # noqa: E402
from snakeswan.ipsec.processor import Processor  # noqa: E402
from snakeswan.ipsec.sad import SaParams  # noqa: E402
from snakeswan.trace import Tracer  # noqa: E402

KEY = os.urandom(32)


def pump(a: Engine, b: Engine, persist: tuple[Persistence, Persistence] | None) -> tuple[int, int]:
    children = [0, 0]
    moved = True
    while moved:
        moved = False
        for sender, receiver in ((a, b), (b, a)):
            for d in sender.datagrams_to_send(NOW):
                receiver.receive_datagram(d.data, d.src, d.dst, NOW)
                moved = True
        for i, e in enumerate((a, b)):
            while (ev := e.next_event()) is not None:
                if persist is not None:
                    persist[i].on_event(ev)
                if isinstance(ev, ChildSaEstablished):
                    children[i] += 1
                elif isinstance(ev, NegotiationFailed):
                    raise RuntimeError(f"negotiation failed: {ev}")
            if persist is not None:
                persist[i].flush()  # one batch per round, as the daemon per loop iteration
    return children[0], children[1]


def handshakes(v: Variant, n: int, workdir: str | None) -> tuple[float, int]:
    """``n`` handshakes (+ Deletes); returns (wall seconds of the handshakes, store writes)."""
    a, b = engines(v)
    persist = None
    if workdir is not None:
        stores = [SqliteKvStore(os.path.join(workdir, f"{side}.state")) for side in "ab"]
        persist = (
            Persistence(a, lambda: None, stores[0], KEY, lambda: 0.0),
            Persistence(b, lambda: None, stores[1], KEY, lambda: 0.0),
        )
    wall = 0.0
    for i in range(n + 1):  # the first warms up
        w0 = time.perf_counter()
        sa = a.initiate("site", now=NOW)
        got = pump(a, b, persist)
        w1 = time.perf_counter()
        if got != (1, 1):
            raise RuntimeError(f"handshake did not complete: {got}")
        if i:
            wall += w1 - w0
        a.delete_ike(sa, now=NOW)
        pump(a, b, persist)
    writes = sum(p.writes for p in persist) if persist else 0
    if persist:
        for p in persist:
            p.close()
    return wall, writes


class _Plane:
    """What Persistence.checkpoint reads of the data plane: ``children`` and ``processor``."""

    def __init__(self, n: int) -> None:
        self.processor = Processor(os.urandom)
        self.children: dict[int, object] = {}
        for i in range(n):
            spi_in, spi_out = 0x10000 + 2 * i, 0x10001 + 2 * i
            common = dict(
                protocol=50, transform_id=20, key_length=128, auth=None, local=("10.231.0.1", 4500),
                remote=("10.231.0.2", 4500), mode="tunnel", encap=True,
            )  # fmt: skip
            p_in = SaParams(spi=spi_in, encryption_key=os.urandom(20), integrity_key=b"", **common)  # type: ignore[arg-type]
            p_out = SaParams(spi=spi_out, encryption_key=os.urandom(20), integrity_key=b"", **common)  # type: ignore[arg-type]
            self.processor.install(p_in, p_out, ("c", f"net{i}"), now=NOW)
            self.children[spi_in] = None


def checkpoint_rate(n: int, rounds: int, workdir: str) -> tuple[float, int]:
    """Records/s of checkpoint rounds of ``n`` moving SA pairs (one batch per round)."""
    plane = _Plane(n)
    store = SqliteKvStore(os.path.join(workdir, "cp.state"))
    p = Persistence(None, lambda: plane, store, KEY, lambda: 0.0)  # type: ignore[arg-type]
    pairs = [plane.processor.pair(spi) for spi in plane.children]
    t = 0.0
    written = 0
    for r in range(rounds + 1):
        for pair in pairs:
            assert pair is not None
            pair[1].seq += 100  # every SA sent something since the last round
        t0 = time.perf_counter()
        count = p.checkpoint()
        if r:
            t += time.perf_counter() - t0
            written += count
    store.close()
    return t, written


def ike_record_rate(v: Variant, n: int, workdir: str) -> tuple[float, int]:
    """Sealed IKE records/s: ``n`` SAs established, then every record written in one flush."""
    hub = Engine(parse_config(HUB.format(ike=v.ike, esp=v.esp), "hub.toml"), os.urandom, tracer=Tracer())
    spoke = spokes(v, 0, n)
    establish(spoke, hub, 0, n)
    store = SqliteKvStore(os.path.join(workdir, "ike.state"))
    p = Persistence(hub, lambda: None, store, KEY, lambda: 0.0)
    t0 = time.perf_counter()
    count = p.write_all()
    t = time.perf_counter() - t0
    store.close()
    return t, count


def gateway(n: int, workdir: str) -> None:
    from bench.gateway_rate import OURS, cpu_seconds, load  # noqa: PLC0415

    from tests.daemons import DaemonProcess  # noqa: PLC0415
    from tests.netns import Topology, site_to_site  # noqa: PLC0415

    ike = "aes128-sha256-modp2048"
    rates: dict[str, tuple[float, float]] = {}
    for state in ("none", "sqlite", "none", "sqlite"):  # alternated, the better of two each
        conf = OURS.format(ike=ike).replace("[daemon]\n", f'[daemon]\nstate = "{state}"\n', 1)
        sub = Path(workdir) / f"gw-{state}-{len(rates)}-{time.monotonic_ns()}"
        sub.mkdir()
        topo = Topology()
        try:
            west, east = site_to_site(topo)
            d = DaemonProcess(sub, "east", conf, netns=east.name, log_level="warning")
            topo.on_close(d.stop)
            before = cpu_seconds(d.proc.pid)
            r = load(west, n, ike)
            cpu_ms = (cpu_seconds(d.proc.pid) - before) * 1e3 / max(1, int(r["established"]))  # type: ignore[call-overload]
            rate = float(r["per_second"])  # type: ignore[arg-type]
            best = rates.get(state)
            rates[state] = (rate, cpu_ms) if best is None or rate > best[0] else best
        finally:
            topo.close()
    (r0, c0), (r1, c1) = rates["none"], rates["sqlite"]
    print(f"gateway over sockets, N = {n} MM+QM tunnels ({ike}), best of 2 each:")
    print(f"  state = none:   {r0:8.1f} tunnels/s, {c0:.2f} gateway CPU ms per tunnel")
    print(f"  state = sqlite: {r1:8.1f} tunnels/s, {c1:.2f} gateway CPU ms per tunnel")
    print(f"  ratio sqlite/none: rate {r1 / r0:.3f}, CPU per tunnel {c1 / c0:.3f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200, help="handshakes per run")
    ap.add_argument("--sas", type=int, default=1000, help="SAs for the write rates")
    ap.add_argument("--rounds", type=int, default=20, help="checkpoint rounds")
    ap.add_argument("--gateway", type=int, default=0, help="N tunnels to a real gateway (root)")
    args = ap.parse_args()
    v = next(x for x in VARIANTS if x.key == "ecp")  # the cheapest handshake: persistence shows most
    print(f"handshakes: {v.label}, N = {args.n}, both engines in this process")
    with tempfile.TemporaryDirectory() as tmp:
        runs: dict[str, list[float]] = {"without": [], "with": []}
        writes = 0
        for i in range(5):  # alternated, so both see the same machine load; the best of each
            wall, _ = handshakes(v, args.n, None)
            runs["without"].append(args.n / wall)
            sub = os.path.join(tmp, f"hs{i}")
            os.mkdir(sub)
            wall, writes = handshakes(v, args.n, sub)
            runs["with"].append(args.n / wall)
        without, with_ = max(runs["without"]), max(runs["with"])
        print(f"  without persistence: {without:8.1f} handshakes/s (best of 5)")
        each = writes / (args.n + 1)
        print(f"  with SQLite state:   {with_:8.1f} handshakes/s (best of 5), {each:.1f} writes each")
        print(f"  ratio with/without:  {with_ / without:8.3f}")
        t, count = checkpoint_rate(args.sas, args.rounds, tmp)
        cp_rate = count / t
        print(f"checkpoints: {args.sas} moving SA pairs, {args.rounds} rounds: {cp_rate:,.0f} records/s")
        t, count = ike_record_rate(v, args.sas, tmp)
        ike_rate = count / t
        print(f"IKE records: {count} sealed records in one batch: {ike_rate:,.0f} records/s")
        demand = 1000.0 + 1000 * (3 / 3600 + 3 / (4 * 3600))
        print(f"per 1,000 SAs with traffic the daemon writes ~{demand:,.0f} records/s (checkpoints + rekeys)")
        print(f"  store capacity / demand: checkpoints {cp_rate / demand:,.1f}x")
        print(
            f"  one checkpoint round of 1,000 SAs takes {1000 / cp_rate * 1000:.1f} ms of the daemon's loop"
        )
        if args.gateway:
            gateway(args.gateway, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
