"""Route-based children: the configuration keys (swanctl's if_id_in/if_id_out, snakeswan's
interface) and the processor's side (outbound_via: the child's SA whatever the SPD says, bounded by
the negotiated selectors, Acquire without an SA; inbound delivered to the child's device)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from snakeswan.config.loader import parse_config
from snakeswan.errors import ConfigError
from snakeswan.ipsec import Processor
from snakeswan.ipsec.events import Acquire, Deliver, DeliverVia
from tests.unit.ipsec.helpers import KEY, counter_rng, deliver_to, ip_packet, sa_params

CONF = """
[connections.gw]
remote_addrs = ["{remote}"]
local = {{ auth = "psk" }}
remote = {{ auth = "psk" }}
[connections.gw.children.vti]
local_ts = ["0.0.0.0/0"]
remote_ts = ["0.0.0.0/0"]
{extra}
[secrets.ike-gw]
secret = "x"
"""


def load(extra: str, remote: str = "10.231.0.2") -> object:
    return parse_config(CONF.format(extra=extra, remote=remote), "t.toml")


def test_if_id_makes_a_route_based_child_with_its_interface() -> None:
    child = load("if_id_in = 42\nif_id_out = 42").connection("gw").child("vti")  # type: ignore[attr-defined]
    assert (child.if_id, child.interface) == (42, "vti42")
    child = load('if_id_in = 7\nif_id_out = 7\ninterface = "tun-site"').connection("gw").child("vti")  # type: ignore[attr-defined]
    assert child.interface == "tun-site"
    assert load("").connection("gw").child("vti").interface is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("extra", "key", "reason"),
    [
        ("if_id_in = 1\nif_id_out = 2", "if_id_out", "one interface carries both directions"),
        ('interface = "vti9"', "interface", "set if_id_in/if_id_out too"),
        ('if_id_in = 1\nif_id_out = 1\ninterface = "a/b"', "interface", "1..15 characters"),
        ('if_id_in = 1\nif_id_out = 1\nmode = "transport"', "if_id_in", "a route-based child is a tunnel"),
        ('if_id_in = 1\nif_id_out = 1\ninterface = "snakeswan0"', "interface", "own TUN device"),
    ],
)
def test_bad_route_based_keys_are_refused(extra: str, key: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as info:
        load(extra)
    assert f"children.vti.{key}" in str(info.value)


def test_route_based_needs_one_peer_and_one_child_per_interface() -> None:
    with pytest.raises(ConfigError, match="specific remote address"):
        load("if_id_in = 1\nif_id_out = 1", remote="%any")
    twice = CONF.format(extra="if_id_in = 1\nif_id_out = 1", remote="10.231.0.2") + (
        '[connections.gw.children.other]\nlocal_ts = ["10.0.0.0/8"]\nremote_ts = ["0.0.0.0/0"]\n'
        "if_id_in = 1\nif_id_out = 1\n"
    )
    with pytest.raises(ConfigError, match=r"already connections\.gw\.children\.vti\.interface's"):
        parse_config(twice, "t.toml")


def _route_based_pair() -> tuple[Processor, Processor]:
    a, b = Processor(counter_rng()), Processor(counter_rng())
    # a -> b uses SPI 0x1001, b -> a 0x2002; selectors 10.1.0.0/24 === 10.2.0.0/24 (helpers.NETS)
    a.install(
        replace(sa_params("aes128gcm16", 0x2002, seed=2), interface="vti1"),
        sa_params("aes128gcm16", 0x1001),
        KEY,
        now=0.0,
    )
    b.install(
        replace(sa_params("aes128gcm16", 0x1001, local_first=False), interface="vti2"),
        sa_params("aes128gcm16", 0x2002, seed=2, local_first=False),
        KEY,
        now=0.0,
    )
    return a, b


def test_outbound_via_uses_the_child_sa_without_any_policy() -> None:
    a, b = _route_based_pair()
    packet = ip_packet("10.1.0.5", "10.2.0.7", data=b"routed in")
    assert a.outbound(packet, 0.0)[0].__class__.__name__ == "Bypass"  # the SPD knows nothing of it
    [out] = a.outbound_via([packet], KEY, 0.0)
    [got] = deliver_to(b, out)
    assert isinstance(got, DeliverVia) and got.interface == "vti2" and got.ip_packet == packet
    [out] = b.outbound_via([ip_packet("10.2.0.7", "10.1.0.5", data=b"back")], KEY, 0.0)
    [got] = deliver_to(a, out)
    assert isinstance(got, Deliver) and type(got) is DeliverVia and got.interface == "vti1"


def test_outbound_via_is_bounded_by_the_negotiated_selectors() -> None:
    a, _b = _route_based_pair()
    assert a.outbound_via([ip_packet("10.1.0.5", "10.9.0.1")], KEY, 0.0) == []
    assert a.drops.get("policy") == 1


def test_outbound_via_without_an_sa_queues_and_acquires() -> None:
    proc = Processor(counter_rng())
    assert proc.outbound_via([ip_packet("10.1.0.5", "10.2.0.7")], ("gw", "vti"), 5.0) == []
    ev = proc.next_event()
    assert isinstance(ev, Acquire) and ev.policy_key == ("gw", "vti") and ev.dst == "10.2.0.7"


def test_packets_queued_before_the_sa_are_bounded_by_its_selectors_too() -> None:
    a = Processor(counter_rng())
    inside, outside = ip_packet("10.1.0.5", "10.2.0.7", data=b"in"), ip_packet("10.1.0.5", "10.9.0.1")
    assert a.outbound_via([inside, outside], KEY, 0.0) == []
    out = a.install(
        replace(sa_params("aes128gcm16", 0x2002, seed=2), interface="vti1"),
        replace(sa_params("aes128gcm16", 0x1001), interface="vti1"),
        KEY,
        now=0.0,
    )
    assert len(out) == 1 and a.drops.get("policy") == 1
