"""Routes that steer a child's remote traffic into the TUN device, over netlink.

For each remote traffic selector of an installed child the daemon asks for (in ``ip``'s words,
which :func:`~snakeswan.io.netlink.run_netlink` carries out in process; :func:`run_ip` spawns the
real ``ip`` instead)
``ip route replace 10.231.2.0/24 dev snakeswan0 src 10.231.1.1``: packets to the remote subnet are
handed to the data plane (``Tun.read``), and packets the gateway itself originates there leave from
an address inside the local selector (``src``), so that they match the child's policy. strongSwan's
kernel-libipsec does the same (it even fails the CHILD_SA when the local selector holds no local
address; we install the route without ``src`` instead).

Routes are owned: several children (or an old SA and its rekeyed successor) may need one prefix;
it is deleted only when its last owner removes it. :meth:`Routes.add` is idempotent (``replace``),
:meth:`Routes.remove` of a route that is gone is not an error, :meth:`Routes.remove_all` is for
shutdown. Errors raise :class:`LocalError` naming the command and the kernel's message.

Policy routing (:class:`Rules`, as strongSwan does with kernel-libipsec): the routes into the TUN
go into a table of their own (``[daemon] route_table``, 220), consulted through one rule per address
family, ``not fwmark MARK lookup 220`` (priority ``route_priority``, 220). The daemon's own sockets
(IKE on UDP 500/4500, raw ESP/AH) carry the mark (:func:`set_mark`), so their packets skip that
table: in transport mode the peer's address itself is routed into the TUN, and without the mark the
daemon's IKE and ESP would be captured too. ``pass`` shunts get rules just before that one,
``[from L] to R [ipproto P] [sport S] [dport D] lookup main``, so their flows never reach the TUN.
Rules are installed at start (a leftover identical one from a daemon that died is replaced) and
removed at stop.

Nothing here runs per packet.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import subprocess
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from snakeswan.config.traffic import IPAddress, IPNetwork, TrafficSelector
from snakeswan.errors import LocalError
from snakeswan.io.netlink import run_netlink

IP_TIMEOUT = 5.0
SO_MARK: int = getattr(socket, "SO_MARK", 36)  # Linux

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


def local_addresses(*, exclude_devices: Iterable[str] = (), runner: Runner = run_netlink) -> list[IPAddress]:
    """Every address configured on this namespace's interfaces (``ip -j addr show``)."""
    return parse_addresses(runner(["-j", "addr", "show"]), exclude_devices=exclude_devices)


