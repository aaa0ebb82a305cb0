"""``snakeswan load --procs N``: the load generator in N processes (one per core), one result.

One Python process computes a few hundred Diffie-Hellman exchanges a second, fewer than a gateway
answers: the peers are split into N contiguous shares (peer numbers, so identities, stay those
of one process), each share its own :class:`~snakeswan.daemon.loadgen.LoadGenerator` in a
forked process with an address of its own when ``--local`` names several (sockets bound to it,
ports 500/4500), else its own UDP ports on the one address (``port + k`` and ``nat_port + k``
for process k: a gateway answers the port a peer sent from, but our engine floats IKE to its
own NAT-T port on both ends, so against a gateway that detects or fakes NAT, as strongSwan with
kernel-libipsec does, give one address per process).
The rate and the concurrency are divided among them. Each process reports its progress once a
second through shared counters and its whole result (latencies included) through a pipe at the
end; :func:`merge` makes one :class:`~snakeswan.daemon.loadgen.LoadResult` of them.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import multiprocessing.connection
import time
from collections import Counter
from collections.abc import Callable
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from snakeswan.daemon.loadgen import LoadGenerator, LoadResult, LoadSpec
from snakeswan.errors import LocalError


def shares(spec: LoadSpec, procs: int) -> list[LoadSpec]:
    """The specs of ``procs`` processes: contiguous peer numbers and budgets of their own, and
    either an address of their own (``spec.local`` lists several, comma-separated: sockets bound
    to it, the standard ports) or, with one address, ports of their own."""
    if procs < 1:
        raise LocalError("load: --procs must be at least 1")
    procs = min(procs, max(1, spec.n))
    addresses = [a.strip() for a in spec.local.split(",") if a.strip()]
    if len(addresses) > 1 and len(addresses) < procs:
        raise LocalError(f"load: {procs} processes need {procs} local addresses, or one")
    out, first = [], spec.first
    for k in range(procs):
        n = spec.n // procs + (1 if k < spec.n % procs else 0)
        own = len(addresses) > 1
        out.append(
            dataclasses.replace(
                spec,
                n=n,
                first=first,
                local=addresses[k] if own else addresses[0],
                bind=own,
                port=spec.port if own else spec.port + k,
                nat_port=spec.nat_port if own else spec.nat_port + k,
                rate=spec.rate / procs,
                concurrency=max(1, -(-spec.concurrency // procs)),
            )
        )
        first += n
    return out


def merge(results: list[LoadResult]) -> LoadResult:
    """One result of several processes' (elapsed: the longest)."""
    out = LoadResult()
    for r in results:
        out.started += r.started
        out.established += r.established
        out.failures.update(r.failures)
        out.latencies += r.latencies
        out.elapsed = max(out.elapsed, r.elapsed)
    return out


def _child(spec: LoadSpec, conn: multiprocessing.connection.Connection, counters: list[Any]) -> None:
    started, established, failed = counters

    def progress(r: LoadResult) -> None:
        started.value, established.value = r.started, r.established
        failed.value = sum(r.failures.values())

    try:
        r = LoadGenerator(spec, progress).run()
        conn.send((r.started, r.established, dict(r.failures), r.latencies, r.elapsed, None))
    except Exception as e:  # reported to the parent, which fails the run
        conn.send((0, 0, {}, [], 0.0, f"{type(e).__name__}: {e}"))
    finally:
        conn.close()


def run_parallel(
    spec: LoadSpec, procs: int, progress: Callable[[LoadResult], None] | None = None
) -> LoadResult:
    """Run ``spec`` in ``procs`` forked processes and merge their results."""
    ctx = multiprocessing.get_context("fork")
    children = []
    for share in shares(spec, procs):
        parent_end, child_end = ctx.Pipe(duplex=False)
        counters: list[Synchronized[int]] = [ctx.Value("q", 0, lock=False) for _ in range(3)]
        p = ctx.Process(target=_child, args=(share, child_end, counters), daemon=True)
        p.start()
        child_end.close()
        children.append((p, parent_end, counters))
    t0 = time.monotonic()
    results: dict[int, LoadResult] = {}
    errors: list[str] = []
    while len(results) < len(children):
        for i, (p, pipe, _) in enumerate(children):
            if i in results or not pipe.poll(0):
                continue
            try:
                started, established, failures, latencies, elapsed, error = pipe.recv()
            except EOFError:  # it died without a word (killed, out of memory)
                started, established, failures, latencies, elapsed = 0, 0, {}, [], 0.0
                error = f"process {i} exited {p.exitcode} without a result"
            if error:
                errors.append(error)
            results[i] = LoadResult(started, established, Counter(failures), latencies, elapsed)
            p.join()
        if progress is not None:
            snapshot = LoadResult(elapsed=time.monotonic() - t0)
            for _, _, (s, e, f) in children:
                snapshot.started += s.value
                snapshot.established += e.value
                snapshot.failures["(so far)"] += f.value
            progress(snapshot)
        if len(results) < len(children):
            pending = [pipe for i, (_, pipe, _) in enumerate(children) if i not in results]
            multiprocessing.connection.wait(pending, 1.0)
    if errors:
        raise LocalError("load: a process failed: " + "; ".join(errors))
    return merge([results[i] for i in range(len(children))])
