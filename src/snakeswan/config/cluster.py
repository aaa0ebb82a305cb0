"""``[cluster]``: gateways that share their SAs through etcd (an active/standby pair, or N active
nodes each owning a share of the peers). The model and its loader; what it does is in
``daemon/cluster.py`` and docs/scaling.md.

```toml
[cluster]
endpoints = ["http://10.0.9.1:2379", "http://10.0.9.2:2379", "http://10.0.9.3:2379"]
node = "gw1"                  # this gateway's name, unique in the cluster
name = "lab"                  # the cluster's keys live under /snakeswan/<name>/
lease_ttl = 2                 # seconds; the node's lease (etcd's minimum: 1.5 election timeouts)
timeout = "1s"                # one request to one member; then the next member is tried
prefer = ["a"]                # shares this node campaigns for at start without waiting
key_file = "/etc/snakeswan/cluster.key"  # 32 random bytes, 0600, the same file on every node

[cluster.shares.a]            # one virtual address and the peers that use it
address = "10.0.5.10/24"
interface = "eth0"
```
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass

from snakeswan.config._fields import Table
from snakeswan.errors import ConfigError

__all__ = ["CLUSTER_KEYS", "SHARE_KEYS", "ClusterConfig", "ShareConfig", "parse_cluster"]

CLUSTER_KEYS = ("endpoints", "node", "name", "lease_ttl", "timeout", "prefer", "key_file", "shares")
SHARE_KEYS = ("address", "interface")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")


@dataclass(frozen=True, slots=True)
class ShareConfig:
    """One share: the virtual address (with its prefix length) and the interface it goes on."""

    name: str
    address: ipaddress.IPv4Interface | ipaddress.IPv6Interface
    interface: str


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    endpoints: tuple[str, ...]
    node: str
    key_file: str
    name: str = "snakeswan"
    lease_ttl: int = 3
    timeout: float = 1.0
    prefer: tuple[str, ...] = ()
    shares: tuple[ShareConfig, ...] = ()

    def share_of(self, address: str) -> ShareConfig | None:
        """The share whose virtual address is ``address`` (an SA's local address), if any."""
        for share in self.shares:
            if str(share.address.ip) == address:
                return share
        return None


def _endpoint(text: str) -> str:
    url = urllib.parse.urlsplit(text)
    if url.scheme != "http" or not url.hostname or url.path not in ("", "/") or url.query:
        raise ConfigError(f"expected an etcd client URL http://HOST:PORT, got {text!r}")
    try:
        _ = url.port
    except ValueError:
        raise ConfigError(f"bad port in {text!r}") from None
    return text.rstrip("/")


def _name(table: Table, key: str, default: str | None) -> str:
    value = table.string(key, default)
    if value is None:
        raise table.error(key, "required: a name of letters, digits, '_', '.' or '-'")
    if not _NAME.match(value):
        raise table.error(key, f"expected 1..63 letters, digits, '_', '.' or '-', got {value!r}")
    return value


def _share(name: str, table: Table) -> ShareConfig:
    table.check_keys(SHARE_KEYS)
    if not _NAME.match(name):
        raise table.here(f"a share name is 1..63 letters, digits, '_', '.' or '-', got {name!r}")
    text = table.string("address")
    if not text or "/" not in text:
        raise table.error("address", "required: the virtual address with its prefix, 10.0.5.10/24")
    try:
        address = ipaddress.ip_interface(text)
    except ValueError:
        raise table.error(
            "address", f"expected an address with its prefix, 10.0.5.10/24, got {text!r}"
        ) from None
    interface = table.string("interface")
    if not interface or len(interface) > 15 or "/" in interface or " " in interface:
        raise table.error("interface", f"required: the interface the address goes on, got {interface!r}")
    return ShareConfig(name, address, interface)


def _key_file(table: Table) -> str:
    text = table.string("key_file")
    if not text or not text.startswith("/"):
        raise table.error(
            "key_file", f"required: an absolute path to the sealing key all nodes share, got {text!r}"
        )
    return text


def parse_cluster(table: Table | None) -> ClusterConfig | None:
    """``[cluster]`` -> :class:`ClusterConfig` (None when the section is absent)."""
    if table is None:
        return None
    table.check_keys(CLUSTER_KEYS)
    endpoints = table.parsed_list("endpoints", _endpoint)
    if not endpoints:
        raise table.error("endpoints", "required: the client URLs of the etcd members")
    shares = tuple(_share(name, sub) for name, sub in table.subtables("shares"))
    if not shares:
        raise table.error("shares", "required: at least one [cluster.shares.<name>] with its address")
    addresses = [s.address.ip for s in shares]
    if len(set(addresses)) != len(addresses):
        raise table.error("shares", "two shares have the same address")
    prefer = table.strings("prefer") or ()
    for index, share in enumerate(prefer):
        if share not in {s.name for s in shares}:
            raise table.error(f"prefer[{index}]", f"no share {share!r} in [cluster.shares]")
    timeout = table.duration("timeout")
    if timeout is not None and not 0.05 <= timeout <= 30:
        raise table.error("timeout", f"expected 50ms..30s, got {timeout}s")
    return ClusterConfig(
        endpoints=endpoints,
        node=_name(table, "node", None),
        key_file=_key_file(table),
        name=_name(table, "name", "snakeswan"),
        lease_ttl=table.integer("lease_ttl", 3, 1, 3600),
        timeout=1.0 if timeout is None else timeout,
        prefer=prefer,
        shares=shares,
    )
