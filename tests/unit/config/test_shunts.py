"""Pass/drop shunt children and the [daemon] policy-routing settings in the configuration file."""

from __future__ import annotations

import pytest

from snakeswan.config.loader import parse_config
from snakeswan.config.traffic import TrafficSelector
from snakeswan.errors import ConfigError

BASE = """
[connections.gw]
local_addrs = ["10.231.0.1"]
remote_addrs = ["10.231.0.2"]
local = { auth = "psk" }
remote = { auth = "psk" }
[connections.gw.children.net]
local_ts = ["10.231.1.0/24"]
remote_ts = ["10.231.2.0/24"]
start_action = "trap"
[secrets.ike-1]
secret = "s"
"""


def test_pass_and_drop_children_are_shunts_apart_from_the_negotiated_ones() -> None:
    text = (
        BASE
        + """
[connections.gw.children.web]
mode = "pass"
local_ts = ["10.231.1.0/24[tcp]", "fdad:231:1::/64[tcp]"]
remote_ts = ["10.231.2.0/24[tcp/8000-8080]", "fdad:231:2::/64[tcp/443]"]
[connections.gw.children.block]
mode = "drop"
remote_ts = ["10.231.2.7"]
start_action = "trap"
"""
    )
    conn = parse_config(text, "t.toml").connection("gw")
    assert [c.name for c in conn.children] == ["net"]  # what the IKE engine sees
    assert [(c.name, c.mode, c.shunt) for c in conn.shunts] == [
        ("web", "pass", True),
        ("block", "drop", True),
    ]
    web = conn.shunts[0]
    assert len(web.local_ts) == 2 and web.remote_ts[0] == TrafficSelector.from_text(
        "10.231.2.0/24[tcp/8000-8080]"
    )
    assert conn.shunts[1].local_ts[0].dynamic  # resolved to the local address when installed
    assert not conn.children[0].shunt


def test_a_shunt_is_never_started() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE.replace('start_action = "trap"', 'start_action = "start"\nmode = "drop"'), "t.toml")
    assert str(info.value) == (
        't.toml: connections.gw.children.net.start_action: a "drop" policy is installed at start and '
        'never negotiated; expected "trap" or "none"'
    )


def test_a_shunt_selector_needs_a_partner_of_its_family() -> None:
    text = BASE.replace('remote_ts = ["10.231.2.0/24"]', 'remote_ts = ["10.231.2.0/24", "fdad:231:2::/64"]')
    with pytest.raises(ConfigError) as info:
        parse_config(text, "t.toml")  # negotiated: one Quick Mode per pair, and this one has none
    assert "remote_ts[1]: fdad:231:2::/64 has no selector of its address family opposite" in str(info.value)
    with pytest.raises(ConfigError) as info:
        parse_config(text.replace('start_action = "trap"', 'mode = "pass"'), "t.toml")
    assert "remote_ts[1]: fdad:231:2::/64 has no selector of its address family opposite" in str(info.value)


def test_negotiated_children_keep_the_ikev1_limits() -> None:
    with pytest.raises(ConfigError, match="single port or all ports"):
        parse_config(BASE.replace('["10.231.2.0/24"]', '["10.231.2.0/24[tcp/1-2]"]'), "t.toml")


def test_daemon_policy_routing_settings() -> None:
    default = parse_config(BASE, "t.toml").daemon
    assert (default.route_table, default.route_priority, default.fwmark) == (220, 220, 0x42)
    d = parse_config(
        '[daemon]\nroute_table = 0\nroute_priority = 100\nfwmark = "0x1234"\n' + BASE, "t.toml"
    ).daemon
    assert (d.route_table, d.route_priority, d.fwmark) == (0, 100, 0x1234)
    with pytest.raises(ConfigError) as info:
        parse_config("[daemon]\nroute_table = 254\n" + BASE, "t.toml")
    assert "daemon.route_table: 254 is one of the kernel's tables" in str(info.value)
    for bad in ("fwmark = 0", "route_priority = 1", "route_priority = 40000"):
        with pytest.raises(ConfigError):
            parse_config(f"[daemon]\n{bad}\n" + BASE, "t.toml")
