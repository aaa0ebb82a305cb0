"""``snakeswan demo``: two IKE engines negotiate Main Mode + Quick Mode in memory, and the trace of
every step is printed. (The namespace demo with traffic through a tunnel replaces this once the data
plane exists.)"""

from __future__ import annotations

import argparse
import os
from typing import Any

from snakeswan.analysis import diagram
from snakeswan.analysis.records import from_record
from snakeswan.cli import netdemo
from snakeswan.cli.common import guarded
from snakeswan.config.loader import parse_config
from snakeswan.config.model import ChildProposal
from snakeswan.config.proposals import format_child_proposal
from snakeswan.ike.engine import Engine
from snakeswan.ike.events import ChildSaEstablished, Event, IkeSaEstablished, NegotiationFailed
from snakeswan.trace import Record, Tracer
from snakeswan.wire.enums import ProtocolId

_CONF = """
[connections.demo]
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
aggressive = {aggressive}
proposals = ["{ike}"]
local = {{ auth = "psk", id = "{lid}" }}
remote = {{ auth = "psk", id = "{rid}" }}
[connections.demo.children.net]
local_ts = ["{lnet}"]
remote_ts = ["{rnet}"]
esp_proposals = ["{esp}"]
[secrets.ike-demo]
id = ["{lid}", "{rid}"]
secret = "snakeswan-demo-key"
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="a tunnel between two snakeswan gateways in network namespaces, with traffic (root)",
        description="Build host-a, gw-a, gw-b, host-b namespaces, run two daemons, let host-a's traffic "
        "trigger the tunnel, ping and send TCP through it, show the trace, list-sas and the wire, clean up. "
        "--in-memory: only the negotiation, between two engines in this process (no root needed).",
    )
    p.add_argument("--in-memory", action="store_true", help="negotiate between two in-memory engines only")
    p.add_argument("--aggressive", action="store_true", help="(--in-memory) Aggressive Mode, FQDN identities")
    p.add_argument("--ike", default="aes128-sha256-modp2048", help="IKE proposal (strongSwan syntax)")
    p.add_argument("--esp", default="aes128gcm16-modp2048", help="ESP proposal; a DH group means PFS")
    p.set_defaults(run=guarded(run))


def _config(west: bool, args: argparse.Namespace) -> str:
    a, b = ("192.0.2.1", "192.0.2.2") if west else ("192.0.2.2", "192.0.2.1")
    na, nb = ("10.1.0.0/24", "10.2.0.0/24") if west else ("10.2.0.0/24", "10.1.0.0/24")
    ida, idb = ("@west.demo", "@east.demo") if west else ("@east.demo", "@west.demo")
    if not args.aggressive:
        ida, idb = a, b
    return _CONF.format(
        local=a,
        remote=b,
        lnet=na,
        rnet=nb,
        lid=ida,
        rid=idb,
        ike=args.ike,
        esp=args.esp,
        aggressive=str(args.aggressive).lower(),
    )


def run(args: argparse.Namespace) -> int:
    if not args.in_memory:
        return netdemo.run_demo()
    return run_in_memory(args)


def run_in_memory(args: argparse.Namespace) -> int:
    def printer(who: str) -> Tracer:
        def sink(rec: Record) -> None:
            print(f"  [{who}] {rec.render()}")

        return Tracer(sink=sink)

    west_tracer = printer("west")
    west_records = west_tracer.records
    west = Engine(parse_config(_config(True, args), "west"), os.urandom, tracer=west_tracer)
    east = Engine(parse_config(_config(False, args), "east"), os.urandom, tracer=printer("east"))
    now = 0.0
    print("== negotiation (IKE over an in-memory wire; addresses are documentation addresses)")
    west.initiate("demo", now=now)
    events: dict[str, list[Event]] = {"west": [], "east": []}
    for _ in range(50):
        moved = False
        for src, dst in ((west, east), (east, west)):
            for d in src.datagrams_to_send(now):
                moved = True
                dst.receive_datagram(d.data, d.src, d.dst, now)
        for name, e in (("west", west), ("east", east)):
            while (ev := e.next_event()) is not None:
                events[name].append(ev)
        if not moved:
            break
    ok = True
    print("== result")
    for name in ("west", "east"):
        ike = [e for e in events[name] if isinstance(e, IkeSaEstablished)]
        child = [e.child for e in events[name] if isinstance(e, ChildSaEstablished)]
        failed = [e for e in events[name] if isinstance(e, NegotiationFailed)]
        for i in ike:
            print(
                f"  {name}: IKE SA #{i.ike_sa} {i.local_id} === {i.remote_id}  {i.proposal}  "
                f"lifetime {i.lifetime}s"
            )
        for c in child:
            proto = "ESP" if c.protocol == ProtocolId.IPSEC_ESP else "AH"
            alg = format_child_proposal(
                ChildProposal(c.protocol, c.transform_id, c.key_length, c.auth, c.pfs_group)
            )
            print(
                f"  {name}: {proto} SA {c.local_ts} === {c.remote_ts}  "
                f"in {c.spi_in:08x} out {c.spi_out:08x}  {alg}"
            )
        for f in failed:
            print(f"  {name}: FAILED {f.exchange}: {f.reason}")
        ok = ok and bool(ike) and bool(child) and not failed
    print("== sequence diagram (west's view, each message explained)")
    entries = [from_record(r) for r in west_records]
    print(diagram.render_text(diagram.steps(entries), "west", "east", explain=True))
    print("== tunnel negotiated" if ok else "== negotiation FAILED")
    return 0 if ok else 1
