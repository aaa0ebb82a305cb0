"""``snakeswan load``: N simulated IKEv1 peers against a gateway (see daemon/loadgen.py)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from snakeswan.cli.common import add_verb
from snakeswan.daemon.loadgen import LoadGenerator, LoadResult, LoadSpec
from snakeswan.daemon.loadprocs import run_parallel


def add_parser(sub: Any) -> None:
    p = add_verb(sub, "load", "simulate many IKEv1 peers against a gateway and report the rate", run)
    p.add_argument("gateway", help="the gateway's IP address")
    p.add_argument(
        "--local",
        required=True,
        help="our IP address (the source of every peer); with --procs, one per process may be "
        "given, comma-separated",
    )
    p.add_argument("-n", "--n", type=int, default=100, help="peers (tunnels), default 100")
    p.add_argument("--psk", required=True, help="the group pre-shared key")
    p.add_argument("--rate", type=float, default=0.0, help="tunnels started per second (0: no limit)")
    p.add_argument("--concurrency", type=int, default=100, help="negotiations in flight at most")
    p.add_argument("--ike", default="aes128-sha256-modp2048", help="IKE proposal")
    p.add_argument("--esp", default="aes128gcm16", help="ESP proposal")
    p.add_argument("--aggressive", action="store_true", help="Aggressive Mode")
    p.add_argument("--id", default="peer{i}.load", help="IKE identity of peer {i}")
    p.add_argument("--remote-id", default="%any", help="the gateway's identity")
    p.add_argument("--local-ts", default="dynamic")
    p.add_argument("--remote-ts", default="dynamic")
    p.add_argument("--xauth-user", help="XAUTH user of peer {i}, e.g. user{i}")
    p.add_argument("--xauth-password", help="XAUTH password of peer {i}, e.g. pw{i}")
    p.add_argument("--vips", action="store_true", help="ask for a virtual IP (Mode Config)")
    p.add_argument(
        "--reuse-dh",
        action="store_true",
        help="one DH key pair for all simulated peers: a cheaper client (the gateway's work is unchanged)",
    )
    p.add_argument("--timeout", type=float, default=60.0, help="give up after this many seconds")
    p.add_argument(
        "--procs",
        type=int,
        default=1,
        help="processes (one per core): peers, rate and concurrency are shared out; process k "
        "uses the k-th --local address, or with one address UDP ports 500+k and 4500+k",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress line")


def run(args: argparse.Namespace) -> int:
    spec = LoadSpec(
        gateway=args.gateway,
        local=args.local,
        n=args.n,
        psk=args.psk,
        rate=args.rate,
        concurrency=args.concurrency,
        ike=args.ike,
        esp=args.esp,
        aggressive=args.aggressive,
        identity=args.id,
        remote_id=args.remote_id,
        local_ts=args.local_ts,
        remote_ts=args.remote_ts,
        xauth_user=args.xauth_user,
        xauth_password=args.xauth_password,
        vips=args.vips,
        timeout=args.timeout,
        reuse_dh=args.reuse_dh,
    )

    def progress(r: LoadResult) -> None:
        if not args.quiet:
            print(
                f"\r{r.elapsed:6.1f}s started {r.started} established {r.established} "
                f"failed {sum(r.failures.values())}",
                end="",
                file=sys.stderr,
                flush=True,
            )

    if args.procs <= 1 and "," in args.local:
        print("snakeswan load: several --local addresses need --procs", file=sys.stderr)
        return 2
    if args.procs > 1:
        result = run_parallel(spec, args.procs, progress).summary()
    else:
        result = LoadGenerator(spec, progress).run().summary()
    if not args.quiet:
        print(file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['established']}/{spec.n} established in {result['seconds']} s "
            f"({result['per_second']}/s), {result['failed']} failed; latency {result['latency_ms']}"
        )
        for reason, count in result["failures"].items():  # type: ignore[attr-defined]
            print(f"  {count} x {reason}")
    return 0 if result["established"] == spec.n else 1
