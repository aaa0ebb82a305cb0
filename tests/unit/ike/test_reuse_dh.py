"""``snakeswan load --reuse-dh``: the load generator's engine uses one DH key pair per group for all
its simulated peers (Context.reused_dh), which only makes the client cheaper; the gateway still
draws a key pair of its own per SA, and each tunnel still gets keys of its own."""

from __future__ import annotations

import pytest

from snakeswan.cli.main import build_parser
from snakeswan.daemon.loadgen import LoadGenerator, LoadSpec
from snakeswan.ike.events import ChildSaEstablished
from snakeswan.wire.message import decode_message
from snakeswan.wire.payloads import KePayload
from tests.pair import A_ADDR, B_ADDR, Pair

GATEWAY = f"""
[daemon]
half_open_per_source = 100
[connections.hub]
local_addrs = ["{B_ADDR}"]
remote_addrs = ["%any"]
proposals = ["aes128-sha256-modp2048"]
local = {{ auth = "psk", id = "hub.load" }}
remote = {{ auth = "psk" }}
[connections.hub.children.lan]
local_ts = ["10.231.2.0/24"]
esp_proposals = ["aes128gcm16"]
[secrets.ike-group]
secret = "load-psk"
"""


def ke_values(p: Pair, sender: str) -> list[bytes]:
    out = []
    for who, d in p.wire:
        if who == sender and not d.data[19] & 1:  # plaintext: MM1..MM4
            out += [ke.data for ke in decode_message(d.data).all(KePayload)]
    return out


@pytest.mark.parametrize("reuse", [True, False])
def test_one_key_pair_for_every_peer_only_on_the_client(reuse: bool) -> None:
    spec = LoadSpec(B_ADDR, A_ADDR, 3, "load-psk", remote_ts="10.231.2.0/24", reuse_dh=reuse)
    p = Pair(spec.config_text(), GATEWAY)
    if reuse:
        p.a.engine.ctx.reused_dh = {}  # as LoadGenerator does with spec.reuse_dh
    for i in range(3):
        p.a.engine.initiate(f"c{i}", now=p.now)
    p.run(30)
    ours, theirs = p.of(p.a, ChildSaEstablished), p.of(p.b, ChildSaEstablished)
    assert len(ours) == len(theirs) == 3
    assert len({c.child.keys_in for c in ours}) == 3  # every tunnel has keys of its own
    client, gateway = ke_values(p, "a"), ke_values(p, "b")
    assert len(client) == len(gateway) == 3
    assert len(set(client)) == (1 if reuse else 3)
    assert len(set(gateway)) == 3  # the gateway's work is not touched
    if reuse:
        assert list(p.a.engine.ctx.reused_dh or {}) == [14]
    assert p.b.engine.ctx.reused_dh is None


def test_the_generator_and_its_cli_option() -> None:
    assert LoadGenerator(LoadSpec(B_ADDR, A_ADDR, 2, "k", reuse_dh=True)).engine.ctx.reused_dh == {}
    assert LoadGenerator(LoadSpec(B_ADDR, A_ADDR, 2, "k")).engine.ctx.reused_dh is None
    args = build_parser().parse_args(["load", B_ADDR, "--local", A_ADDR, "--psk", "k", "--reuse-dh"])
    assert args.reuse_dh is True
