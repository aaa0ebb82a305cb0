"""``connections.<conn>`` and ``connections.<conn>.children.<child>`` tables -> model objects."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Iterable
from dataclasses import replace
from typing import TypedDict, TypeVar
from urllib.parse import urlsplit

from snakeswan.config import _pke
from snakeswan.config._fields import Table, describe
from snakeswan.config._routebased import ROUTE_BASED_KEYS, route_based
from snakeswan.config.identity import Identity
from snakeswan.config.model import (
    CHILD_MODES,
    DEFAULT_ESP_PROPOSALS,
    DEFAULT_IKE_PROPOSALS,
    SHUNT_MODES,
    AuthConfig,
    ChildConfig,
    ChildProposal,
    ConnectionConfig,
    DaemonConfig,
)
from snakeswan.config.proposals import parse_ah_proposal, parse_esp_proposal, parse_ike_proposal
from snakeswan.config.traffic import IPAddress, TrafficSelector
from snakeswan.errors import ConfigError

_T = TypeVar("_T")

CONNECTION_KEYS = (
    "version",
    "local_addrs",
    "remote_addrs",
    "local_port",
    "remote_port",
    "proposals",
    "vips",
    "aggressive",
    "pull",
    "encap",
    "mobike",
    "dpd_delay",
    "dpd_timeout",
    "fragmentation",
    "send_certreq",
    "send_cert",
    "keyingtries",
    "unique",
    "reauth_time",
    "rekey_time",
    "over_time",
    "rand_time",
    "ike_life_bytes",
    "ike_lifetime_check",
    "commit_bit",
    "pools",
    "children",
    "local",
    "remote",
)
AUTH_KEYS = (
    "auth",
    "id",
    "certs",
    "cacerts",
    "pubkeys",
    "xauth_id",
    "round",
    "crls",
    "ocsp_uris",
    "ocsp_aia",
    "revocation",
)
REVOCATION = ("relaxed", "ifuri", "strict")
CHILD_KEYS = (
    "local_ts",
    "remote_ts",
    "esp_proposals",
    "ah_proposals",
    "mode",
    "rekey_time",
    "life_time",
    "rand_time",
    "rekey_bytes",
    "life_bytes",
    "rand_bytes",
    "rekey_packets",
    "life_packets",
    "rand_packets",
    "start_action",
    "close_action",
    "dpd_action",
    "replay_window",
    "inactivity",
    "reqid",
    "ipcomp",
    "updown",
    "hostaccess",
    "policies",
    *ROUTE_BASED_KEYS,
)


class _IkeTimers(TypedDict):
    reauth_time: float
    rekey_time: float
    over_time: float
    rand_time: float
    dpd_delay: float
    dpd_timeout: float
    ike_life_bytes: int | None


class _ConnectionOptions(TypedDict):
    local_port: int
    remote_port: int
    aggressive: bool
    encap: bool
    pull: bool
    fragmentation: str
    send_certreq: bool
    send_cert: str
    keyingtries: int
    unique: str
    ike_lifetime_check: str
    commit_bit: bool
    vips: tuple[IPAddress, ...]
    pools: tuple[str, ...]


class _ChildLifetimes(TypedDict):
    rekey_time: float
    life_time: float
    rand_time: float
    rekey_bytes: int | None
    life_bytes: int | None
    rand_bytes: int
    rekey_packets: int | None
    life_packets: int | None
    rand_packets: int


# XAUTH backends the gateway can verify with: "xauth"/"xauth-generic" check [secrets.xauth-*],
# "xauth-radius" asks the [radius] server
XAUTH_BACKENDS = ("xauth", "xauth-generic", "xauth-radius")
_ROUND_RE = re.compile(r"^(local|remote)[-_]?[A-Za-z0-9_-]+$")
_AUTH_RE = re.compile(r"^(psk|pubkey(-enc(-revised)?)?|rsa|ecdsa|xauth(-[A-Za-z0-9_]+)?)$")
_HOSTNAME_RE = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(\.(?!-)[A-Za-z0-9_-]{1,63})*\.?$")
_ANY_ADDRS = ("%any", "%any4", "%any6")


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _check_address(text: str) -> str:
    """An IKE address entry: an address, DNS name, CIDR subnet, range or ``%any``."""
    if text in _ANY_ADDRS or _ip(text) is not None:
        return text
    first, dash, last = text.partition("-")
    start, end = _ip(first), _ip(last)
    if dash and start is not None:
        if end is None or start.version != end.version or int(start) > int(end):
            raise ConfigError(f'expected an address range like 10.0.0.1-10.0.0.9, got "{text}"')
        return text
    if "/" in text:
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ConfigError(f'expected a subnet like 10.0.0.0/24, got "{text}"') from None
        return text
    if _HOSTNAME_RE.match(text) and not text.replace(".", "").isdigit():
        return text
    raise ConfigError(f'expected an IP address, DNS name, subnet, range or "%any", got "{text}"')


def is_specific(address: str) -> bool:
    """True for an address or DNS name one can send to (not ``%any``, a subnet or a range)."""
    return address not in _ANY_ADDRS and "/" not in address and not _is_range(address)


def _is_range(address: str) -> bool:
    return "-" in address and _ip(address.partition("-")[0]) is not None


def _auth(table: Table) -> AuthConfig:
    table.check_keys(AUTH_KEYS)
    auth = table.string("auth", "pubkey")
    assert auth is not None
    if auth.startswith("eap"):
        raise table.error("auth", f'"{auth}" is IKEv2 only; IKEv1 uses "xauth" in a second round')
    if not _AUTH_RE.match(auth):
        raise table.error(
            "auth",
            f'expected "psk", "pubkey", "pubkey-enc", "pubkey-enc-revised", "xauth" or "xauth-<backend>", '
            f'got "{auth}"',
        )
    if auth.startswith("xauth-") and auth not in XAUTH_BACKENDS:
        raise table.error(
            "auth",
            f'XAUTH backend "{auth[6:]}" is not available; expected one of: {", ".join(XAUTH_BACKENDS)}',
        )
    id_text = table.string("id")
    identity = None if id_text is None else table.convert("id", Identity.parse, id_text)
    assert identity is None or isinstance(identity, Identity)
    return AuthConfig(
        auth=auth,
        id=identity,
        certs=table.strings("certs") or (),
        cacerts=table.strings("cacerts") or (),
        pubkeys=table.strings("pubkeys") or (),
        crls=table.strings("crls") or (),
        ocsp_uris=ocsp_uris(table),
        ocsp_aia=table.boolean("ocsp_aia", False),
        revocation=table.choice("revocation", REVOCATION, "relaxed"),
        xauth_id=table.string("xauth_id"),
        round=table.integer("round", 0),
    )


def ocsp_uris(table: Table) -> tuple[str, ...]:
    """OCSP responder URLs: plain http (RFC 6960 appendix A; the answers are signed)."""
    uris = table.strings("ocsp_uris") or ()
    for index, uri in enumerate(uris):
        parts = urlsplit(uri)
        try:
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            port_ok = False
        if parts.scheme != "http" or not parts.hostname or not port_ok:
            raise table.error(
                f"ocsp_uris[{index}]", f'expected an http://host[:port][/path] URL, got "{uri}"'
            )
    return uris


def _is_round(conn: Table, key: str) -> bool:
    """``local-xauth``, ``remote2``...: a table named like an authentication round."""
    return key not in CONNECTION_KEYS and bool(_ROUND_RE.match(key)) and isinstance(conn.data[key], dict)


def _auth_rounds(conn: Table, side: str) -> tuple[AuthConfig, AuthConfig | None]:
    """``local`` plus ``local<suffix>`` tables -> (first round, optional XAUTH second round)."""
    rounds: list[tuple[int, int, str, AuthConfig]] = []
    for order, key in enumerate(conn.data):
        if key == side or (key.startswith(side) and _is_round(conn, key)):
            sub = conn.sub(key)
            assert sub is not None
            auth = _auth(sub)
            rounds.append((auth.round, order, key, auth))
    rounds.sort(key=lambda item: item[:2])
    if not rounds:
        default = AuthConfig()
        return default, None
    if len(rounds) > 2:
        raise conn.error(rounds[2][2], "IKEv1 has at most two authentication rounds (the second is XAUTH)")
    if len(rounds) == 2 and rounds[1][3].method != "xauth":
        raise conn.error(
            f"{rounds[1][2]}.auth",
            f'a second authentication round must be "xauth", got "{rounds[1][3].auth}"',
        )
    if rounds[0][3].method == "xauth":  # hybrid authentication: XAUTH is this side's only proof
        if len(rounds) == 2:
            raise conn.error(f"{rounds[1][2]}.auth", "XAUTH in round 1 (hybrid) takes no second round")
        return rounds[0][3], rounds[0][3]
    return rounds[0][3], rounds[1][3] if len(rounds) == 2 else None


def _ike_timers(conn: Table) -> _IkeTimers:
    reauth = conn.duration("reauth_time") or 0.0
    rekey = conn.duration("rekey_time")
    if rekey is None:
        rekey = 0.0 if reauth else 14400.0  # swanctl: rekey_time defaults to 0 once reauth_time is set
    over = conn.duration("over_time")
    if over is None:
        over = 0.1 * max(rekey, reauth)
    rand = conn.duration("rand_time")
    return _IkeTimers(
        reauth_time=reauth,
        rekey_time=rekey,
        over_time=over,
        rand_time=over if rand is None else rand,
        dpd_delay=conn.duration("dpd_delay") or 0.0,
        dpd_timeout=conn.duration("dpd_timeout") or 0.0,
        ike_life_bytes=conn.volume("ike_life_bytes") or None,
    )


def _unique(items: Iterable[_T]) -> tuple[_T, ...]:
    """``items`` without repeats, first occurrence kept."""
    return tuple(dict.fromkeys(items))


def _vip(text: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ConfigError(f"expected an IP address (0.0.0.0 or :: for any), got {text!r}") from None


def _connection_options(conn: Table, daemon: DaemonConfig, pool_names: Collection[str]) -> _ConnectionOptions:
    if conn.integer("version", 1, 0, 2) != 1:
        raise conn.error(
            "version", f"snakeswan speaks IKEv1 only: expected 1, got {describe(conn.data['version'])}"
        )
    conn.only("mobike", conn.boolean("mobike", False), False, "MOBIKE is IKEv2 only")
    pools = conn.strings("pools") or ()
    for index, pool in enumerate(pools):
        if pool not in pool_names:
            raise conn.error(f"pools[{index}]", f'no pool named "{pool}" in [pools]')
    frag = conn.data.get("fragmentation", "yes")
    if isinstance(frag, bool):
        frag = "yes" if frag else "no"
    if frag not in ("yes", "no", "force", "accept"):
        raise conn.error("fragmentation", f'expected "yes", "no", "accept" or "force", got {describe(frag)}')
    keyingtries = conn.integer("keyingtries", 1)
    conn.only("keyingtries", keyingtries, 1, "one keying try per initiation: retries are not implemented yet")
    unique = conn.choice("unique", ("never", "no", "keep", "replace"), "no")
    return _ConnectionOptions(
        local_port=conn.integer("local_port", daemon.port, 1, 65535),
        remote_port=conn.integer("remote_port", 500, 1, 65535),
        aggressive=conn.boolean("aggressive", False),
        encap=conn.boolean("encap", False),
        pull=conn.boolean("pull", True),
        fragmentation=frag,
        send_certreq=conn.boolean("send_certreq", True),
        send_cert=conn.choice("send_cert", ("always", "never", "ifasked"), "ifasked"),
        keyingtries=keyingtries,
        unique=unique,
        ike_lifetime_check=conn.choice("ike_lifetime_check", ("lenient", "strict"), "lenient"),
        commit_bit=conn.boolean("commit_bit", False),
        vips=conn.parsed_list("vips", _vip),
        pools=pools,
    )


def parse_connection(
    name: str, conn: Table, daemon: DaemonConfig, pool_names: Collection[str]
) -> ConnectionConfig:
    conn.check_keys(CONNECTION_KEYS, extra=lambda key: _is_round(conn, key))
    if "remote_addrs" not in conn.data:
        raise conn.error("remote_addrs", 'required; use ["%any"] for a connection that only responds')
    remote_addrs = conn.parsed_list("remote_addrs", _check_address)
    local_addrs = conn.parsed_list("local_addrs", _check_address, ("%any",))
    if not remote_addrs:
        raise conn.error("remote_addrs", 'expected at least one address (or "%any")')
    lists = conn.parsed_list("proposals", parse_ike_proposal, (DEFAULT_IKE_PROPOSALS,))
    local, local_xauth = _auth_rounds(conn, "local")
    remote, remote_xauth = _auth_rounds(conn, "remote")
    _pke.check_rounds(conn, local, remote, local_xauth, remote_xauth)
    for side, ours, theirs in (("local", local, remote), ("remote", remote, local)):
        if ours.method == "xauth" and theirs.method not in ("pubkey", "rsa"):
            raise conn.error(
                f"{side}.auth",
                "XAUTH as the only round (hybrid authentication) needs the other side to sign "
                f'(auth = "pubkey" with an RSA certificate), got "{theirs.auth}"',
            )
    parsed = [(parse_child(child_name, table), table) for child_name, table in conn.subtables("children")]
    children = tuple(child for child, _ in parsed if not child.shunt)
    shunts = tuple(child for child, _ in parsed if child.shunt)
    if not any(is_specific(address) for address in remote_addrs):
        for child, table in parsed:
            if child.interface is not None:
                raise table.error(
                    "if_id_in", "a route-based child needs a specific remote address (one peer)"
                )
            if child.start_action != "none" and not child.shunt:
                raise table.error(
                    "start_action",
                    f"needs a specific remote address to initiate to; remote_addrs is {list(remote_addrs)}",
                )
    if conn.data.get("encap") is True:
        for child, table in parsed:
            if child.esp_proposals and child.ah_proposals:
                raise table.error("ah_proposals", "an AH+ESP bundle cannot be UDP-encapsulated (encap)")
    config = ConnectionConfig(
        name=name,
        local=local,
        remote=remote,
        local_xauth=local_xauth,
        remote_xauth=remote_xauth,
        local_addrs=local_addrs,
        remote_addrs=remote_addrs,
        proposals=_unique(proposal for proposals in lists for proposal in proposals),
        children=children,
        shunts=shunts,
    )
    return replace(config, **_ike_timers(conn), **_connection_options(conn, daemon, pool_names))


def _selectors(child: Table, key: str, *, shunt: bool = False) -> tuple[TrafficSelector, ...]:
    """A child's ``local_ts``/``remote_ts``: selectors with one port or all for IKEv1 (several make
    one Quick Mode per local x remote pair of one family); a shunt (never negotiated) may have
    port ranges."""
    selectors = child.parsed_list(key, TrafficSelector.from_text, (TrafficSelector.make_dynamic(),))
    if not selectors:
        raise child.error(key, 'expected at least one traffic selector (or "dynamic")')
    if shunt:
        return selectors
    for i, ts in enumerate(selectors):  # several: one Quick Mode per local x remote pair
        if not (ts.all_ports or ts.port_start == ts.port_end):
            raise child.error(
                f"{key}[{i}]",
                f"IKEv1 IDs carry a single port or all ports, got {ts.port_start}-{ts.port_end}",
            )
    return selectors


def _volumes(child: Table, unit: str) -> tuple[int | None, int | None, int]:
    """(rekey, life, rand) for ``bytes`` or ``packets``: life = rekey + 10%, rand = life - rekey."""
    soft = child.volume(f"rekey_{unit}") or 0
    hard = child.volume(f"life_{unit}")
    hard = soft * 11 // 10 if hard is None else hard
    if hard and hard < soft:
        raise child.error(f"life_{unit}", f"must be at least rekey_{unit} ({soft}), got {hard}")
    spread = child.volume(f"rand_{unit}")
    return soft or None, hard or None, hard - soft if spread is None else spread


def _child_lifetimes(child: Table) -> _ChildLifetimes:
    rekey = child.duration("rekey_time")
    life = child.duration("life_time")
    if rekey is None:  # swanctl: 1h; with only life_time set, keep swanctl's life = rekey + 10%
        rekey = 3600.0 if life is None else life / 1.1
    if life is None:
        life = rekey * 1.1
    if life and life < rekey:
        raise child.error("life_time", f"must be at least rekey_time ({rekey:g}s), got {life:g}s")
    rand = child.duration("rand_time")
    rekey_bytes, life_bytes, rand_bytes = _volumes(child, "bytes")
    rekey_packets, life_packets, rand_packets = _volumes(child, "packets")
    return _ChildLifetimes(
        rekey_time=rekey,
        life_time=life,
        rand_time=life - rekey if rand is None else rand,
        rekey_bytes=rekey_bytes,
        life_bytes=life_bytes,
        rand_bytes=rand_bytes,
        rekey_packets=rekey_packets,
        life_packets=life_packets,
        rand_packets=rand_packets,
    )


def _child_proposals(child: Table) -> tuple[tuple[ChildProposal, ...], tuple[ChildProposal, ...]]:
    default_esp = () if "ah_proposals" in child.data else (DEFAULT_ESP_PROPOSALS,)
    esp_lists = child.parsed_list("esp_proposals", parse_esp_proposal, default_esp)
    ah_lists = child.parsed_list("ah_proposals", parse_ah_proposal)
    esp = _unique(proposal for proposals in esp_lists for proposal in proposals)
    ah = _unique(proposal for proposals in ah_lists for proposal in proposals)
    if not esp and not ah:
        raise child.error("esp_proposals", "expected at least one proposal")
    if esp and ah and {p.pfs_group for p in esp} != {p.pfs_group for p in ah}:
        # an AH+ESP bundle: one Quick Mode, one KE, so both halves offer the same PFS groups
        raise child.error("ah_proposals", "an AH+ESP bundle needs the same PFS groups in both lists")
    return esp, ah


def _check_shunt_families(
    child: Table, local_ts: tuple[TrafficSelector, ...], remote_ts: tuple[TrafficSelector, ...]
) -> None:
    """A shunt's policies pair each local with each remote selector of its family; a selector
    without any partner of its family would be silently ignored, so it is an error."""
    for key, ours, theirs in (("local_ts", local_ts, remote_ts), ("remote_ts", remote_ts, local_ts)):
        for index, ts in enumerate(ours):
            if not ts.dynamic and not any(o.dynamic or o.version == ts.version for o in theirs):
                raise child.error(f"{key}[{index}]", f"{ts} has no selector of its address family opposite")


def parse_child(name: str, child: Table) -> ChildConfig:
    child.check_keys(CHILD_KEYS)
    if child.boolean("ipcomp", False):
        raise child.error("ipcomp", "IPComp is not supported; expected false")
    mode = child.choice("mode", CHILD_MODES, "tunnel")
    shunt = mode in SHUNT_MODES
    local_ts = _selectors(child, "local_ts", shunt=shunt)
    remote_ts = _selectors(child, "remote_ts", shunt=shunt)
    if shunt or len(local_ts) > 1 or len(remote_ts) > 1:  # no selector may be left without a pair
        _check_shunt_families(child, local_ts, remote_ts)
    elif not (local_ts[0].dynamic or remote_ts[0].dynamic) and local_ts[0].version != remote_ts[0].version:
        raise child.error("remote_ts", "local_ts and remote_ts must be of the same address family")
    esp, ah = _child_proposals(child)
    actions = ("none", "trap", "start")
    start_action = child.choice("start_action", actions, "none")
    if shunt and start_action == "start":
        raise child.error(
            "start_action",
            f'a "{mode}" policy is installed at start and never negotiated; expected "trap" or "none"',
        )
    _refuse_unsupported_child_keys(child)
    if_id, interface = route_based(child, mode)
    config = ChildConfig(
        name=name,
        local_ts=local_ts,
        remote_ts=remote_ts,
        esp_proposals=esp,
        ah_proposals=ah,
        mode=mode,
        start_action=start_action,
        close_action=child.choice("close_action", actions, "none"),
        dpd_action=child.choice("dpd_action", ("clear", "trap", "restart"), "clear"),
        replay_window=child.integer("replay_window", 32, 0, 65535),
        inactivity=child.duration("inactivity") or 0.0,
        reqid=child.integer("reqid", 0),
        updown=child.string("updown"),
        hostaccess=child.boolean("hostaccess", False),
        policies=child.boolean("policies", True),
        if_id=if_id,
        interface=interface,
    )
    return replace(config, **_child_lifetimes(child))


def _refuse_unsupported_child_keys(child: Table) -> None:
    """swanctl child keys whose only value we act on is the default (fail closed)."""
    child.only(
        "inactivity", child.duration("inactivity") or 0.0, 0.0, "inactivity timeouts are not implemented"
    )
    child.only(
        "reqid", child.integer("reqid", 0), 0, "reqids are a kernel notion this data plane has none of"
    )
    child.only("updown", child.string("updown"), None, "updown scripts are not implemented")
    child.only("hostaccess", child.boolean("hostaccess", False), False, "hostaccess is not implemented")
    child.only(
        "policies", child.boolean("policies", True), True, "children without policies are not implemented"
    )
    for key in ("rekey_packets", "life_packets", "rand_packets", "rand_bytes"):
        if key in child.data:
            raise child.error(
                key, "packet-count limits and a byte jitter are not implemented (leave the key out)"
            )
