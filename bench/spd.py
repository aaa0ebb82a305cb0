"""Policy and SA lookups with 1, 10,000 and 50,000 policies, in the same run.

    python bench/spd.py [--quick]

Per size: the cost of one SPD lookup through the flow cache (a flow seen before), of one that
misses it (a new flow: the index), of the linear scan the index replaced (implemented here as the
baseline, in policy order), and Processor.outbound packets/s of one busy child among that many
installed children with their SAs (one remote-access client each; the others idle), and
Processor.inbound packets/s with one SA busy (the others idle) and with every SA busy in turn
(round robin: each packet finds its SA's crypto state out of the CPU caches), the accepted-flow
cache bounded as now and, last column, as before (1,024 SAs). Ratios are against the 1-policy
figures of the same run. Times are this process's CPU time (other load on the shared machine
stretches wall-clock figures). Asserts nothing.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from snakeswan.config.traffic import TrafficSelector
from snakeswan.ipsec import Policy, Processor, SaParams
from snakeswan.ipsec import processor as processor_module
from snakeswan.ipsec.esp import EspCodec, encapsulate
from snakeswan.ipsec.packet import FiveTuple, build_ipv4_header
from snakeswan.ipsec.spd import PolicyEntry, Spd, policy_priority
from snakeswan.wire.enums import EspTransformId

HUB = TrafficSelector.from_network("10.200.0.0/16")
FIRST_CLIENT = int(ipaddress.IPv4Address("10.100.0.0"))
SRC = int(ipaddress.IPv4Address("10.200.0.1"))


def client(i: int) -> TrafficSelector:
    return TrafficSelector.host(ipaddress.IPv4Address(FIRST_CLIENT + i))


def policy(i: int) -> Policy:
    remote = client(i)
    return Policy(HUB, remote, "protect", ("ra", f"c{i}"), policy_priority("protect", HUB, remote))


def timed(fn: Callable[[], object], count: int) -> float:
    """Seconds per call (best of three)."""
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for _ in range(count):
            fn()
        best = min(best, (time.process_time() - start) / count)
    return best


def linear(entries: list[PolicyEntry], ft: FiveTuple) -> PolicyEntry | None:
    for entry in entries:  # the pre-index lookup: first match in policy order
        if entry.match(ft):
            return entry
    return None


def lookups(n: int, count: int) -> tuple[float, float, float]:
    spd = Spd()
    for i in range(n):
        spd.add(policy(i))
    flows = [(4, SRC, FIRST_CLIENT + (i * 7919) % n, 6, 40000 + i % 1000, 443) for i in range(count)]
    hot = flows[0]
    spd.lookup(hot)
    cached = timed(lambda: spd.lookup(hot), count)
    it = iter(flows * 3)
    missed = timed(lambda: spd._search(next(it)), count)
    entries = spd.entries
    last = (4, SRC, FIRST_CLIENT + n - 1, 6, 40000, 443)  # the worst case for a scan: the last policy
    scan_count = max(20, count // max(1, n // 50))
    scanned = timed(lambda: linear(entries, last), scan_count)
    return cached, missed, scanned


def params(spi: int, i: int) -> SaParams:
    ours, theirs = HUB, client(i)
    return SaParams(
        spi=spi,
        protocol=50,
        transform_id=EspTransformId.AES_GCM_16,
        key_length=128,
        auth=None,
        encryption_key=bytes(20),
        integrity_key=b"",
        local=("192.0.2.1", 500),
        remote=("192.0.2.2", 500),
        local_ts=(ours,),
        remote_ts=(theirs,),
        hard_seconds=3600.0 + i,
        soft_seconds=3000.0 + i,
    )


def outbound_rate(n: int, count: int) -> float:
    p = Processor(os.urandom)
    for i in range(n):
        p.add_policy(policy(i))
        p.install(params(0x10000 + 2 * i, i), params(0x10001 + 2 * i, i), ("ra", f"c{i}"), now=0.0)
    busy = n // 2
    body = bytes(1400 - 28)
    dst = (FIRST_CLIENT + busy).to_bytes(4, "big")
    udp = b"\x9c\x40\x01\xbb" + (len(body) + 8).to_bytes(2, "big") + b"\0\0" + body
    packet = build_ipv4_header(bytes((10, 200, 0, 1)), dst, 17, len(udp), 0) + udp
    p.get_timer()
    return 1 / timed(lambda: p.outbound(packet, 1.0), count)


def inbound_rate(n: int, count: int, accepted_limit: int, spread: bool = True) -> float:
    """Packets/s into a hub with ``n`` SAs, each packet on the next SA (every client talking), or
    with ``spread`` False all on one SA (the others idle)."""
    hub = Processor(os.urandom)
    codecs = []
    for i in range(n):
        hub.add_policy(policy(i))
        hub.install(params(0x10000 + 2 * i, i), params(0x10001 + 2 * i, i), ("ra", f"c{i}"), now=0.0)
        codecs.append(EspCodec(0x10000 + 2 * i, EspTransformId.AES_GCM_16, 128, None, bytes(20), b""))
    body = bytes(1400 - 28)
    udp = b"\x01\xbb\x9c\x40" + (len(body) + 8).to_bytes(2, "big") + b"\0\0" + body
    wire = []
    for j in range(3 * count):  # three rounds of ``count``: the best one counts (shared machine)
        i, seq = (j % n, j // n + 1) if spread else (n // 2, j + 1)
        src = (FIRST_CLIENT + i).to_bytes(4, "big")
        inner = build_ipv4_header(src, bytes((10, 200, 0, 1)), 17, len(udp), 0) + udp
        wire.append(encapsulate(codecs[i], inner, 4, seq, os.urandom))
    saved = processor_module._ACCEPTED_LIMIT
    processor_module._ACCEPTED_LIMIT = accepted_limit
    try:
        hub.get_timer()
        inbound = hub.inbound
        best = float("inf")
        for round_ in range(3):
            start = time.process_time()
            for packet in wire[round_ * count : (round_ + 1) * count]:
                inbound(packet, 50, "192.0.2.2", "192.0.2.1", 1.0)
            best = min(best, time.process_time() - start)
    finally:
        processor_module._ACCEPTED_LIMIT = saved
    assert not hub.drops, hub.drops
    return count / best


def main() -> None:
    quick = "--quick" in sys.argv
    count = 20000 if quick else 100000
    sizes = [1, 10_000, 50_000]
    version = sys.version.split()[0]
    print(f"SPD lookups and ESP outbound with N remote-access policies/children, Python {version}")
    print(
        f"{'policies':>9}{'cache hit ns':>14}{'index ns':>10}{'scan ns':>12}"
        f"{'index/1':>9}{'scan/index':>12}{'outbound pkt/s':>16}{'vs 1':>7}"
        f"{'in, 1 busy':>12}{'vs 1':>6}{'in, all busy':>14}{'vs 1':>6}{'bound 1024':>12}"
    )
    base: tuple[float, float, float, float] | None = None
    for n in sizes:
        cached, missed, scanned = lookups(n, count)
        rate = outbound_rate(n, count // 2)
        one = inbound_rate(n, count, processor_module._ACCEPTED_LIMIT, spread=False)
        inbound = inbound_rate(n, count, processor_module._ACCEPTED_LIMIT)
        old_bound = inbound_rate(n, count, 1024)
        if base is None:
            base = (missed, rate, one, inbound)
        print(
            f"{n:>9,}{cached * 1e9:>14,.0f}{missed * 1e9:>10,.0f}{scanned * 1e9:>12,.0f}"
            f"{missed / base[0]:>9.2f}{scanned / missed:>12.1f}{rate:>16,.0f}{rate / base[1]:>7.2f}"
            f"{one:>12,.0f}{one / base[2]:>6.2f}{inbound:>14,.0f}{inbound / base[3]:>6.2f}{old_bound:>12,.0f}"
        )


if __name__ == "__main__":
    main()
