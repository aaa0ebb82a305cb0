"""The control protocol fuzzed for a long time (CI runs tests/fuzz/test_control_fuzz.py briefly).

Seeded random requests built from the protocol's pieces and then mutated as bytes, fed to
``parse_request`` (pure) and, every ``--server-every``-th one, to the daemon's control server in
process over its Unix socket. Anything but a ProtocolError from the parser, or an answer that is
not one JSON line with a known code (or a traceback, or a server that stops answering), is a
failure: its input is saved under tests/fuzz/corpus/control/ where test_corpus_regressions
replays it forever after.

Run: python bench/fuzz_control.py [--n 200000] [--seed 1] [--server-every 50]. Prints figures
(inputs per second, codes seen, failures); asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import random
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from snakeswan.control.protocol import COMMANDS, Code, ProtocolError  # noqa: E402
from snakeswan.control.schema import SCHEMA, parse_request  # noqa: E402

CORPUS = ROOT / "tests" / "fuzz" / "corpus" / "control"
CODES = {str(c) for c in Code}
NAMES = sorted({a.name for args in SCHEMA.values() for a in args} | {"x", ""})


def value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, -1, 1, 2**63, 1e308, float("nan"), 0.5])
    if kind == 3:
        return "".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randrange(12)))
    if kind == 4:
        return rng.choice(["gw", "net", "", "x" * 300])
    if kind in (5, 6):
        return [value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(NAMES): value(rng, depth + 1) for _ in range(rng.randrange(4))}


def request(rng: random.Random) -> bytes:
    obj: dict[str, Any] = {}
    if rng.random() < 0.9:
        obj["command"] = rng.choice([*COMMANDS, "frobnicate"]) if rng.random() < 0.9 else value(rng)
    if rng.random() < 0.8:
        obj["args"] = {rng.choice(NAMES): value(rng) for _ in range(rng.randrange(4))}
    if rng.random() < 0.3:
        obj["version"] = rng.choice([1, 2, 3, "2", None])
    data = json.dumps(obj).encode()
    for _ in range(rng.randrange(3)):
        if not data:
            break
        i = rng.randrange(len(data))
        op = rng.randrange(4)
        if op == 0:
            data = data[:i]
        elif op == 1:
            data = data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :]
        elif op == 2:
            data = data[:i] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8))) + data[i:]
        else:
            data = b"[" * rng.randrange(100000) + data
    return data.replace(b"\n", b" ")


def save(data: bytes, why: str) -> Path:
    CORPUS.mkdir(parents=True, exist_ok=True)
    path = CORPUS / f"fuzz-{hashlib.sha256(data).hexdigest()[:16]}.bin"
    path.write_bytes(data)
    print(f"FAILURE ({why}): saved {path.relative_to(ROOT)}")
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--server-every", type=int, default=50)
    args = ap.parse_args()
    from tests.unit.control.test_control_server import Running  # noqa: PLC0415

    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    rng = random.Random(args.seed)
    codes: collections.Counter[str] = collections.Counter()
    failures = served = 0
    with tempfile.TemporaryDirectory() as tmp:
        server = Running(Path(tmp))
        server.daemon.control._command = lambda command, a: True  # checked valid: do nothing
        start = time.perf_counter()
        for n in range(args.n):
            data = request(rng)
            try:
                req = parse_request(data)
                codes["ok"] += 1
            except ProtocolError as e:
                codes[str(e.code)] += 1
                req = None
            except Exception as e:  # the parser must only raise ProtocolError
                failures += 1
                save(data, repr(e))
                continue
            if n % args.server_every or (req is not None and req.command in ("log", "up")):
                continue
            if not data.strip():  # an empty line is a liveness probe: closed without an answer
                continue
            served += 1
            try:
                answers = server.raw(data + b"\n")
            except Exception as e:
                failures += 1
                save(data, f"no answer: {e!r}")
                continue
            bad = not answers or any(
                not a.get("ok") and (a.get("code") not in CODES or "Traceback" in str(a.get("error")))
                for a in answers
            )
            if bad:
                failures += 1
                save(data, f"answer {answers[:2]!r}")
        elapsed = time.perf_counter() - start
        server.close()
    print(f"inputs: {args.n} ({args.n / elapsed:,.0f}/s), through the server: {served}, failures: {failures}")
    print("codes: " + ", ".join(f"{k} {v}" for k, v in codes.most_common()))


if __name__ == "__main__":
    main()
