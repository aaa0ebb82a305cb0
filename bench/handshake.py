"""IKEv1 handshakes per second and memory per IKE SA, two engines in one process.

Run from the repo root: python bench/handshake.py [--n N] [--mem-n N] [--profile VARIANT]

A handshake is a complete Main Mode (or Aggressive Mode) + Quick Mode between two sans-I/O engines
with PSK auth, real randomness (os.urandom) and a frozen clock, datagrams handed over in memory;
it counts from ``initiate`` until both sides reported the IPsec SA. The IKE SA is then deleted
(untimed) so every handshake starts from scratch. Both engines run in this one process on one
core, so "ms CPU per handshake" is the cost of both ends: compare it with strongSwan's "CPU ms per
tunnel (both charons)", and the rate with strongSwan's tunnels/s with both charons on 2 cores
(/work/shared/lab/REPORT.md section 3, N = 1000, median of 3 runs).

Memory: one responder engine accepts N IKE SAs (+ one IPsec SA each) from one initiator engine that
has N connections with distinct identities (as the lab's rate.sh); the initiator is dropped before
the final measurement, so tracemalloc's growth / N is the responder's memory per IKE SA. Compare
with strongSwan's responder RSS growth / N (~24 KiB): RSS and traced Python allocations are not
the same measure, the order of magnitude is what matters.

Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from snakeswan.config.loader import parse_config  # noqa: E402
from snakeswan.ike.engine import Engine  # noqa: E402
from snakeswan.ike.events import ChildSaEstablished, NegotiationFailed  # noqa: E402
from snakeswan.trace import Tracer  # noqa: E402
from tests.pair import A_ADDR, B_ADDR, PSK, site_config  # noqa: E402

NOW = 1000.0


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    ike: str
    esp: str
    aggressive: bool = False
    sw_rate: float | None = None  # strongSwan tunnels/s (median, N = 1000)
    sw_cpu_ms: float | None = None  # strongSwan CPU ms per tunnel, both charons (median)


VARIANTS = [
    Variant(
        "pfs",
        "MM modp2048 / aes128gcm16 + PFS modp2048",
        "aes128-sha256-modp2048",
        "aes128gcm16-modp2048",
        sw_rate=67.7,
        sw_cpu_ms=26.8,
    ),
    Variant(
        "nopfs",
        "MM modp2048 / aes128gcm16, no PFS",
        "aes128-sha256-modp2048",
        "aes128gcm16",
        sw_rate=92.9,
        sw_cpu_ms=17.0,
    ),
    Variant(
        "ecp",
        "MM ecp256 / aes128gcm16, no PFS",
        "aes128-sha256-ecp256",
        "aes128gcm16",
        sw_rate=227.4,
        sw_cpu_ms=6.8,
    ),
    Variant(
        "am",
        "AM PSK modp2048 / aes128gcm16, no PFS",
        "aes128-sha256-modp2048",
        "aes128gcm16",
        aggressive=True,
    ),
]
SW_KIB_PER_SA = 24.5  # responder RSS growth / N at N = 1000, 1 IKE SA + 1 CHILD_SA each


def engines(v: Variant) -> tuple[Engine, Engine]:
    ids: dict[str, Any] = {}
    ids_b: dict[str, Any] = {}
    if v.aggressive:
        ids = {"aggressive": True, "local_id": "@west.test", "remote_id": "@east.test"}
        ids_b = {"aggressive": True, "local_id": "@east.test", "remote_id": "@west.test"}
    a = site_config(A_ADDR, B_ADDR, "10.231.1.0/24", "10.231.2.0/24", ike=v.ike, esp=v.esp, **ids)
    b = site_config(B_ADDR, A_ADDR, "10.231.2.0/24", "10.231.1.0/24", ike=v.ike, esp=v.esp, **ids_b)
    return (
        Engine(parse_config(a, "a.toml"), os.urandom, tracer=Tracer()),
        Engine(parse_config(b, "b.toml"), os.urandom, tracer=Tracer()),
    )


def pump(a: Engine, b: Engine) -> tuple[int, int]:
    """Deliver datagrams both ways until quiet; return the IPsec SAs each side reported."""
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
                if isinstance(ev, ChildSaEstablished):
                    children[i] += 1
                elif isinstance(ev, NegotiationFailed):
                    raise RuntimeError(f"negotiation failed: {ev}")
    return children[0], children[1]


def handshakes(v: Variant, n: int) -> tuple[float, float]:
    """``n`` handshakes; returns (wall seconds, CPU seconds) spent establishing them."""
    a, b = engines(v)
    wall = cpu = 0.0
    for i in range(n + 1):  # the first one warms up (imports, group setup) and is not counted
        w0, c0 = time.perf_counter(), time.process_time()
        sa = a.initiate("site", now=NOW)
        got = pump(a, b)
        w1, c1 = time.perf_counter(), time.process_time()
        if got != (1, 1):
            raise RuntimeError(f"{v.key}: handshake did not complete: IPsec SAs {got}")
        if i > 0:
            wall += w1 - w0
            cpu += c1 - c0
        a.delete_ike(sa, now=NOW)
        pump(a, b)
        if a.ike_sas or b.ike_sas:
            raise RuntimeError(f"{v.key}: IKE SAs left after delete: {len(a.ike_sas)}, {len(b.ike_sas)}")
    return wall, cpu


# ---- memory -------------------------------------------------------------------------------------

HUB = f"""
[connections.hub]
local_addrs = ["{B_ADDR}"]
remote_addrs = ["%any"]
proposals = ["{{ike}}"]
local = {{{{ auth = "psk", id = "{B_ADDR}" }}}}
remote = {{{{ auth = "psk", id = "%any" }}}}

