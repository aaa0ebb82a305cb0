"""200 remote-access clients negotiated by engines in memory (tests/ra.py), then their IPsec SAs
installed in userspace data planes as the daemon installs them (``sa_params``, a policy per peer
with ``policy_key``): every client pings the gateway's LAN from its virtual IP and gets its reply
through its own SA, and the gateway's replies never leave on another client's SA."""

from __future__ import annotations

import itertools
import struct

from snakeswan.config.traffic import TrafficSelector
from snakeswan.daemon.dataplane import policy_key, sa_params
from snakeswan.ike.events import ChildSaEstablished, ChildSaInfo
from snakeswan.ipsec import Processor
from snakeswan.ipsec.events import Deliver
from snakeswan.ipsec.packet import address_bytes, build_ipv4_header, checksum
from snakeswan.ipsec.spd import Policy, policy_priority
from tests.ra import Hub, client_addr, client_config, gateway_config
from tests.unit.ipsec.helpers import deliver_to

N = 200


def rng():  # type: ignore[no-untyped-def]
    counter = itertools.count(1)
    return lambda n: next(counter).to_bytes(8, "big")[-n:].rjust(n, b"\x5a")


def echo(src: str, dst: str, ident: int, reply: bool = False) -> bytes:
    icmp = struct.pack("!BBHHH", 0 if reply else 8, 0, 0, ident, 1) + b"snakeswan"
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    return build_ipv4_header(address_bytes(src), address_bytes(dst), 1, len(icmp), ident) + icmp


def install(proc: Processor, info: ChildSaInfo, conn: object, child: object) -> None:
    key = policy_key(conn, info.child, info)  # type: ignore[arg-type]
    lts, rts = TrafficSelector.from_text(info.local_ts), TrafficSelector.from_text(info.remote_ts)
    proc.add_policy(Policy(lts, rts, "protect", key, policy_priority("protect", lts, rts)))
    inbound = sa_params(info.spi_in, info.keys_in, info, child)  # type: ignore[arg-type]
    outbound = sa_params(info.spi_out, info.keys_out, info, child)  # type: ignore[arg-type]
    proc.install(inbound, outbound, key, now=0.0)


def test_two_hundred_clients_each_ping_through_their_own_sa() -> None:
    users = {f"user{i}": f"pw{i}" for i in range(N)}
    clients = [client_config(client_addr(i), user=f"user{i}", password=f"pw{i}") for i in range(N)]
    h = Hub(gateway_config(users=users), clients)
    for eng in h.clients:
        eng.initiate("home", now=h.now)
    h.run(60)
    gw_conn = h.gateway.config.connection("rw")
    gateway = Processor(rng())
    for ev in h.of(h.gateway, ChildSaEstablished):
        install(gateway, ev.child, gw_conn, gw_conn.child("net"))
    assert len(gateway.spd.entries) == N
    replies = 0
    for i, eng in enumerate(h.clients):
        conn = eng.config.connection("home")
        [ev] = h.of(eng, ChildSaEstablished)
        proc = Processor(rng())
        install(proc, ev.child, conn, conn.child("home"))
        vip = ev.child.local_ts.split("/")[0]
        [out] = proc.outbound(echo(vip, "10.231.3.1", i), 0.0)
        [got] = deliver_to(gateway, out)
        assert isinstance(got, Deliver) and got.ip_packet[12:16] == address_bytes(vip)
        [back] = gateway.outbound(echo("10.231.3.1", vip, i, reply=True), 0.0)
        assert back.dst == client_addr(i)  # type: ignore[attr-defined]  # to this client only
        [answer] = deliver_to(proc, back)
        assert isinstance(answer, Deliver) and answer.ip_packet[16:20] == address_bytes(vip)
        replies += 1
    assert replies == N
    assert not gateway.drops