def local_address_in(
    selectors: Iterable[TrafficSelector],
    *,
    prefer: IPAddress | None = None,
    runner: Runner = run_netlink,
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
    fake one; the default is :func:`~snakeswan.io.netlink.run_netlink`, :func:`run_ip` spawns ``ip``).
    """

    def __init__(
        self,
        device: str,
        *,
        table: int | None = None,
        metric: int | None = None,
        runner: Runner = run_netlink,
    ) -> None:
        self.device = device
        self.table = table
        self.metric = metric
        self._run = runner
        self._owners: dict[IPNetwork, set[str]] = {}
        self._src: dict[IPNetwork, IPAddress | None] = {}
        self._claims: dict[str, dict[IPNetwork, None]] = {}  # owner -> its prefixes (remove_owner)

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
        self._claims.setdefault(owner, {})[net] = None
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
        claims = self._claims.get(owner)
        if claims is not None:
            claims.pop(net, None)
            if not claims:
                del self._claims[owner]
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
        """Drop every claim of ``owner``; returns the prefixes whose route was deleted. Only the
        owner's own prefixes are visited (a hub's peers own a /32 each, and go one by one)."""
        return [net for net in list(self._claims.get(owner, ())) if self.remove(net, owner=owner)]

    def remove_all(self) -> None:
        """Delete every route we installed (shutdown); keeps going past errors, raises the first."""
        first: LocalError | None = None
        self._claims.clear()
        for net in list(self._owners):
            del self._owners[net]
            del self._src[net]
            try:
                self._delete(net)
            except LocalError as e:
                first = first or e
        if first is not None:
            raise first


# --- marks and rules -----------------------------------------------------------------------------
def set_mark(sock: socket.socket, mark: int) -> None:
    """Put firewall mark ``mark`` on every packet ``sock`` sends (``SO_MARK``, needs CAP_NET_ADMIN);
    0 leaves the socket alone. ``LocalError`` if the kernel refuses."""
    if not mark:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)
    except OSError as e:
        raise LocalError(f"SO_MARK {mark:#x}: {e.strerror} (needs CAP_NET_ADMIN)") from None


_PORT_PROTOCOLS = {6: "tcp", 17: "udp", 33: "dccp", 132: "sctp"}  # what fib rules match ports of


def _ports(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def pass_rule_selectors(local_ts: TrafficSelector, remote_ts: TrafficSelector) -> list[list[str]]:
    """The ``ip rule`` selectors (``from``, ``to``, ``ipproto``, ``sport``, ``dport``) matching the
    packets of policy ``local_ts === remote_ts``: one list per pair of prefixes. ``from`` and ``to``
    are left out for a whole address family, ports for protocols without them (the rule is then
    broader than the policy)."""
    if local_ts.version != remote_ts.version:
        raise LocalError(f"{local_ts} === {remote_ts}: selectors of two address families")
    proto = local_ts.protocol or remote_ts.protocol
    extra: list[str] = []
    if proto:
        extra += ["ipproto", _PORT_PROTOCOLS.get(proto, str(proto))]
        if proto in _PORT_PROTOCOLS:
            if not local_ts.all_ports:
                extra += ["sport", _ports(local_ts.port_start, local_ts.port_end)]
            if not remote_ts.all_ports:
                extra += ["dport", _ports(remote_ts.port_start, remote_ts.port_end)]
    out = []
    for src in selector_networks(local_ts):
        for dst in selector_networks(remote_ts):
            sel = [] if src.prefixlen == 0 else ["from", str(src)]
            sel += [] if dst.prefixlen == 0 else ["to", str(dst)]
            out.append(sel + extra)
    return out


class Rules:
    """``ip rule`` entries we own (policy routing), each for one address family.

    :meth:`add` first deletes identical leftovers (a daemon that was killed could not remove its
    rules), :meth:`remove_all` deletes what we added (shutdown). ``runner`` as for :class:`Routes`.
    """

    def __init__(self, *, runner: Runner = run_netlink) -> None:
        self._run = runner
        self._rules: list[tuple[int, list[str]]] = []

    def installed(self) -> list[tuple[int, list[str]]]:
        """(IP version, ``ip rule`` arguments after ``add``) of each rule we added, in order."""
        return [(version, list(args)) for version, args in self._rules]

    def add(self, version: int, args: Sequence[str]) -> None:
        """``ip -<version> rule add ARGS`` (ARGS include ``priority``); ``LocalError`` on failure."""
        spec = list(args)
        for _ in range(16):  # leftovers of earlier runs (the kernel allows duplicates)
            try:
                self._run([f"-{version}", "rule", "del", *spec])
            except LocalError:
                break
        self._run([f"-{version}", "rule", "add", *spec])
        self._rules.append((version, spec))

    def remove(self, version: int, args: Sequence[str]) -> bool:
        """Delete one rule we added; False if we did not add it. Gone already is no error."""
        spec = list(args)
        if (version, spec) not in self._rules:
            return False
        self._rules.remove((version, spec))
        with contextlib.suppress(LocalError):
            self._run([f"-{version}", "rule", "del", *spec])
        return True

    def remove_all(self) -> None:
        """Delete every rule we added, newest first; keeps going past errors, raises the first."""
        first: LocalError | None = None
        while self._rules:
            version, spec = self._rules.pop()
            try:
                self._run([f"-{version}", "rule", "del", *spec])
            except LocalError as e:
                if "No such file" not in str(e):
                    first = first or e
        if first is not None:
            raise first


def tun_table_rule(table: int, mark: int, priority: int) -> list[str]:
    """The arguments of the rule that sends everything without our mark to the TUN's table."""
    return ["not", "fwmark", f"{mark:#x}", "lookup", str(table), "priority", str(priority)]
