"""Engine fuzzing in every state of a Main Mode + Quick Mode and an Aggressive Mode + Quick Mode
handshake (two engines back to back, tests/pair.py).

A clean run records every datagram on the wire. Then, for one recorded datagram, a fresh pair
replays the exchange step by step and, just before that datagram is delivered, injects junk made
from it (truncated, mutated, random with the right cookies) into the receiving engine. Asserted:

- nothing escapes ``receive_datagram`` / ``handle_timer`` and no ``internal_error`` is traced (that
  record means an unexpected exception class was caught at the engine's outermost boundary);
- whatever the engine sends in answer to junk has a decodable ISAKMP header. Answers to junk are
  checked, then discarded, except when the engine acted upon the junk without failing (the real
  message with flags or minor version changed, a Vendor ID byte flipped, ...): it could not tell it
  from the real one, so its answer goes on to the peer as the real answer would;
- junk never makes an existing exchange fail (``exchange_failed`` for an SA that existed before);
- the real handshake still completes afterwards on both sides. The only exemption: junk that
  arrives where the engine waits for a message nothing authenticates (MM1-MM4, AM1) and that the
  engine acted upon without failing. Such junk is a well-formed message of that exchange, and nothing
  in IKEv1 can tell it from the peer's own; every other piece of junk must leave the exchange intact.
"""

from __future__ import annotations

import functools
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snakeswan.ike.events import ChildSaEstablished, Datagram, IkeSaEstablished
from snakeswan.trace import Record
from snakeswan.wire.message import HEADER_SIZE, decode_header
from tests.pair import A_ADDR, B_ADDR, Pair, Side, site_config

KINDS = ("main", "aggressive")


def make_pair(kind: str) -> Pair:
    extra_a: dict[str, object] = {}
    extra_b: dict[str, object] = {}
    if kind == "aggressive":
        extra_a = dict(aggressive=True, local_id="@west.test", remote_id="@east.test")
        extra_b = dict(aggressive=True, local_id="@east.test", remote_id="@west.test")
    a = site_config(A_ADDR, B_ADDR, "10.231.1.0/24", "10.231.2.0/24", **extra_a)  # type: ignore[arg-type]
    b = site_config(B_ADDR, A_ADDR, "10.231.2.0/24", "10.231.1.0/24", **extra_b)  # type: ignore[arg-type]
    return Pair(a, b)


@dataclass
class Run:
    pair: Pair
    internal_errors: list[tuple[str, Record]] = field(default_factory=list)
    junk_answers: list[bytes] = field(default_factory=list)
    accepted_junk: list[bytes] = field(default_factory=list)  # acted upon, nothing failed
    broke: list[bytes] = field(default_factory=list)  # made an existing SA's exchange fail
    failures: list[Record] = field(default_factory=list)  # every exchange_failed record
    target: int | None = None

    def completed(self) -> bool:
        p = self.pair
        return all(p.of(s, IkeSaEstablished) and p.of(s, ChildSaEstablished) for s in (p.a, p.b))


def _snapshot(side: Side) -> object:
    """What the engine has made of its input so far: SAs, their exchanges and states."""
    out = []
    for sa in side.engine.ike_sas:
        ph1 = sa.phase1
        exchanges = sorted(
            (mid, str(getattr(ex, "state", None)), ex.done) for mid, ex in sa.exchanges.items()
        )
        out.append(
            (
                sa.unique_id,
                sa.state,
                sa.rcookie,
                str(getattr(ph1, "state", None)),
                bool(ph1 and ph1.done),
                tuple(exchanges),
                len(sa.children),
            )
        )
    return tuple(out)


Injector = Callable[[Datagram], list[bytes]]


def drive(kind: str, target: int | None = None, make_junk: Injector | None = None) -> Run:
    """Run a handshake, delivering datagrams one at a time; before datagram ``target`` is delivered,
    feed ``make_junk(datagram)`` to its receiver."""
    p = make_pair(kind)
    run = Run(p)
    for name, side in (("a", p.a), ("b", p.b)):
        side.engine.tracer.sink = lambda r, name=name: (
            run.internal_errors.append((name, r))
            if r.event == "internal_error"
            else run.failures.append(r)
            if r.event == "exchange_failed"
            else None
        )
    queue: deque[tuple[Side, Side, Datagram]] = deque()

    def collect(side: Side) -> None:
        other = p.b if side is p.a else p.a
        for d in side.engine.datagrams_to_send(p.now):
            queue.append((side, other, d))
        while (ev := side.engine.next_event()) is not None:
            side.events.append(ev)

    p.a.engine.initiate("site", now=p.now)
    collect(p.a)
    end = p.now + 120.0
    for _ in range(1000):
        while queue:
            sender, receiver, d = queue.popleft()
            n = len(p.wire)
            p.wire.append(("a" if sender is p.a else "b", d))
            if n == target and make_junk is not None:
                run.target = n
                existing = {sa.unique_id for sa in receiver.engine.ike_sas}  # the real exchange's
                for junk in make_junk(d):
                    if junk == d.data:
                        continue  # an unchanged copy is a legitimate duplicate, not junk
                    before = _snapshot(receiver)
                    mark = len(run.failures)
                    receiver.engine.receive_datagram(junk, d.src, d.dst, p.now)
                    receiver.engine.handle_timer(p.now)
                    failed = any(r.fields.get("sa") in existing for r in run.failures[mark:])
                    accepted = _snapshot(receiver) != before and not failed
                    if failed:
                        run.broke.append(junk)
                    if accepted:
                        run.accepted_junk.append(junk)
                    for answer in receiver.engine.datagrams_to_send(p.now):
                        run.junk_answers.append(answer.data)
                        decode_header(answer.data)
                        if accepted:
                            # the engine could not tell this junk from a real message (say the
                            # real one with flags or minor version changed): its answer is real
                            queue.append((receiver, sender, answer))
                    while (ev := receiver.engine.next_event()) is not None:
                        receiver.events.append(ev)
            receiver.engine.receive_datagram(d.data, d.src, d.dst, p.now)
            collect(receiver)
        timers = [t for s in (p.a, p.b) if (t := s.engine.get_timer()) is not None]
        if not timers or min(timers) > end:
            break
        p.now = max(p.now, min(timers))
        for s in (p.a, p.b):
            t = s.engine.get_timer()
            if t is not None and t <= p.now:
                s.engine.handle_timer(p.now)
            collect(s)
    return run