[connections.hub.children.lan]
local_ts = ["10.231.64.0/24"]
remote_ts = ["10.231.128.0/17"]
esp_proposals = ["{{esp}}"]

[secrets.ike-any]
secret = "{PSK}"
"""

SPOKE = f"""
[connections.c{{i}}]
local_addrs = ["{A_ADDR}"]
remote_addrs = ["{B_ADDR}"]
proposals = ["{{ike}}"]
local = {{{{ auth = "psk", id = "@spoke{{i}}.test" }}}}
remote = {{{{ auth = "psk", id = "{B_ADDR}" }}}}

[connections.c{{i}}.children.net]
local_ts = ["10.231.{{hi}}.{{lo}}/32"]
remote_ts = ["10.231.64.0/24"]
esp_proposals = ["{{esp}}"]
"""


def spokes(v: Variant, first: int, count: int) -> Engine:
    conns = "".join(
        SPOKE.format(i=i, hi=128 + i // 256, lo=i % 256, ike=v.ike, esp=v.esp)
        for i in range(first, first + count)
    )
    text = conns + f'\n[secrets.ike-hub]\nsecret = "{PSK}"\n'
    return Engine(parse_config(text, "spokes.toml"), os.urandom, tracer=Tracer())


def establish(spoke: Engine, hub: Engine, first: int, count: int) -> None:
    for i in range(first, first + count):
        spoke.initiate(f"c{i}", now=NOW)
        got = pump(spoke, hub)
        if got != (1, 1):
            raise RuntimeError(f"spoke c{i}: IPsec SAs {got}")


def memory_per_sa(v: Variant, n: int) -> tuple[float, int]:
    """KiB of traced memory the responder keeps per IKE SA (+1 IPsec SA); and its SA count."""
    gc.collect()
    tracemalloc.start()
    hub = Engine(parse_config(HUB.format(ike=v.ike, esp=v.esp), "hub.toml"), os.urandom, tracer=Tracer())
    warm = 100  # fills the hub's bounded trace buffer and pays one-off allocations; then torn down
    spoke = spokes(v, 0, warm)
    establish(spoke, hub, 0, warm)
    for sa in list(spoke.ike_sas):
        spoke.delete_ike(sa.unique_id, now=NOW)
    pump(spoke, hub)
    del spoke
    gc.collect()
    base = tracemalloc.get_traced_memory()[0]
    spoke = spokes(v, warm, n)
    establish(spoke, hub, warm, n)
    del spoke
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return grown / n / 1024, len(hub.ike_sas)


# ---- output -------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100, help="handshakes per variant (default 100)")
    ap.add_argument("--mem-n", type=int, default=1000, help="IKE SAs for the memory figure (default 1000)")
    ap.add_argument("--mem-variant", default="pfs", choices=[v.key for v in VARIANTS])
    ap.add_argument(
        "--profile",
        choices=[v.key for v in VARIANTS],
        help="only profile N handshakes of one variant (cProfile, top 15 cumulative)",
    )
    args = ap.parse_args()
    by_key = {v.key: v for v in VARIANTS}

    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        handshakes(by_key[args.profile], args.n)
        prof.disable()
        print(f"cProfile, {args.n} handshakes of {by_key[args.profile].label}:")
        pstats.Stats(prof).strip_dirs().sort_stats("cumulative").print_stats(15)
        return

    print(f"snakeswan IKEv1 handshakes, both engines in one process (Python {sys.version.split()[0]})")
    print("strongSwan (sw): REPORT.md section 3, N = 1000, both charons on 2 cores, median of 3 runs\n")
    cols = ("variant", "hs", "s", "hs/s", "CPU ms/hs", "sw hs/s", "ratio", "sw CPU ms", "CPU ratio")
    widths = (-42, 5, 7, 8, 10, 8, 6, 10, 9)
    line = " ".join(f"{c:{'<' if w < 0 else '>'}{abs(w)}}" for c, w in zip(cols, widths, strict=True))
    print(line)
    print("-" * len(line))
    for v in VARIANTS:
        wall, cpu = handshakes(v, args.n)
        rate, cpu_ms = args.n / wall, cpu / args.n * 1000
        cells = [v.label, str(args.n), f"{wall:.2f}", f"{rate:.1f}", f"{cpu_ms:.2f}"]
        if v.sw_rate and v.sw_cpu_ms:
            cells += [f"{v.sw_rate:.1f}", f"{rate / v.sw_rate:.2f}"]
            cells += [f"{v.sw_cpu_ms:.1f}", f"{cpu_ms / v.sw_cpu_ms:.2f}"]
        else:
            cells += ["-"] * 4
        print(" ".join(f"{c:{'<' if w < 0 else '>'}{abs(w)}}" for c, w in zip(cells, widths, strict=True)))
    print("ratio = hs/s / sw tunnels/s (> 1: faster); CPU ratio = CPU ms / sw CPU ms (< 1: cheaper).")
    print("Not like for like: snakeswan draws short MODP exponents (crypto/dh.py), strongSwan's openssl")
    print("plugin full 2048-bit ones; with gmp + short exponents strongSwan did 124/s, 14.1 CPU ms (PFS).")

    v = by_key[args.mem_variant]
    kib, held = memory_per_sa(v, args.mem_n)
    print(f"\nmemory, {v.label}: responder holding {held} IKE SAs (+1 IPsec SA each)")
    print(f"  tracemalloc growth / N: {kib:.1f} KiB per IKE SA")
    print(f"  strongSwan: ~{SW_KIB_PER_SA} KiB per IKE SA (responder RSS growth / N)")
    print(f"  ratio {kib / SW_KIB_PER_SA:.2f} (memory OpenSSL allocates itself, e.g. EC keys, is not traced)")


if __name__ == "__main__":
    main()
