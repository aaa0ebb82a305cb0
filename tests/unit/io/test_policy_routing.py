"""Policy routing with a fake ``ip``: the TUN table's rule, pass-shunt rules from selectors,
leftovers replaced at start, everything removed at stop; the socket mark."""

from __future__ import annotations

import socket
from collections.abc import Sequence

import pytest

from snakeswan.config.traffic import TrafficSelector
from snakeswan.errors import LocalError
from snakeswan.io.routes import SO_MARK, Rules, pass_rule_selectors, set_mark, tun_table_rule


class FakeIp:
    """Records ``ip`` calls; ``rule del`` of a rule that is not there fails like iproute2."""

    def __init__(self, leftovers: int = 0) -> None:
        self.calls: list[list[str]] = []
        self.rules: list[list[str]] = [["-4", *tun_table_rule(220, 0x42, 220)]] * leftovers

    def __call__(self, args: Sequence[str]) -> str:
        args = list(args)
        self.calls.append(args)
        version, _rule, verb, *spec = args
        if verb == "add":
            self.rules.append([version, *spec])
        elif [version, *spec] in self.rules:
            self.rules.remove([version, *spec])
        else:
            raise LocalError(f"ip {' '.join(args)}: RTNETLINK answers: No such file or directory")
        return ""


def ts(text: str) -> TrafficSelector:
    return TrafficSelector.from_text(text)


def test_tun_table_rule() -> None:
    assert tun_table_rule(220, 0x42, 220) == ["not", "fwmark", "0x42", "lookup", "220", "priority", "220"]


def test_rules_replace_leftovers_and_are_removed_at_stop() -> None:
    fake = FakeIp(leftovers=2)  # a daemon that was killed twice
    rules = Rules(runner=fake)
    rules.add(4, tun_table_rule(220, 0x42, 220))
    rules.add(6, tun_table_rule(220, 0x42, 220))
    assert fake.rules == [["-4", *tun_table_rule(220, 0x42, 220)], ["-6", *tun_table_rule(220, 0x42, 220)]]
    assert [c[2] for c in fake.calls] == ["del", "del", "del", "add", "del", "add"]
    assert rules.installed() == [(4, tun_table_rule(220, 0x42, 220)), (6, tun_table_rule(220, 0x42, 220))]
    fake.rules.pop()  # somebody deleted the IPv6 one already: not an error
    rules.remove_all()
    assert fake.rules == [] and rules.installed() == []


def test_remove_one_rule() -> None:
    fake = FakeIp()
    rules = Rules(runner=fake)
    spec = ["to", "10.231.2.0/24", "lookup", "main", "priority", "219"]
    rules.add(4, spec)
    assert not rules.remove(4, ["to", "10.231.9.0/24", "lookup", "main", "priority", "219"])
    assert rules.remove(4, spec) and fake.rules == []


def test_a_failing_rule_raises() -> None:
    def broken(args: Sequence[str]) -> str:
        raise LocalError("ip rule add: Operation not permitted")

    with pytest.raises(LocalError, match="not permitted"):
        Rules(runner=broken).add(4, tun_table_rule(220, 0x42, 220))


def test_pass_rule_selectors() -> None:
    assert pass_rule_selectors(ts("10.231.1.0/24[tcp]"), ts("10.231.2.0/24[tcp/5201]")) == [
        ["from", "10.231.1.0/24", "to", "10.231.2.0/24", "ipproto", "tcp", "dport", "5201"]
    ]
    assert pass_rule_selectors(ts("10.231.2.0/24[udp/500]"), ts("%any[udp/1000-2000]")) == [
        ["from", "10.231.2.0/24", "ipproto", "udp", "sport", "500", "dport", "1000-2000"]
    ]
    assert pass_rule_selectors(ts("%any6"), ts("fdad:231:2::7")) == [["to", "fdad:231:2::7/128"]]
    assert pass_rule_selectors(ts("%any"), ts("%any[icmp]")) == [["ipproto", "1"]]  # by number
    # a range takes several prefixes: one rule per pair
    assert pass_rule_selectors(ts("10.231.1.1"), ts("10.231.2.1-10.231.2.2")) == [
        ["from", "10.231.1.1/32", "to", "10.231.2.1/32"],
        ["from", "10.231.1.1/32", "to", "10.231.2.2/32"],
    ]
    with pytest.raises(LocalError, match="two address families"):
        pass_rule_selectors(ts("10.231.1.1"), ts("fdad:231:2::7"))


def test_set_mark() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        set_mark(s, 0)  # nothing to do, never fails
        try:
            set_mark(s, 0x42)
        except LocalError as e:
            assert "CAP_NET_ADMIN" in str(e)
        else:
            assert s.getsockopt(socket.SOL_SOCKET, SO_MARK) == 0x42