@functools.cache
def reference(kind: str) -> tuple[Datagram, ...]:
    run = drive(kind)
    assert run.completed(), f"{kind}: the clean handshake does not complete"
    assert not run.internal_errors
    return tuple(d for _, d in run.pair.wire)


# Positions of the messages nothing authenticates (MM1-MM4, AM1): junk there that the engine takes
# for the real message cannot be told from it, so the handshake may legitimately fail afterwards.
UNAUTHENTICATED = {"main": {0, 1, 2, 3}, "aggressive": {0}}


def check(run: Run, kind: str, target: int) -> None:
    assert not run.internal_errors, f"{kind} datagram {target}: {run.internal_errors[:3]}"
    assert not run.broke, (
        f"{kind}: junk before datagram {target} made the exchange fail: {run.broke[0]!r}; "
        f"{[r.render() for r in run.failures][:2]}"
    )
    if target in UNAUTHENTICATED[kind] and run.accepted_junk:
        return
    assert run.completed(), (
        f"{kind}: handshake broken by junk before datagram {target}; "
        f"first junk the engine acted upon: {run.accepted_junk[:1]!r}"
    )


def test_reference_runs() -> None:
    main = reference("main")
    aggressive = reference("aggressive")
    assert [decode_header(d.data).exchange for d in main] == [2] * 6 + [32] * 3
    assert [decode_header(d.data).exchange for d in aggressive] == [4] * 3 + [32] * 3


# ---- deterministic sweeps -------------------------------------------------------------------


def _cases() -> list[tuple[str, int]]:
    return [(k, i) for k in KINDS for i in range(len(reference(k)))]


@pytest.mark.parametrize(("kind", "target"), _cases())
def test_truncations(kind: str, target: int) -> None:
    """Every truncation, as is (header length now wrong) and with the header length fixed."""

    def junk(d: Datagram) -> list[bytes]:
        out = [d.data[:n] for n in range(len(d.data))]
        out += [d.data[:24] + n.to_bytes(4, "big") + d.data[28:n] for n in range(HEADER_SIZE, len(d.data))]
        return out

    check(drive(kind, target, junk), kind, target)


@pytest.mark.parametrize(("kind", "target"), _cases())
def test_header_field_flips(kind: str, target: int) -> None:
    """Each header byte (cookies excepted) flipped, one junk datagram per flip."""

    def junk(d: Datagram) -> list[bytes]:
        out = []
        for i in range(16, HEADER_SIZE):
            for x in (0x01, 0x02, 0x80, 0xFF):
                b = bytearray(d.data)
                b[i] ^= x
                out.append(bytes(b))
        return out

    check(drive(kind, target, junk), kind, target)


# ---- hypothesis -------------------------------------------------------------------------------

# Derandomized: CI runs the same examples every time (a failure is reproducible, not a coin toss);
# SNAKESWAN_FUZZ_EXPLORE=N draws N fresh random examples per test instead (a longer, exploring run).
_EXPLORE = int(os.environ.get("SNAKESWAN_FUZZ_EXPLORE", "0"))
FUZZ = settings(
    max_examples=_EXPLORE or 40,
    derandomize=not _EXPLORE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def junk_for(draw: st.DrawFn, kind: str) -> tuple[int, list[bytes]]:
    wire = reference(kind)
    target = draw(st.integers(0, len(wire) - 1))
    real = wire[target].data
    out: list[bytes] = []
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["flip", "insert", "random", "random_header"]))
        data = bytearray(real)
        if how == "flip":
            for _ in range(draw(st.integers(1, 3))):
                data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
        elif how == "insert":
            pos = draw(st.integers(0, len(data)))
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
            if draw(st.booleans()):
                data[24:28] = len(data).to_bytes(4, "big")
        elif how == "random":
            # right cookies, everything else random (length consistent)
            rest = draw(st.binary(min_size=12, max_size=200))
            data = bytearray(real[:16] + rest[:8] + (16 + len(rest)).to_bytes(4, "big") + rest[12:])
            data[17] = draw(st.sampled_from([0x10, data[17]]))
        else:
            # the real header, a random body
            body = draw(st.binary(max_size=200))
            data = bytearray(real[:24] + (HEADER_SIZE + len(body)).to_bytes(4, "big") + body)
        out.append(bytes(data))
    return target, out


@pytest.mark.parametrize("kind", KINDS)
def test_fuzz_every_state(kind: str) -> None:
    @FUZZ
    @given(junk_for(kind))
    def inner(case: tuple[int, list[bytes]]) -> None:
        target, junk = case
        check(drive(kind, target, lambda d: junk), kind, target)

    inner()
