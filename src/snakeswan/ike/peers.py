"""Which configured connection a peer's message belongs to (by addresses, then identities)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from snakeswan.config.identity import ANY_IDENTITY, MATCH_NONE, Identity
from snakeswan.config.model import ChildConfig, ConnectionConfig


def address_matches(patterns: Iterable[str], address: str) -> int:
    """0 = no match, 1 = %any, 2 = subnet or range, 3 = exact."""
    ip = ipaddress.ip_address(address)
    best = 0
    for p in patterns:
        if p in ("%any", "%any4", "%any6", "0.0.0.0/0", "::/0"):
            best = max(best, 1)
        elif "/" in p:
            if ip in ipaddress.ip_network(p, strict=False):
                best = max(best, 2)
        elif "-" in p:
            lo, hi = (ipaddress.ip_address(x.strip()) for x in p.split("-", 1))
            if lo.version == ip.version and lo <= ip <= hi:  # type: ignore[operator]
                best = max(best, 2)
        else:
            try:
                if ipaddress.ip_address(p) == ip:
                    best = 3
            except ValueError:
                continue  # a DNS name: not resolved by the engine
    return best


def candidates(
    conns: Iterable[ConnectionConfig], local: str, remote: str, *, aggressive: bool | None = None
) -> list[ConnectionConfig]:
    """Connections whose addresses admit the pair, best address match first."""
    scored: list[tuple[int, int, ConnectionConfig]] = []
    for i, c in enumerate(conns):
        if aggressive is not None and c.aggressive != aggressive:
            continue
        lm = address_matches(c.local_addrs, local)
        rm = address_matches(c.remote_addrs, remote)
        if lm and rm:
            scored.append((-(lm + rm), i, c))
    return [c for _, _, c in sorted(scored, key=lambda t: (t[0], t[1]))]


def local_identity(conn: ConnectionConfig, local_addr: str) -> Identity:
    if conn.local.id is not None and not conn.local.id.is_any:
        return conn.local.id
    return Identity.from_address(ipaddress.ip_address(local_addr))


def remote_identity(conn: ConnectionConfig, remote_addr: str) -> Identity:
    """The identity we expect of the peer. Without ``remote.id``, as strongSwan: the configured
    remote address when it is a single address, else ``%any`` (a peer behind a NAT or a road warrior
    identifies itself with an address we do not see)."""
    if conn.remote.id is not None:
        return conn.remote.id
    if len(conn.remote_addrs) == 1:
        try:
            return Identity.from_address(ipaddress.ip_address(conn.remote_addrs[0]))
        except ValueError:
            pass
    return ANY_IDENTITY


def id_acceptable(conn: ConnectionConfig, remote_addr: str, received: Identity) -> bool:
    expected = remote_identity(conn, remote_addr)
    return expected.matches(received) != MATCH_NONE


def sharing(
    own: ConnectionConfig,
    conns: Iterable[ConnectionConfig],
    local: str,
    remote: str,
    local_id: Identity | None,
    remote_id: Identity | None,
) -> list[ConnectionConfig]:
    """The connections whose Quick Modes an ISAKMP SA made for ``own`` may carry: ``own`` first,
    then (in configuration order) those whose addresses admit the pair, whose local identity is
    the SA's, which accept the peer's identity and authenticate alike (as strongSwan, a peer may
    negotiate the children of several connections over one ISAKMP SA)."""
    out = [own]
    for c in conns:
        if c.name == own.name or not (
            address_matches(c.local_addrs, local) and address_matches(c.remote_addrs, remote)
        ):
            continue
        if (c.local.method, c.remote.method) != (own.local.method, own.remote.method):
            continue
        if local_id is None or remote_id is None or local_identity(c, local) != local_id:
            continue
        if remote_identity(c, remote).matches(remote_id) == MATCH_NONE:
            continue
        out.append(c)
    return out


def child_config(
    conns: Iterable[ConnectionConfig], own: ConnectionConfig | None, conn: str, child: str
) -> ChildConfig | None:
    """The configuration of child ``child`` of connection ``conn`` (an IPsec SA's names): from
    ``own`` (the ISAKMP SA's connection, as it was when the SA was made) when it is that
    connection, else from ``conns`` (a connection sharing the SA); None if it is gone."""
    if own is not None and own.name == conn:
        return next((ch for ch in own.children if ch.name == child), None)
    for c in conns:
        if c.name == conn:
            return next((ch for ch in c.children if ch.name == child), None)
    return None


def owner_of(
    conns: Iterable[ConnectionConfig], own: ConnectionConfig, child: ChildConfig
) -> ConnectionConfig:
    """The connection ``child`` (a configuration object) belongs to: ``own`` unless another holds it."""
    if any(ch is child for ch in own.children):
        return own
    return next((c for c in conns if any(ch is child for ch in c.children)), own)
