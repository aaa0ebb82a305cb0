"""Times and volumes as swanctl.conf writes them: ``30s``, ``1.5h``, ``4h``, ``2d``; ``500M``, ``1G``.

A bare number is seconds (or bytes / packets). Volume suffixes ``k``, ``m``, ``g`` (either case)
are powers of 1024, as strongSwan's ``vici_config.c`` reads ``rekey_bytes``.
"""

from __future__ import annotations

import math
import re

from snakeswan.errors import ConfigError

_TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_BYTE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_NUMBER_RE = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[a-zA-Z]?)\s*$")


def _show(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def parse_duration(value: str | int | float) -> float:
    """``"1h"`` -> 3600.0; ``30`` -> 30.0. Negative, non-finite or unknown units raise ``ConfigError``."""
    if isinstance(value, bool):
        raise ConfigError(f"expected a duration like 30s, 10m, 4h or 1d, got {_show(value)}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"expected a non-negative duration, got {_show(value)}")
        return float(value)
    match = _NUMBER_RE.match(value)
    unit = match["unit"].lower() if match else ""
    if match is None or unit not in _TIME_UNITS:
        raise ConfigError(f"expected a duration like 30s, 10m, 4h or 1d, got {_show(value)}")
    return float(match["number"]) * _TIME_UNITS[unit]


def parse_bytes(value: str | int) -> int:
    """``"500M"`` -> 524288000; ``"100k"`` -> 102400; ``1000`` -> 1000 (also used for packet counts)."""
    if isinstance(value, bool):
        raise ConfigError(f"expected a volume like 1000, 100k, 500M or 1G, got {_show(value)}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"expected a non-negative volume, got {_show(value)}")
        return value
    match = _NUMBER_RE.match(value)
    unit = match["unit"].lower() if match else ""
    if match is None or unit not in _BYTE_UNITS:
        raise ConfigError(f"expected a volume like 1000, 100k, 500M or 1G, got {_show(value)}")
    return int(float(match["number"]) * _BYTE_UNITS[unit])


def format_duration(seconds: float) -> str:
    """The shortest exact swanctl form: 14400 -> ``4h``, 90 -> ``90s``, 1.5 -> ``1.5s``."""
    for unit in ("d", "h", "m"):
        size = _TIME_UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s" if seconds == int(seconds) else f"{seconds}s"
