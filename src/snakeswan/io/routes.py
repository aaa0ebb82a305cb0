"""Routes that steer a child's remote traffic into the TUN device, through iproute2.

For each remote traffic selector of an installed child the daemon asks for
``ip route replace 10.231.2.0/24 dev snakeswan0 src 10.231.1.1``: packets to the remote subnet are
handed to the data plane (``Tun.read``), and packets the gateway itself originates there leave from
an address inside the local selector (``src``), so that they match the child's policy. strongSwan's
kernel-libipsec does the same (it even fails the CHILD_SA when the local selector holds no local
address; we install the route without ``src`` instead).

Routes are owned: several children (or an old SA and its rekeyed successor) may need one prefix;
it is deleted only when its last owner removes it. :meth:`Routes.add` is idempotent (``replace``),
:meth:`Routes.remove` of a route that is gone is not an error, :meth:`Routes.remove_all` is for
shutdown. Errors raise :class:`LocalError` naming the command and iproute2's message.

Nothing here runs per packet.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from snakeswan.config.traffic import IPAddress, IPNetwork, TrafficSelector
from snakeswan.errors import LocalError

IP_TIMEOUT = 5.0

#: runs ``ip`` with these arguments and returns its stdout; raises LocalError
Runner = Callable[[Sequence[str]], str]


def run_ip(args: Sequence[str], *, timeout: float = IP_TIMEOUT) -> str:
    """Run ``ip ARGS...`` and return its stdout; ``LocalError`` naming the command and its stderr."""
    cmd = ["ip", *args]
    text = " ".join(cmd)
    try:
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise LocalError(f"{text}: timed out after {timeout} s") from None
    except OSError as e:
        raise LocalError(f"{text}: cannot run iproute2: {e.strerror or e}") from None
    if cp.returncode != 0:
        detail = cp.stderr.strip() or cp.stdout.strip() or f"exit status {cp.returncode}"
        raise LocalError(f"{text}: {detail}")
    return cp.stdout


# --- selectors, prefixes and local addresses (pure) ---------------------------------------------
def selector_networks(ts: TrafficSelector) -> list[IPNetwork]:
    """The prefixes covering ``ts``'s addresses (a range such as 10.0.0.1..10.0.0.6 takes several).

    Protocol and ports are ignored: a route is per address; the data plane's SPD does the rest.
    """
    if ts.dynamic:
        raise LocalError("a dynamic traffic selector must be resolved to an address first")
    if ts.is_subnet():
        return [ts.as_network()]
    nets: Iterable[IPNetwork] = ipaddress.summarize_address_range(ts.start, ts.end)
    return list(nets)


def _rank(address: IPAddress) -> int:
    """Lower is better as a source: global, then link-local, then loopback."""
    if address.is_loopback:
        return 2
    if address.is_link_local:
        return 1
    return 0


def address_in_selectors(
    selectors: Iterable[TrafficSelector],
    addresses: Iterable[IPAddress],
    *,
    prefer: IPAddress | None = None,
) -> IPAddress | None:
    """The local address to use as the source of packets into ``selectors`` (a child's local_ts).

    ``prefer`` (usually the IKE address) wins when one of the selectors contains it; otherwise the
    first (global before link-local before loopback) of ``addresses`` inside a selector; None if
    there is none.
    """
    ranges = [(int(ts.start), int(ts.end), ts.version) for ts in selectors if not ts.dynamic]

    def inside(a: IPAddress) -> bool:
        return any(lo <= int(a) <= hi and a.version == v for lo, hi, v in ranges)

    if prefer is not None and inside(prefer):
        return prefer
    candidates = sorted((a for a in addresses if inside(a)), key=lambda a: (_rank(a), a.version, int(a)))
    return candidates[0] if candidates else None


# --- the system's addresses ----------------------------------------------------------------------
def parse_addresses(ip_json: str, *, exclude_devices: Iterable[str] = ()) -> list[IPAddress]:
    """Addresses in the output of ``ip -j addr show`` (tentative/dadfailed IPv6 ones left out)."""
    excluded = set(exclude_devices)
    try:
        links: list[dict[str, Any]] = json.loads(ip_json or "[]")
    except ValueError as e:
        raise LocalError(f"ip -j addr show: unreadable output: {e}") from None
    found: list[IPAddress] = []
    for link in links:
        if link.get("ifname") in excluded:
            continue
        for info in link.get("addr_info", []):
            if info.get("tentative") or info.get("dadfailed") or "local" not in info:
                continue
            try:
                found.append(ipaddress.ip_address(str(info["local"]).split("%")[0]))
            except ValueError:
                continue
    return found


def local_addresses(*, exclude_devices: Iterable[str] = (), runner: Runner = run_ip) -> list[IPAddress]:
    """Every address configured on this namespace's interfaces (``ip -j addr show``)."""
    return parse_addresses(runner(["-j", "addr", "show"]), exclude_devices=exclude_devices)


def local_address_in(
    selectors: Iterable[TrafficSelector],
    *,
    prefer: IPAddress | None = None,
    runner: Runner = run_ip,
) -> IPAddress | None:
    """:func:`address_in_selectors` over this namespace's addresses."""
    return address_in_selectors(selectors, local_addresses(runner=runner), prefer=prefer)


def _network(network: IPNetwork | str) -> IPNetwork:
    if not isinstance(network, str):
        return network
    try:
        return ipaddress.ip_network(network, strict=False)
    except ValueError:
        raise LocalError(f"bad route destination {network!r}") from None


# --- routes --------------------------------------------------------------------------------------
class Routes:
    """Routes through one device (``snakeswan0``), each owned by one or more children.

    ``table`` (None = main) and ``metric`` go into every route; ``runner`` runs ``ip`` (tests pass a
    fake one; the default is :func:`run_ip`).
    """

    def __init__(
        self,
        device: str,
        *,
        table: int | None = None,
        metric: int | None = None,
        runner: Runner = run_ip,
    ) -> None:
        self.device = device
        self.table = table
        self.metric = metric
        self._run = runner
        self._owners: dict[IPNetwork, set[str]] = {}
        self._src: dict[IPNetwork, IPAddress | None] = {}

    def installed(self) -> dict[IPNetwork, IPAddress | None]:
        """The prefixes we have routed, each with its source address."""
        return dict(self._src)

    def _args(self, verb: str, network: IPNetwork) -> list[str]:
        args = [f"-{network.version}", "route", verb, str(network), "dev", self.device]
        if self.table is not None:
            args += ["table", str(self.table)]
        if self.metric is not None:
            args += ["metric", str(self.metric)]
        return args

    def add(self, network: IPNetwork | str, *, src: IPAddress | str | None = None, owner: str = "") -> None:
        """Route ``network`` through the device (``ip route replace``; again is harmless, and a new
        ``src`` replaces the old one)."""
        net = _network(network)
        try:
            source = ipaddress.ip_address(src) if isinstance(src, str) else src
        except ValueError:
            raise LocalError(f"route {net}: bad source address {src!r}") from None
        if source is not None and source.version != net.version:
            raise LocalError(f"route {net}: source {source} is of another address family")
        args = self._args("replace", net)  # always: repairs a route somebody else deleted
        if source is not None:
            args += ["src", str(source)]
        self._run(args)
        self._owners.setdefault(net, set()).add(owner)
        self._src[net] = source

    def remove(self, network: IPNetwork | str, *, owner: str = "") -> bool:
        """Drop ``owner``'s claim; delete the route when no owner is left. True if it was deleted.

        A route that is already gone from the kernel is not an error.
        """
        net = _network(network)
        owners = self._owners.get(net)
        if owners is None:
            return False
        owners.discard(owner)
        if owners:
            return False
        del self._owners[net]
        del self._src[net]
        self._delete(net)
        return True

    def _delete(self, net: IPNetwork) -> None:
        try:
            self._run(self._args("del", net))
        except LocalError as e:
            # "No such process" (no route) or "Cannot find device" (the TUN went first): gone already
            if "No such process" not in str(e) and "Cannot find device" not in str(e):
                raise

    def add_selectors(
        self, selectors: Iterable[TrafficSelector], *, src: IPAddress | None = None, owner: str = ""
    ) -> list[IPNetwork]:
        """Route every prefix of ``selectors`` (a child's remote_ts); ``src`` is used for those of
        its address family. Returns the prefixes."""
        nets = [net for ts in selectors for net in selector_networks(ts)]
        for net in nets:
            self.add(net, src=src if src is not None and src.version == net.version else None, owner=owner)
        return nets

    def remove_owner(self, owner: str) -> list[IPNetwork]:
        """Drop every claim of ``owner``; returns the prefixes whose route was deleted."""
        return [
            net
            for net, owners in list(self._owners.items())
            if owner in owners and self.remove(net, owner=owner)
        ]

    def remove_all(self) -> None:
        """Delete every route we installed (shutdown); keeps going past errors, raises the first."""
        first: LocalError | None = None
        for net in list(self._owners):
            del self._owners[net]
            del self._src[net]
            try:
                self._delete(net)
            except LocalError as e:
                first = first or e
        if first is not None:
            raise first
