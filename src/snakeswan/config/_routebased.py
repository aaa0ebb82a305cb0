"""Route-based children (the loader's part): ``if_id_in``/``if_id_out`` as in swanctl.conf, and
``interface``, the TUN device snakeswan creates for the child (strongSwan's XFRM interface, which
the administrator creates with that interface ID, has no userspace equivalent to name).

Such a child's traffic is what routing sends into its interface, whatever the selectors: no
policy enters the shared SPD and no route is installed; its selectors are usually wildcards
(``0.0.0.0/0``), and what is negotiated still bounds what may cross (checked both ways)."""

from __future__ import annotations

from collections.abc import Iterable

from snakeswan.config._fields import Table
from snakeswan.errors import ConfigError

ROUTE_BASED_KEYS = ("if_id_in", "if_id_out", "interface")
_BAD_NAME_CHARS = "/ \t\n:"


def route_based(child: Table, mode: str) -> tuple[int, str | None]:
    """(interface ID, interface name) of a child; (0, None) for a policy-based one."""
    if_in = child.integer("if_id_in", 0, 0, 0xFFFFFFFF)
    if_out = child.integer("if_id_out", 0, 0, 0xFFFFFFFF)
    name = child.string("interface")
    if if_in != if_out:
        raise child.error("if_id_out", "one interface carries both directions: expected if_id_in's value")
    if not if_in:
        if name is not None:
            raise child.error("interface", "names a route-based child's device: set if_id_in/if_id_out too")
        return 0, None
    if mode != "tunnel":
        raise child.error("if_id_in", f'a route-based child is a tunnel, not "{mode}"')
    name = name if name is not None else f"vti{if_in}"
    if not 1 <= len(name) <= 15 or any(c in name for c in _BAD_NAME_CHARS):
        raise child.error("interface", f"expected an interface name of 1..15 characters, got {name!r}")
    return if_in, name


def check_unique_interfaces(children: Iterable[tuple[str, str | None]], tun: str, source: str) -> None:
    """One child per interface, and none on the data plane's own TUN device."""
    seen: dict[str, str] = {}
    for where, name in children:
        if name is None:
            continue
        if name == tun:
            raise ConfigError(
                f"{name} is the data plane's own TUN device ([daemon] tun)", f"{source}: {where}"
            )
        if name in seen:
            raise ConfigError(f"interface {name} is already {seen[name]}'s", f"{source}: {where}")
        seen[name] = where
