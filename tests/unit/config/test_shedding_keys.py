"""``[daemon] new_sa_*``: the budget of overload shedding (ike/shedding.py) from the configuration.
Each key is read, checked (bad values refused naming the key), and changes what a Shedder lets
through; the daemon takes the budget at start and on reload."""

from __future__ import annotations

from pathlib import Path

import pytest

from snakeswan.config.loader import parse_config
from snakeswan.config.model import SheddingBudget
from snakeswan.daemon.daemon import Daemon
from snakeswan.errors import ConfigError
from snakeswan.ike.shedding import ZERO, Shedder
from tests.unit.cli.test_operator import CONF


def budget(text: str) -> SheddingBudget:
    return parse_config(f"[daemon]\n{text}\n", "d.toml").daemon.shedding


def shedder(b: SheddingBudget) -> Shedder[int]:
    s: Shedder[int] = Shedder(lambda i, r: False)
    s.apply(b)
    return s


def mm1s(n: int, start: int = 0) -> list[tuple[bytes, bytes, int]]:
    """``n`` new-SA datagrams (zero responder cookie), each from its own /24."""
    return [
        ((start + i).to_bytes(8, "big") + ZERO + bytes(112), (start + i).to_bytes(3, "big"), i)
        for i in range(n)
    ]


def test_defaults_are_the_shedders_own() -> None:
    b = budget("")
    assert b == SheddingBudget()
    s: Shedder[int] = Shedder(lambda i, r: False)
    assert (s.rate, s.burst, s.rate_under_load, s.burst_under_load) == (
        b.rate, b.burst, b.rate_under_load, b.burst_under_load)  # fmt: skip


def test_new_sa_burst_is_what_passes_at_once() -> None:
    assert len(shedder(budget("new_sa_burst = 7")).sort(mm1s(100), 0.0)) == 7
    assert len(shedder(budget("new_sa_burst = 50")).sort(mm1s(100), 0.0)) == 50


def test_new_sa_rate_is_the_refill() -> None:
    for rate, expected in ((16, 2), (64, 8)):
        s = shedder(budget(f"new_sa_rate = {rate}\nnew_sa_burst = 10"))
        assert len(s.sort(mm1s(100), 0.0)) == 10
        assert len(s.sort(mm1s(100, 1000), 1.0)) == 10  # a second's refill, capped by the burst
        assert len(s.sort(mm1s(100, 2000), 1.125)) == expected  # 0.125 s x the rate


def test_new_sa_burst_under_load_cuts_the_saved_tokens_on_a_backlog() -> None:
    s = shedder(budget("new_sa_burst = 100\nnew_sa_burst_under_load = 3"))
    assert len(s.sort(mm1s(100), 0.0, backlog=True)) == 3
    s = shedder(budget("new_sa_burst = 100\nnew_sa_burst_under_load = 30"))
    assert len(s.sort(mm1s(100), 0.0, backlog=True)) == 30


def test_new_sa_rate_under_load_is_the_refill_under_a_backlog() -> None:
    conf = (
        "new_sa_rate = 1000\nnew_sa_burst = 1000\nnew_sa_rate_under_load = {}\nnew_sa_burst_under_load = 100"
    )
    for rate, expected in ((48, 6), (240, 30)):
        s = shedder(budget(conf.format(rate)))
        assert len(s.sort(mm1s(200), 0.0, backlog=True)) == 100  # the tokens under load
        assert len(s.sort(mm1s(200, 1000), 0.125)) == expected  # 0.125 s x the rate under load
    s = shedder(budget(conf.format(48)))
    s.sort(mm1s(200), 0.0, backlog=True)
    assert len(s.sort(mm1s(200, 1000), 1.125)) == 200  # the pressure is over: the normal budget


def test_lower_rates_bring_lower_defaults_under_load() -> None:
    assert budget("new_sa_rate = 50\nnew_sa_burst = 5") == SheddingBudget(50.0, 5, 50.0, 5)


@pytest.mark.parametrize(
    ("text", "key", "why"),
    [
        ("new_sa_rate = 0", "new_sa_rate", "1..1000000, got integer 0"),
        ("new_sa_rate = -5.5", "new_sa_rate", "-5.5"),
        ('new_sa_rate = "fast"', "new_sa_rate", "got"),
        ("new_sa_rate = true", "new_sa_rate", "got"),
        ("new_sa_burst = 0", "new_sa_burst", "1..1000000"),
        ("new_sa_burst = 2.5", "new_sa_burst", "integer"),
        ("new_sa_rate_under_load = 3000", "new_sa_rate_under_load", "must not exceed new_sa_rate"),
        ("new_sa_rate = 100\nnew_sa_rate_under_load = 150", "new_sa_rate_under_load", "must not exceed"),
        ("new_sa_burst_under_load = 2001", "new_sa_burst_under_load", "must not exceed new_sa_burst"),
        ("new_sa_burst_under_load = 0", "new_sa_burst_under_load", "1..1000000"),
        ("new_sa_budget = 5", "new_sa_budget", ""),
    ],
)
def test_bad_values_are_refused_naming_the_key(text: str, key: str, why: str) -> None:
    with pytest.raises(ConfigError, match=key) as info:
        budget(text)
    assert why in str(info.value)
    assert "d.toml" in str(info.value)


def test_the_daemon_takes_the_budget_at_start_and_on_reload(tmp_path: Path) -> None:
    path = tmp_path / "d.toml"
    path.write_text(CONF.replace("[daemon]\n", "[daemon]\nnew_sa_rate = 300\nnew_sa_burst = 30\n"))
    d = Daemon(str(path), control_path=str(tmp_path / "c.sock"))
    s = d.intake.shedder
    assert (s.rate, s.burst, s.rate_under_load, s.burst_under_load) == (300.0, 30.0, 200.0, 20.0)
    assert len(s.sort(mm1s(100), 0.0)) == 30
    path.write_text(CONF.replace("[daemon]\n", "[daemon]\nnew_sa_rate = 40\nnew_sa_burst_under_load = 4\n"))
    d._reload()
    assert (s.rate, s.burst, s.rate_under_load, s.burst_under_load) == (40.0, 2000.0, 40.0, 4.0)
    path.write_text(CONF.replace("[daemon]\n", "[daemon]\nnew_sa_rate = 40\nnew_sa_rate_under_load = 41\n"))
    with pytest.raises(ConfigError, match="new_sa_rate_under_load"):
        d._reload()
    assert s.rate == 40.0  # a refused file changes nothing
