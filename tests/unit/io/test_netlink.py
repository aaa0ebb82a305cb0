"""io/netlink.py without root: the ``ip`` words the drivers build become the netlink messages
``ip`` itself would send, and what netlink cannot do here is refused with the command named."""

from __future__ import annotations

import socket

import pytest

from snakeswan.config.traffic import TrafficSelector
from snakeswan.errors import LocalError
from snakeswan.io import netlink
from snakeswan.io.routes import pass_rule_selectors, tun_table_rule


def attrs(msg: object) -> dict[str, object]:
    return dict(msg["attrs"])  # type: ignore[index]


def test_tun_table_rule_is_an_inverted_fwmark_match() -> None:
    msg = netlink.rule_message(4, tun_table_rule(220, 0x42, 220), what="t")
    assert msg["family"] == socket.AF_INET and msg["flags"] & netlink.FIB_RULE_INVERT
    assert msg["table"] == 220 and msg["action"] == netlink.FR_ACT_TO_TBL
    assert attrs(msg) == {"FRA_FWMARK": 0x42, "FRA_FWMASK": 0xFFFFFFFF, "FRA_TABLE": 220, "FRA_PRIORITY": 220}
    big = netlink.rule_message(6, ["fwmark", "0x42/0xff", "lookup", "1000"], what="t")
    assert big["family"] == socket.AF_INET6 and not big["flags"] & netlink.FIB_RULE_INVERT
    assert big["table"] == netlink.RT_TABLE_COMPAT and attrs(big)["FRA_TABLE"] == 1000
    assert attrs(big)["FRA_FWMASK"] == 0xFF


def test_pass_shunt_rule_selectors() -> None:
    (spec,) = pass_rule_selectors(
        TrafficSelector.from_text("10.231.1.0/24[tcp/5201]"),
        TrafficSelector.from_text("10.231.2.9[tcp/80-90]"),
    )
    msg = netlink.rule_message(4, [*spec, "lookup", "main", "priority", "219"], what="t")
    assert (msg["src_len"], msg["dst_len"], msg["table"]) == (24, 32, netlink.RT_TABLE_MAIN)
    assert attrs(msg) == {
        "FRA_SRC": "10.231.1.0",
        "FRA_DST": "10.231.2.9",
        "FRA_IP_PROTO": 6,
        "FRA_SPORT_RANGE": "5201:5201",
        "FRA_DPORT_RANGE": "80:90",
        "FRA_TABLE": 254,
        "FRA_PRIORITY": 219,
    }


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["rule", "add", "iif", "eth0", "lookup", "main"], "rule selector 'iif' is not supported"),
        (["rule", "add", "fwmark"], "cannot read the rule"),
        (["route", "replace", "10.231.0.0/33", "dev", "x"], "bad route destination"),
        (["route", "replace", "10.231.0.0/24", "via", "10.231.0.1"], "not supported over netlink"),
        (["link", "set", "dev", "x", "qdisc", "fq"], "not supported over netlink"),
        (["neigh", "show", "x"], "not supported over netlink"),
        (
            ["addr", "replace", "10.231.0.1/24", "dev", "x", "valid_lft", "soon"],
            "lifetimes are whole seconds",
        ),
        (["addr", "replace", "10.231.0.1/24", "dev", "x", "scope", "link"], "not supported over netlink"),
    ],
)
def test_unsupported_words_are_refused_naming_the_command(args: list[str], error: str) -> None:
    with pytest.raises(LocalError, match=error) as e:
        netlink.run_netlink(args)
    assert str(e.value).startswith("ip " + " ".join(args))


def test_a_missing_device_is_named_like_ip_does() -> None:
    with pytest.raises(netlink.NetlinkError, match='Cannot find device "sswnosuchdev"') as e:
        netlink.run_netlink(["-4", "route", "del", "10.231.5.0/24", "dev", "sswnosuchdev"])
    assert e.value.code == 19
