"""TOML configuration file -> :class:`~snakeswan.config.model.Config`, validated.

The file follows swanctl.conf(5) (see DESIGN.md "Config" and ``docs``): ``[daemon]``,
``[connections.<conn>]`` with ``local``/``remote`` auth tables and ``[connections.<conn>.children.<child>]``,
``[secrets.<name>]`` and ``[pools.<name>]``. Any problem raises one :class:`ConfigError` whose text
is ``<file>: <dotted.key[index]>: <what was expected>, got <what was found>``.

Secrets sections are typed by their name's prefix as in swanctl: ``ike``/``psk`` (an IKE
pre-shared key) and ``xauth``/``eap`` (an XAUTH password). Each holds ``secret`` (text, ``0x`` hex
or ``0s`` base64) and ``id`` (a string or an array) and/or swanctl's ``id<suffix>`` keys.
``private``/``rsa``/``ecdsa``/``pkcs8`` sections name a private key ``file`` (and its passphrase
``secret``); certificate and key files are loaded by ``config._credentials`` into
``Config.credentials``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import tomllib

from snakeswan.config._connections import is_specific, parse_connection
from snakeswan.config._credentials import is_key_section, load_credentials
from snakeswan.config._fields import Table, describe
from snakeswan.config._routebased import check_unique_interfaces
from snakeswan.config._shedding import SHEDDING_KEYS, shedding
from snakeswan.config.cluster import ClusterConfig, parse_cluster
from snakeswan.config.identity import Identity
from snakeswan.config.model import (
    Config,
    ConnectionConfig,
    DaemonConfig,
    Pool,
    PskSecret,
    RadiusConfig,
    Secrets,
    XauthSecret,
)
from snakeswan.config.traffic import IPAddress, IPNetwork
from snakeswan.errors import ConfigError

TOP_KEYS = ("daemon", "connections", "secrets", "pools", "radius", "authorities", "cluster")
RADIUS_KEYS = ("address", "port", "secret", "timeout", "retries", "nas_identifier")
DAEMON_KEYS = (
    "port",
    "nat_port",
    "retransmit_timeout",
    "retransmit_base",
    "retransmit_tries",
    "keep_alive",
    "tun",
    "tun_mtu",
    "tun_offload",
    "dataplane",
    "route_table",
    "route_priority",
    "fwmark",
    "half_open_timeout",
    "half_open_limit",
    "half_open_per_source",
    *SHEDDING_KEYS,
    "fragment_size",
    "metrics",
    "state",
    "state_file",
    "dh_precompute",
    "workers",
)
POOL_KEYS = ("addrs", "dns", "nbns", "split_include", "subnet", "split_exclude", "banner", "default_domain")
_PSK_PREFIXES = ("ike", "psk")
_XAUTH_PREFIXES = ("xauth", "eap")


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the configuration file at ``path``."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as stream:
            data = stream.read()
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror}", source) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"expected UTF-8 text: {exc}", source) from None
    return parse_config(text, source)


def parse_config(text: str, source: str = "<string>") -> Config:
    """Validate TOML ``text``; ``source`` names it in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"invalid TOML ({exc}); note that a key or table may appear only once", source
        ) from None
    top = Table(data, "", source)
    top.check_keys(TOP_KEYS)
    daemon = _daemon(top.sub("daemon"))
    pools = tuple(_pool(name, table) for name, table in top.subtables("pools"))
    secrets = _secrets(top)
    pool_names = {pool.name for pool in pools}
    connections = []
    for name, table in top.subtables("connections"):
        conn = parse_connection(name, table, daemon, pool_names)
        _check_secrets(conn, secrets, table)
        connections.append(conn)
    check_unique_interfaces(
        (
            (f"connections.{c.name}.children.{ch.name}.interface", ch.interface)
            for c in connections
            for ch in c.children
        ),
        daemon.tun,
        source,
    )
    credentials, connections = load_credentials(top, connections, source)
    radius = _radius(top.sub("radius"))
    if radius is None:
        _refuse_radius_rounds(top)
    return Config(
        daemon=daemon,
        connections=tuple(connections),
        secrets=secrets,
        pools=pools,
        radius=radius,
        credentials=credentials,
        cluster=_cluster(top, daemon),
    )


