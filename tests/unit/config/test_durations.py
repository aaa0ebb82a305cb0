"""swanctl times and volumes."""

from __future__ import annotations

import pytest

from snakeswan.config.durations import format_duration, parse_bytes, parse_duration
from snakeswan.errors import ConfigError


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30s", 30.0),
        ("10m", 600.0),
        ("4h", 14400.0),
        ("2d", 172800.0),
        ("1.5h", 5400.0),
        ("90", 90.0),
        (" 5 m ", 300.0),
        ("1H", 3600.0),
        (45, 45.0),
        (2.5, 2.5),
        (0, 0.0),
    ],
)
def test_parse_duration(value: str | int | float, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "h", "4w", "-5s", "1h30m", "ten", True, -1, float("inf")])
def test_bad_durations(value: str | int | float) -> None:
    with pytest.raises(ConfigError, match="duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "count"),
    [
        ("1000", 1000),
        (1000, 1000),
        ("100k", 102400),
        ("500M", 500 * 2**20),
        ("1G", 2**30),
        ("1g", 2**30),
        (0, 0),
    ],
)
def test_parse_bytes(value: str | int, count: int) -> None:
    assert parse_bytes(value) == count


@pytest.mark.parametrize("value", ["", "1T", "-1", "lots", False, -5])
def test_bad_bytes(value: str | int) -> None:
    with pytest.raises(ConfigError, match="volume"):
        parse_bytes(value)


@pytest.mark.parametrize(
    ("seconds", "text"), [(14400, "4h"), (90, "90s"), (1.5, "1.5s"), (86400, "1d"), (600, "10m")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds
