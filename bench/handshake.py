"""IKEv1 handshakes per second and memory per IKE SA, two engines in one process.

Run from the repo root: python bench/handshake.py [--n N] [--mem-n N] [--profile VARIANT]

A handshake is a complete Main Mode (or Aggressive Mode) + Quick Mode between two sans-I/O engines
with PSK auth, real randomness (os.urandom) and a frozen clock, datagrams handed over in memory;
it counts from ``initiate`` until both sides reported the IPsec SA. The IKE SA is then deleted
(untimed) so every handshake starts from scratch. Both engines run in this one process on one
core, so "ms CPU per handshake" is the cost of both ends: compared with strongSwan's "CPU ms per
tunnel (both charons)", and the rate with strongSwan's tunnels/s, both measured in the same run
(``--sw-n`` tunnels per variant, 0 to skip): a charon initiator driven over vici
(bench/scale_gateway.py's SwanLoad, 200 in flight) against a charon responder, in namespaces,
each its own process on this machine's cores (needs root, strongSwan and the ``vici`` package).

Memory: one responder engine accepts N IKE SAs (+ one IPsec SA each) from one initiator engine that
has N connections with distinct identities (as the lab's rate.sh); the initiator is dropped before
the final measurement, so tracemalloc's growth / N is the responder's memory per IKE SA. Compared
with strongSwan's responder RSS growth / N in the same run: RSS and traced Python allocations are
not the same measure, the order of magnitude is what matters.

Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import sys
import tempfile
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


VARIANTS = [
    Variant(
        "pfs",
        "MM modp2048 / aes128gcm16 + PFS modp2048",
        "aes128-sha256-modp2048",
        "aes128gcm16-modp2048",
    ),
    Variant(
        "nopfs",
        "MM modp2048 / aes128gcm16, no PFS",
        "aes128-sha256-modp2048",
        "aes128gcm16",
    ),
    Variant(
        "ecp",
        "MM ecp256 / aes128gcm16, no PFS",
        "aes128-sha256-ecp256",
        "aes128gcm16",
    ),
    Variant(
        "am",
        "AM PSK modp2048 / aes128gcm16, no PFS",
        "aes128-sha256-modp2048",
        "aes128gcm16",
        aggressive=True,
    ),
]


def strongswan_pair(v: Variant, n: int, work: Path) -> tuple[float, float, float]:
    """strongSwan<->strongSwan in namespaces, now: (tunnels/s, CPU ms per tunnel of both charons,
    the responder's RSS growth per IKE SA in KiB)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from gateway_rate import THEIRS, cpu_seconds  # noqa: PLC0415
    from scale_gateway import SwanLoad, rss_kib  # noqa: PLC0415

    from tests.interop.strongswan import AGGRESSIVE_PSK_OPT_IN, Charon  # noqa: PLC0415
    from tests.netns import Topology, site_to_site  # noqa: PLC0415

    conf = THEIRS.format(ike=v.ike).replace("esp_proposals = aes128gcm16", f"esp_proposals = {v.esp}")
    if v.aggressive:
        conf = conf.replace("version = 1", "version = 1\n    aggressive = yes")
    settings = {"init_limit_half_open": 0, "block_threshold": 100000, AGGRESSIVE_PSK_OPT_IN: True}
    topo = Topology()
    try:
        west, east = site_to_site(topo)
        gw = Charon(east, work / f"gw-{v.key}", swanctl_conf=conf, settings=settings, default_log=-1)
        gw.start()
        gw.load_all()
        topo.on_close(gw.stop)
        ini = Charon(west, work / f"ini-{v.key}", default_log=-1)
        ini.start()
        topo.on_close(ini.stop)
        assert gw.pid is not None and ini.pid is not None
        load = SwanLoad(ini, ike=v.ike, esp=v.esp, aggressive=v.aggressive)
        cpu0, rss0 = cpu_seconds(gw.pid) + cpu_seconds(ini.pid), rss_kib(gw.pid)
        r = load.run([(f"c{i}", f"peer{i}.load") for i in range(n)], 200, 300)
        done = int(r["established"])
        if not done:
            raise RuntimeError(f"strongSwan established no tunnel ({v.key}): {r}")
        cpu = (cpu_seconds(gw.pid) + cpu_seconds(ini.pid) - cpu0) * 1e3 / done
        return float(r["per_second"]), cpu, (rss_kib(gw.pid) - rss0) / done
    finally:
        topo.close()


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
    ap.add_argument("--sw-n", type=int, default=300, help="strongSwan tunnels per variant (0: skip)")
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
    print(f"strongSwan (sw): charon <-> charon in namespaces, {args.sw_n} tunnels, this run\n")
    cols = ("variant", "hs", "s", "hs/s", "CPU ms/hs", "sw hs/s", "ratio", "sw CPU ms", "CPU ratio")
    widths = (-42, 5, 7, 8, 10, 8, 6, 10, 9)
    line = " ".join(f"{c:{'<' if w < 0 else '>'}{abs(w)}}" for c, w in zip(cols, widths, strict=True))
    print(line)
    print("-" * len(line))
    sw_kib: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ssw-hs-") as tmp:
        for v in VARIANTS:
            wall, cpu = handshakes(v, args.n)
            rate, cpu_ms = args.n / wall, cpu / args.n * 1000
            cells = [v.label, str(args.n), f"{wall:.2f}", f"{rate:.1f}", f"{cpu_ms:.2f}"]
            if args.sw_n:
                sw_rate, sw_cpu_ms, sw_kib[v.key] = strongswan_pair(v, args.sw_n, Path(tmp))
                cells += [f"{sw_rate:.1f}", f"{rate / max(sw_rate, 1e-9):.2f}"]
                cells += [f"{sw_cpu_ms:.1f}", f"{cpu_ms / max(sw_cpu_ms, 1e-9):.2f}"]
            else:
                cells += ["-"] * 4
            print(
                " ".join(f"{c:{'<' if w < 0 else '>'}{abs(w)}}" for c, w in zip(cells, widths, strict=True))
            )
    print("ratio = hs/s / sw tunnels/s (> 1: faster); CPU ratio = CPU ms / sw CPU ms (< 1: cheaper).")
    print("Not like for like: snakeswan's pair is in memory on one core, strongSwan's over sockets on two;")
    print(
        "snakeswan draws short MODP exponents (crypto/dh.py), strongSwan's openssl plugin full 2048-bit ones."
    )

    v = by_key[args.mem_variant]
    kib, held = memory_per_sa(v, args.mem_n)
    print(f"\nmemory, {v.label}: responder holding {held} IKE SAs (+1 IPsec SA each)")
    print(f"  tracemalloc growth / N: {kib:.1f} KiB per IKE SA")
    if v.key in sw_kib:
        sw = sw_kib[v.key]
        print(f"  strongSwan, this run: {sw:.1f} KiB per IKE SA (responder RSS growth / {args.sw_n})")
        ratio = kib / max(sw, 1e-9)
        print(f"  ratio {ratio:.2f} (memory OpenSSL allocates itself, e.g. EC keys, is not traced)")


if __name__ == "__main__":
    main()