def _cluster(top: Table, daemon: DaemonConfig) -> ClusterConfig | None:
    """``[cluster]`` goes with ``[daemon] state = "etcd"`` and nothing else (fail closed both ways)."""
    cluster = parse_cluster(top.sub("cluster"))
    if daemon.state == "etcd" and cluster is None:
        raise ConfigError(
            'state = "etcd" needs a [cluster] section (endpoints, node, shares)',
            f"{top.source}: daemon.state",
        )
    if cluster is not None and daemon.state != "etcd":
        raise ConfigError(
            f'[cluster] is only used with [daemon] state = "etcd", got "{daemon.state}"',
            f"{top.source}: cluster",
        )
    return cluster


def _refuse_radius_rounds(top: Table) -> None:
    """Fail closed: a round that asks RADIUS without a [radius] server to ask."""
    for _, conn in top.subtables("connections"):
        for key, value in conn.data.items():
            if isinstance(value, dict) and value.get("auth") == "xauth-radius":
                raise conn.error(f"{key}.auth", "XAUTH by RADIUS needs a [radius] section (address, secret)")


def _radius(table: Table | None) -> RadiusConfig | None:
    if table is None:
        return None
    table.check_keys(RADIUS_KEYS)
    address = table.string("address")
    if not address:
        raise table.error("address", "required: the RADIUS server's IP address")
    table.convert("address", _address, address)
    secret = table.string("secret")
    if not secret:
        raise table.error("secret", "required: the RADIUS shared secret")
    timeout = table.duration("timeout")
    return RadiusConfig(
        address=address,
        secret=table.convert("secret", decode_secret, secret),  # type: ignore[arg-type]
        port=table.integer("port", 1812, 1, 65535),
        timeout=3.0 if timeout is None else timeout,
        retries=table.integer("retries", 2, 0, 10),
        nas_identifier=table.string("nas_identifier", "snakeswan") or "snakeswan",
    )


def _daemon(table: Table | None) -> DaemonConfig:
    if table is None:
        return DaemonConfig()
    table.check_keys(DAEMON_KEYS)
    port = table.integer("port", 500, 1, 65535)
    nat_port = table.integer("nat_port", 4500, 1, 65535)
    if nat_port == port:
        raise table.error("nat_port", f"must differ from port ({port})")
    timeout = table.duration("retransmit_timeout")
    base = table.data.get("retransmit_base", 1.8)
    if not isinstance(base, int | float) or isinstance(base, bool) or not 1 <= base <= 10:
        raise table.error("retransmit_base", f"expected a number 1..10, got {describe(base)}")
    return DaemonConfig(
        port=port,
        nat_port=nat_port,
        retransmit_timeout=4.0 if timeout is None else timeout,
        retransmit_base=float(base),
        retransmit_tries=table.integer("retransmit_tries", 5, 0, 100),
        keep_alive=_keep_alive(table),
        tun=_tun_name(table),
        tun_mtu=table.integer("tun_mtu", 1400, 576, 9000),
        tun_offload=table.boolean("tun_offload", True),
        dataplane=table.boolean("dataplane", True),
        route_table=_route_table(table),
        route_priority=table.integer("route_priority", 220, 2, 32765),  # pass shunts: one less
        fwmark=table.integer("fwmark", 0x42, 1, 2**32 - 1),
        half_open_timeout=_half_open_timeout(table),
        half_open_limit=table.integer("half_open_limit", 20000, 1, 10_000_000),
        half_open_per_source=table.integer("half_open_per_source", 10, 1, 1_000_000),
        shedding=shedding(table),
        fragment_size=table.integer("fragment_size", 1280, 576, 65535),
        metrics=_metrics(table),
        state=table.choice("state", ("sqlite", "none", "etcd"), "sqlite"),
        state_file=_state_file(table),
        dh_precompute=table.boolean("dh_precompute", True),
        workers=table.integer("workers", 1, 1, 64),
    )


