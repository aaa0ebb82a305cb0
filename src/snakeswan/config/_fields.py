"""Typed access to one TOML table, every error naming the file, the dotted key and what was expected."""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from snakeswan.config.durations import parse_bytes, parse_duration
from snakeswan.errors import ConfigError

_T = TypeVar("_T")

_TOML_TYPES = {str: "string", int: "integer", float: "float", bool: "boolean", list: "array", dict: "table"}
_TRUE = ("yes", "true", "on")
_FALSE = ("no", "false", "off")


def describe(value: object) -> str:
    """``got ...`` text for a TOML value: ``string "tunel"``, ``integer 5``, ``a table``."""
    kind = _TOML_TYPES.get(type(value), type(value).__name__)
    if isinstance(value, dict | list):
        return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"
    if isinstance(value, str):
        return f'"{value}"'
    return f"{kind} {value!r}" if not isinstance(value, bool) else f"boolean {str(value).lower()}"


def quoted(options: Iterable[str]) -> str:
    """``"a", "b" or "c"``."""
    items = [f'"{option}"' for option in options]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


class Table:
    """A TOML table at dotted ``path`` of file ``source``; values are read with a type and a default."""

    def __init__(self, data: Mapping[str, object], path: str, source: str) -> None:
        self.data = data
        self.path = path
        self.source = source

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, what: str) -> ConfigError:
        return ConfigError(what, f"{self.source}: {self.key_path(key)}")

    def here(self, what: str) -> ConfigError:
        """An error about the table itself."""
        return ConfigError(what, f"{self.source}: {self.path}" if self.path else self.source)

    def check_keys(self, allowed: Iterable[str], extra: Callable[[str], bool] = lambda key: False) -> None:
        """Reject any key not in ``allowed`` (and for which ``extra(key)`` is false)."""
        allowed = tuple(allowed)
        for key in self.data:
            if key not in allowed and not extra(key):
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f' (did you mean "{close[0]}"?)' if close else ""
                raise self.error(key, f"unknown key{hint}; expected one of: {', '.join(sorted(allowed))}")

    def sub(self, key: str) -> Table | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.error(key, f"expected a table, got {describe(value)}")
        return Table(value, self.key_path(key), self.source)

    def subtables(self, key: str) -> list[tuple[str, Table]]:
        """The named tables inside table ``key``: ``[connections.gw]`` -> ``[("gw", Table)]``."""
        outer = self.sub(key)
        if outer is None:
            return []
        result = []
        for name in outer.data:
            inner = outer.sub(name)
            assert inner is not None
            result.append((name, inner))
        return result

    def convert(self, key: str, parse: Callable[[_T], object], value: _T) -> object:
        try:
            return parse(value)
        except ConfigError as exc:
            raise self.error(key, exc.what) from None

    def only(self, key: str, value: object, accepted: object, why: str) -> None:
        """Fail closed: ``value`` (already read from ``key``) must be ``accepted``, the one setting
        the code acts on; anything else is refused with ``why`` rather than parsed and ignored."""
        if key in self.data and value != accepted:
            shown = str(accepted).lower() if isinstance(accepted, bool) else repr(accepted)
            raise self.error(key, f"{why}; expected {shown} (or leave the key out)")

    def string(self, key: str, default: str | None = None) -> str | None:
        value = self.data.get(key, default)
        if value is not None and not isinstance(value, str):
            raise self.error(key, f"expected a string, got {describe(value)}")
        return value

    def choice(self, key: str, options: tuple[str, ...], default: str) -> str:
        value = self.data.get(key, default)
        if value not in options:
            raise self.error(key, f"expected {quoted(options)}, got {describe(value)}")
        assert isinstance(value, str)
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        raise self.error(key, f"expected true or false, got {describe(value)}")

    def integer(self, key: str, default: int, low: int = 0, high: int = 2**32 - 1) -> int:
        value = self.data.get(key, default)
        if isinstance(value, str) and value.lower().startswith("0x"):
            with contextlib.suppress(ValueError):
                value = int(value, 16)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise self.error(key, f"expected an integer {low}..{high}, got {describe(value)}")
        return value

    def duration(self, key: str) -> float | None:
        """A time (``30s``, ``4h``, a number of seconds) or None when the key is absent."""
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, str | int | float):
            raise self.error(key, f"expected a duration like 30s, 10m, 4h or 1d, got {describe(value)}")
        result = self.convert(key, parse_duration, value)
        assert isinstance(result, float)
        return result

    def volume(self, key: str) -> int | None:
        """A byte or packet count (``500M``, ``1G``, a number) or None when the key is absent."""
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise self.error(key, f"expected a volume like 1000, 100k, 500M or 1G, got {describe(value)}")
        result = self.convert(key, parse_bytes, value)
        assert isinstance(result, int)
        return result

    def strings(self, key: str, default: tuple[str, ...] | None = ()) -> tuple[str, ...] | None:
        """An array of strings; a single string is split at commas, as swanctl lists are."""
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, str):
            items = [item.strip() for item in value.split(",")]
        elif isinstance(value, list):
            items = list(value)
        else:
            raise self.error(key, f"expected an array of strings, got {describe(value)}")
        for index, item in enumerate(items):
            if not isinstance(item, str) or not item.strip():
                raise self.error(f"{key}[{index}]", f"expected a non-empty string, got {describe(item)}")
        return tuple(item.strip() for item in items)

    def parsed_list(
        self, key: str, parse: Callable[[str], _T], default: tuple[_T, ...] = ()
    ) -> tuple[_T, ...]:
        """Each string of array ``key`` through ``parse``; errors name the element: ``key[2]``."""
        items = self.strings(key, None)
        if items is None:
            return default
        result = []
        for index, item in enumerate(items):
            try:
                result.append(parse(item))
            except ConfigError as exc:
                raise self.error(f"{key}[{index}]", exc.what) from None
        return tuple(result)
