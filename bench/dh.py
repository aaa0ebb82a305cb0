"""Diffie-Hellman cost per group and backend: ms per key generation and per shared secret.

Run: python bench/dh.py [--quick]

MODP groups are measured with three exponentiation backends: Python's pow() (not constant time,
shown for reference only, never used), gmpy2.powmod_sec and OpenSSL through cryptography. The
backend snakeswan.crypto.dh uses for each group is marked with '*'. ECP groups and Curve25519 have
one backend (OpenSSL). Prints figures, asserts nothing.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from snakeswan.crypto.dh import SUPPORTED_GROUPS, DhGroupImpl, ModpGroup, dh_group


def per_call_ms(fn: Callable[[], object], budget: float) -> float:
    fn()  # warm up (and pay one-off setup)
    count = 0
    start = time.perf_counter()
    while True:
        fn()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= budget or count >= 2000:
            return elapsed / count * 1000


def bench_group(group: DhGroupImpl, budget: float) -> tuple[float, float]:
    peer = group.generate(os.urandom)
    mine = group.generate(os.urandom)
    keygen = per_call_ms(lambda: group.generate(os.urandom), budget)
    shared = per_call_ms(lambda: mine.shared_secret(peer.public), budget)
    return keygen, shared


def bench_pow(group: ModpGroup, budget: float) -> tuple[float, float]:
    p, nbytes = group.prime, group.exponent_bits // 8
    x = int.from_bytes(os.urandom(nbytes), "big")
    y = pow(2, int.from_bytes(os.urandom(nbytes), "big"), p)
    keygen = per_call_ms(lambda: pow(2, int.from_bytes(os.urandom(nbytes), "big"), p), budget)
    shared = per_call_ms(lambda: pow(y, x, p).to_bytes(group.public_size, "big"), budget)
    return keygen, shared


def main() -> None:
    budget = 0.05 if "--quick" in sys.argv else 0.3
    print(f"{'group':>5}  {'name':<11} {'backend':<12} {'keygen ms':>10} {'shared ms':>10}  {'vs best':>8}")
    print("-" * 66)
    for group_id in SUPPORTED_GROUPS:
        group = dh_group(group_id)
        rows: list[tuple[str, float, float, bool]] = []
        if isinstance(group, ModpGroup):
            rows.append(("pow()", *bench_pow(group, budget), False))
            for backend in ("gmpy2", "openssl"):
                impl = group.with_backend(backend)
                rows.append((backend, *bench_group(impl, budget), backend == group.backend))
        else:
            rows.append(("openssl", *bench_group(group, budget), True))
        safe = [keygen + shared for backend, keygen, shared, _ in rows if backend != "pow()"]
        fastest = min(safe) if len(safe) > 1 else None
        for backend, keygen, shared, chosen in rows:
            ratio = ""
            if fastest is not None and backend != "pow()":
                ratio = f"{(keygen + shared) / fastest:8.2f}"
            label = backend + ("*" if chosen else " ")
            print(f"{group_id:>5}  {group.name:<11} {label:<12} {keygen:10.3f} {shared:10.3f}  {ratio:>8}")
    print("\n'*' = backend used by snakeswan.crypto.dh; last column: (keygen+shared) / fastest safe backend")


if __name__ == "__main__":
    main()