def _state_file(table: Table) -> str | None:
    """An absolute path (the daemon may run from anywhere); absent: beside the control socket."""
    text = table.string("state_file")
    if text is not None and not os.path.isabs(text):
        raise table.error("state_file", f"expected an absolute path, got {text!r}")
    return text


def _half_open_timeout(table: Table) -> float:
    value = table.duration("half_open_timeout")
    if value is not None and not 1 <= value <= 600:
        raise table.error("half_open_timeout", f"expected 1s..10m, got {value:g}s")
    return 30.0 if value is None else value


def _metrics(table: Table) -> tuple[str, int] | None:
    """``metrics = "127.0.0.1:9400"`` (``"[::1]:9400"``): where the Prometheus endpoint listens; an
    address literal, not a name (nothing to resolve at load), and a port. Absent: no endpoint."""
    text = table.string("metrics")
    if text is None:
        return None
    host, sep, port = text.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    host = host[1:-1] if bracketed else host
    if ":" in host and not bracketed:
        host = ""  # an IPv6 address goes in brackets: "::1:9400" would be ambiguous
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if not sep or address is None or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise table.error(
            "metrics", f"expected ADDRESS:PORT such as 127.0.0.1:9400 or [::1]:9400, got {text!r}"
        )
    return str(address), int(port)


def _route_table(table: Table) -> int:
    """The routing table of the TUN routes: 0 (main, no rule) or a table of our own (not 253..255,
    the kernel's default, main and local tables)."""
    value = table.integer("route_table", 220, 0, 2**32 - 1)
    if value in (253, 254, 255):
        raise table.error(
            "route_table", f"{value} is one of the kernel's tables; 0 means main without a rule"
        )
    return value


def _keep_alive(table: Table) -> float:
    value = table.duration("keep_alive")
    if value is not None and value < 1:
        raise table.error("keep_alive", "expected at least 1s")
    return 20.0 if value is None else value


def _tun_name(table: Table) -> str:
    name = table.data.get("tun", "snakeswan0")
    if not isinstance(name, str) or not 1 <= len(name) <= 15 or any(c in name for c in "/ \t\n:"):
        raise table.error("tun", f"expected an interface name of 1..15 characters, got {describe(name)}")
    return name


def _address(text: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ConfigError(f"expected an IP address, got {text!r}") from None


def _network(text: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ConfigError(f"expected a subnet like 10.0.0.0/24, got {text!r}") from None


def _pool(name: str, table: Table) -> Pool:
    table.check_keys(POOL_KEYS)
    addrs = table.string("addrs")
    if addrs is None:
        raise table.error("addrs", "required: a subnet (10.3.0.0/24) or a range (10.3.0.10-10.3.0.99)")
    try:
        if "-" in addrs:
            first, last = (ipaddress.ip_address(part.strip()) for part in addrs.split("-", 1))
        else:
            net = ipaddress.ip_network(addrs, strict=False)
            first, last = net.network_address, net.broadcast_address
            if net.num_addresses > 2:  # as strongSwan: the subnet's own address is never leased
                first = first + 1
                last = last - 1 if net.version == 4 else last  # nor an IPv4 broadcast address
        if first.version != last.version or int(first) > int(last):
            raise ValueError(addrs)
    except ValueError:
        raise table.error("addrs", f"expected a subnet or an address range, got {describe(addrs)}") from None
    return Pool(
        name=name,
        start=first,
        end=last,
        dns=table.parsed_list("dns", _address),
        nbns=table.parsed_list("nbns", _address),
        split_include=table.parsed_list("split_include", _network) + table.parsed_list("subnet", _network),
        split_exclude=_split_exclude(table),
        banner=table.string("banner"),
        default_domain=table.string("default_domain"),
    )


def _split_exclude(table: Table) -> tuple[IPNetwork, ...]:
    excluded = table.parsed_list("split_exclude", _network)
    if excluded:
        raise table.error("split_exclude", "split-exclude (UNITY_LOCAL_LAN) is not implemented yet")
    return excluded


def decode_secret(text: str) -> bytes:
    """swanctl secret syntax: ``0x`` hex, ``0s`` base64, else the UTF-8 text itself."""
    if text.startswith("0x"):
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            raise ConfigError("expected hex digits after 0x") from None
    if text.startswith("0s"):
        try:
            return base64.b64decode(text[2:], validate=True)
        except binascii.Error:
            raise ConfigError("expected base64 after 0s") from None
    return text.encode("utf-8")


def _secret_ids(table: Table) -> tuple[Identity, ...]:
    ids: list[Identity] = []
    for key in table.data:
        if key.startswith("id"):
            ids.extend(table.parsed_list(key, Identity.parse))
    return tuple(ids)


def _secrets(top: Table) -> Secrets:
    psks: list[PskSecret] = []
    xauth: list[XauthSecret] = []
    for name, table in top.subtables("secrets"):
        if is_key_section(name):
            continue  # a private key file: config._credentials
        table.check_keys(("secret",), extra=lambda key: key.startswith("id"))
        value = table.string("secret")
        if not value:
            raise table.error("secret", "required: the secret (text, 0x<hex> or 0s<base64>)")
        secret = table.convert("secret", decode_secret, value)
        assert isinstance(secret, bytes)
        ids = _secret_ids(table)
        if name.startswith(_PSK_PREFIXES):
            psks.append(PskSecret(ids, secret, name))
        elif name.startswith(_XAUTH_PREFIXES):
            xauth.append(XauthSecret(ids, secret, name))
        else:
            raise table.here(
                "expected a section name starting with ike or psk (an IKE pre-shared key), "
                "xauth or eap (an XAUTH password) or private, rsa, ecdsa (a private key file)"
            )
    return Secrets(tuple(psks), tuple(xauth))


def _default_id(addresses: tuple[str, ...]) -> Identity | None:
    """The identity of the first literal address (strongSwan's default ID), None if there is none."""
    for address in addresses:
        if is_specific(address):
            try:
                return Identity.from_address(ipaddress.ip_address(address))
            except ValueError:
                continue  # a DNS name: resolved at run time
    return None


def _check_secrets(conn: ConnectionConfig, secrets: Secrets, table: Table) -> None:
    """A connection using PSK (or XAUTH as a client) needs a secret it can find."""
    if "psk" in (conn.local.method, conn.remote.method):
        local_id = conn.local.id or _default_id(conn.local_addrs)
        remote_id = conn.remote.id if conn.remote.id and not conn.remote.id.is_any else None
        remote_id = remote_id or _default_id(conn.remote_addrs)
        if secrets.psk_for(local_id, remote_id) is None:
            side = "local" if conn.local.method == "psk" else "remote"
            pair = f"{local_id or '%any'} and {remote_id or '%any'}"
            raise table.error(
                f"{side}.auth",
                f"no pre-shared key for {pair}: expected a [secrets.ike-<name>] section with "
                "a matching id (or no id)",
            )
    if conn.local_xauth is not None:
        user = conn.local_xauth.xauth_id or (str(conn.local.id) if conn.local.id else None)
        if user is None or secrets.xauth_for(user) is None:
            key = next(
                k
                for k in table.data
                if k != "local" and k.startswith("local") and isinstance(table.data[k], dict)
            )
            raise table.error(
                f"{key}.xauth_id",
                f"no XAUTH password for {user or 'an unset user'}: expected a [secrets.xauth-<name>] "
                "section with a matching id",
            )
