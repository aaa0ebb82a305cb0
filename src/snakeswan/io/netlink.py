"""Routes, rules, addresses and links through rtnetlink, in process (pyroute2's message codec).

Issue 11: spawning ``ip`` cost about 1.5 ms per route and needs the iproute2 binary, which slim
containers lack. Here every request is one netlink message on a socket opened for that request in
the calling thread's network namespace (as a spawned ``ip`` would run in it: tests ``setns`` the
thread, and the daemon's own namespace is the default), acknowledged by the kernel before the call
returns. pyroute2 encodes and decodes the messages; the socket is ours and blocking, so nothing here
touches an event loop (pyroute2's own ``IPRoute`` runs one and cannot be called from the daemon's).

:func:`run_netlink` is a :data:`~snakeswan.io.routes.Runner`: it takes the ``ip`` arguments the
drivers have always built (``-4 route replace NET dev D table T metric M src S``, ``rule add|del``,
``addr replace|del``, ``link set``, ``-j addr show``) and carries them out over netlink, so the
drivers, their fakes in tests and their error texts stay as they were. Errors are
:class:`LocalError` naming the command and the kernel's answer (``No such process``, ``Cannot find
device``...), as ``ip`` would. :class:`AddressMonitor` follows address changes (``RTMGRP_*_IFADDR``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
import struct
import time
from collections.abc import Sequence
from typing import Any

from pyroute2.netlink import (
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_EXCL,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
)
from pyroute2.netlink.rtnl import (
    RTM_DELADDR,
    RTM_DELROUTE,
    RTM_DELRULE,
    RTM_GETADDR,
    RTM_GETROUTE,
    RTM_GETRULE,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWROUTE,
    RTM_NEWRULE,
)
from pyroute2.netlink.rtnl.fibmsg import fibmsg
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from snakeswan.errors import LocalError

RT_TABLE_MAIN = 254
RT_TABLE_COMPAT = 252  # the header's table field when the real one (RTA_TABLE) is above 255
RT_SCOPE_LINK = 253
RT_SCOPE_NOWHERE = 255
RTPROT_BOOT = 3  # what ``ip route add`` uses
FR_ACT_TO_TBL = 1
FIB_RULE_INVERT = 0x2
IFA_F_NODAD = 0x02
IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40
IFF_UP = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
_FAMILY = {4: socket.AF_INET, 6: socket.AF_INET6}
_PROTOCOLS = {"tcp": 6, "udp": 17, "dccp": 33, "sctp": 132, "icmp": 1, "ipv6-icmp": 58, "esp": 50, "ah": 51}
_NEW = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE
_HDR = struct.Struct("=IHHII")
TIMEOUT = 5.0


class NetlinkError(LocalError):
    """The kernel refused a request; ``code`` is the errno."""

    def __init__(self, text: str, code: int) -> None:
        super().__init__(text)
        self.code = code


def request(msg: Any, kind: int, flags: int, *, what: str) -> list[bytes]:
    """Send ``msg`` as a ``kind`` request and collect the answer: the messages of a dump, or
    nothing once the kernel acknowledged. ``NetlinkError`` naming ``what`` on a refusal."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
    try:
        sock.settimeout(TIMEOUT)  # the kernel answers at once; never hang the daemon on it
        sock.bind((0, 0))
        msg["header"]["type"] = kind
        msg["header"]["flags"] = flags
        msg["header"]["sequence_number"] = 1
        msg.encode()
        sock.send(msg.data)
        return _answer(sock, what)
    except TimeoutError:
        raise LocalError(f"{what}: netlink: no answer within {TIMEOUT:g} s") from None
    except OSError as e:
        raise LocalError(f"{what}: netlink: {e.strerror or e}") from None
    finally:
        sock.close()


def _answer(sock: socket.socket, what: str) -> list[bytes]:
    out: list[bytes] = []
    while True:
        data = sock.recv(1 << 16)
        offset = 0
        while offset + _HDR.size <= len(data):
            length, kind = _HDR.unpack_from(data, offset)[:2]
            if kind == NLMSG_ERROR:
                code = -struct.unpack_from("=i", data, offset + _HDR.size)[0]
                if code:
                    raise NetlinkError(f"{what}: RTNETLINK answers: {os.strerror(code)}", code)
                return out
            if kind == NLMSG_DONE:
                return out
            out.append(data[offset : offset + length])
            offset += (length + 3) & ~3
            if length < _HDR.size:
                raise LocalError(f"{what}: netlink: malformed answer")


def device_index(name: str, *, what: str) -> int:
    try:
        return socket.if_nametoindex(name)
    except OSError:
        raise NetlinkError(f'{what}: Cannot find device "{name}"', 19) from None


# --- the operations ------------------------------------------------------------------------------
def route(
    verb: str,
    network: ipaddress.IPv4Network | ipaddress.IPv6Network,
    device: str,
    *,
    table: int | None = None,
    metric: int | None = None,
    src: str | None = None,
    what: str = "route",
) -> None:
    """``verb`` (replace | del) a route to ``network`` through ``device``."""
    msg = rtmsg()
    t = table or RT_TABLE_MAIN
    msg["family"] = _FAMILY[network.version]
    msg["dst_len"] = network.prefixlen
    msg["table"] = t if t < 256 else RT_TABLE_COMPAT
    attrs: list[tuple[str, Any]] = [
        ("RTA_DST", str(network.network_address)),
        ("RTA_OIF", device_index(device, what=what)),
        ("RTA_TABLE", t),
    ]
    if metric is not None:
        attrs.append(("RTA_PRIORITY", metric))
    if verb == "del":
        msg["scope"] = RT_SCOPE_NOWHERE  # any scope, as ``ip route del`` (else only "universe")
        msg["attrs"] = attrs
        request(msg, RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, what=what)
        return
    msg["type"], msg["scope"], msg["proto"] = 1, RT_SCOPE_LINK, RTPROT_BOOT  # unicast, on link
    if src is not None:
        attrs.append(("RTA_PREFSRC", src))
    msg["attrs"] = attrs
    request(msg, RTM_NEWROUTE, _NEW | NLM_F_REPLACE, what=what)


def routes_in(table: int, version: int) -> list[tuple[str, int]]:
    """(destination prefix, output device index) of every route in ``table``."""
    msg = rtmsg()
    msg["family"] = _FAMILY[version]
    found = []
    for raw in request(msg, RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, what=f"-{version} route show"):
        r = rtmsg(raw)
        r.decode()
        if (r.get_attr("RTA_TABLE") or r["table"]) != table:
            continue
        dst = r.get_attr("RTA_DST") or ("0.0.0.0" if version == 4 else "::")
        found.append((f"{dst}/{r['dst_len']}", int(r.get_attr("RTA_OIF") or 0)))
    return found


def rule_message(version: int, spec: Sequence[str], *, what: str) -> Any:
    """The fib rule message for ``ip rule`` selectors and actions ``spec`` (the subset snakeswan
    uses: not, from, to, fwmark, ipproto, sport, dport, lookup, priority)."""
    msg = fibmsg()
    msg["family"] = _FAMILY[version]
    msg["action"] = FR_ACT_TO_TBL
    attrs: list[tuple[str, Any]] = []
    words = list(spec)
    i = 0
    try:
        while i < len(words):
            word = words[i]
            if word == "not":
                msg["flags"] |= FIB_RULE_INVERT
                i += 1
                continue
            value = words[i + 1]
            if word in ("from", "to"):
                net = ipaddress.ip_network(value, strict=False)
                msg["src_len" if word == "from" else "dst_len"] = net.prefixlen
                attrs.append(("FRA_SRC" if word == "from" else "FRA_DST", str(net.network_address)))
            elif word == "fwmark":
                mark, _, mask = value.partition("/")
                attrs += [("FRA_FWMARK", int(mark, 0)), ("FRA_FWMASK", int(mask, 0) if mask else 0xFFFFFFFF)]
            elif word == "ipproto":
                attrs.append(("FRA_IP_PROTO", _PROTOCOLS.get(value) or int(value)))
            elif word in ("sport", "dport"):
                first, _, last = value.partition("-")
                attrs.append((f"FRA_{word.upper()}_RANGE", f"{int(first)}:{int(last or first)}"))
            elif word in ("lookup", "table"):
                table = RT_TABLE_MAIN if value == "main" else int(value)
                msg["table"] = table if table < 256 else RT_TABLE_COMPAT
                attrs.append(("FRA_TABLE", table))
            elif word in ("priority", "pref"):
                attrs.append(("FRA_PRIORITY", int(value)))
            else:
                raise LocalError(f"{what}: rule selector {word!r} is not supported over netlink")
            i += 2
    except (IndexError, ValueError):
        raise LocalError(f"{what}: cannot read the rule {' '.join(words)!r}") from None
    msg["attrs"] = attrs
    return msg


def rule(verb: str, version: int, spec: Sequence[str], *, what: str = "rule") -> None:
    """``ip -VERSION rule add|del SPEC`` (add always adds: the kernel allows duplicates)."""
    msg = rule_message(version, spec, what=what)
    if verb == "add":
        request(msg, RTM_NEWRULE, _NEW | NLM_F_EXCL, what=what)
    else:
        request(msg, RTM_DELRULE, NLM_F_REQUEST | NLM_F_ACK, what=what)


def rules_at(version: int, priorities: Sequence[int]) -> list[dict[str, Any]]:
    """The rules of one family at ``priorities``: their raw attributes (``FRA_*``), header fields."""
    msg = fibmsg()
    msg["family"] = _FAMILY[version]
    found = []
    for raw in request(msg, RTM_GETRULE, NLM_F_REQUEST | NLM_F_DUMP, what=f"-{version} rule show"):
        r = fibmsg(raw)
        r.decode()
        if (r.get_attr("FRA_PRIORITY") or 0) in priorities:
            found.append({**{k: r[k] for k in ("flags", "table", "src_len", "dst_len")}, **dict(r["attrs"])})
    return found


def delete_rule(version: int, found: dict[str, Any], *, what: str = "rule del") -> None:
    """Delete a rule as :func:`rules_at` returned it (every attribute it had, so exactly that one)."""
    msg = fibmsg()
    msg["family"] = _FAMILY[version]
    msg["action"] = FR_ACT_TO_TBL
    for k in ("flags", "table", "src_len", "dst_len"):
        msg[k] = found[k]
    msg["attrs"] = [(k, v) for k, v in found.items() if k.startswith("FRA_") and k != "FRA_UNSPEC"]
    request(msg, RTM_DELRULE, NLM_F_REQUEST | NLM_F_ACK, what=what)


def address(
    verb: str,
    iface: str,
    device: str,
    *,
    nodad: bool = False,
    lifetime: tuple[int, int] | None = None,
    what: str = "addr",
) -> None:
    """``verb`` (replace | del) address ``iface`` (``10.231.8.1/24``) on ``device``; ``lifetime``
    is (valid, preferred) seconds (``ip``'s ``valid_lft``/``preferred_lft``), else forever."""
    try:
        ifc = ipaddress.ip_interface(iface)
    except ValueError:
        raise LocalError(f"{what}: bad address {iface!r}") from None
    msg = ifaddrmsg()
    msg["family"] = _FAMILY[ifc.version]
    msg["prefixlen"] = ifc.network.prefixlen
    msg["index"] = device_index(device, what=what)
    msg["attrs"] = [("IFA_LOCAL", str(ifc.ip)), ("IFA_ADDRESS", str(ifc.ip))]
    if verb == "del":
        request(msg, RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, what=what)
        return
    if nodad:
        msg["flags"] = IFA_F_NODAD
    if lifetime is not None:
        valid, preferred = lifetime
        info = {"ifa_valid": valid, "ifa_preferred": preferred, "cstamp": 0, "tstamp": 0}
        msg["attrs"].append(("IFA_CACHEINFO", info))
    request(msg, RTM_NEWADDR, _NEW | NLM_F_REPLACE, what=what)


def link_set(
    device: str,
    *,
    mtu: int | None = None,
    txqueuelen: int | None = None,
    up: bool | None = None,
    what: str = "link",
) -> None:
    msg = ifinfmsg()
    msg["index"] = device_index(device, what=what)
    attrs: list[tuple[str, int]] = []
    if mtu is not None:
        attrs.append(("IFLA_MTU", mtu))
    if txqueuelen is not None:
        attrs.append(("IFLA_TXQLEN", txqueuelen))
    if up is not None:
        msg["change"] = IFF_UP
        msg["flags"] = IFF_UP if up else 0
    msg["attrs"] = attrs
    request(msg, RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, what=what)


def addresses() -> list[tuple[int, str, int]]:
    """(device index, address, IFA flags) of every address in this namespace."""
    out = []
    for raw in request(ifaddrmsg(), RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, what="addr show"):
        a = ifaddrmsg(raw)
        a.decode()
        local = a.get_attr("IFA_LOCAL") or a.get_attr("IFA_ADDRESS")
        if local:
            out.append((int(a["index"]), str(local), int(a.get_attr("IFA_FLAGS") or a["flags"])))
    return out


def wait_usable(device: str, wanted: Sequence[str], timeout: float = 1.0) -> bool:
    """Wait until each address of ``wanted`` (``fd98::1/64``) is on ``device``, no longer tentative
    and routed as local (IPv6: the kernel's DAD work runs after the link comes up, even with
    ``nodad``; until it has, packets to the address are dropped). True once usable, False at
    ``timeout``."""
    index = device_index(device, what="addr show")
    want = {str(ipaddress.ip_interface(a).ip) for a in wanted}
    deadline = time.monotonic() + timeout
    while True:
        ready = {addr for i, addr, flags in addresses() if i == index and not flags & IFA_F_TENTATIVE}
        if want <= ready and all(_routed(a) for a in wanted):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)


RTN_LOCAL = 2


def _routed(iface: str) -> bool:
    """The kernel routes ``iface``'s address as local (its local-table route is in: packets to it
    are delivered, not dropped or sent back out)."""
    ifc = ipaddress.ip_interface(iface)
    msg = rtmsg()
    msg["family"] = _FAMILY[ifc.version]
    msg["dst_len"] = ifc.max_prefixlen
    msg["attrs"] = [("RTA_DST", str(ifc.ip))]
    try:
        answer = request(msg, RTM_GETROUTE, NLM_F_REQUEST | NLM_F_ACK, what="route get")
    except LocalError:
        return False
    for raw in answer:
        route = rtmsg(raw)
        route.decode()
        return bool(route["type"] == RTN_LOCAL)
    return False


def addresses_json() -> str:
    """:func:`addresses` in the shape of ``ip -j addr show`` (what routes.parse_addresses reads)."""
    links: dict[int, dict[str, Any]] = {}
    for index, local, flags in addresses():
        if index not in links:
            try:
                name = socket.if_indextoname(index)
            except OSError:
                name = f"if{index}"
            links[index] = {"ifname": name, "addr_info": []}
        info: dict[str, Any] = {"local": local}
        if flags & IFA_F_TENTATIVE:
            info["tentative"] = True
        if flags & IFA_F_DADFAILED:
            info["dadfailed"] = True
        links[index]["addr_info"].append(info)
    return json.dumps(list(links.values()))


# --- the ``ip`` vocabulary of the drivers, over netlink --------------------------------------------
def run_netlink(args: Sequence[str]) -> str:
    """A :data:`~snakeswan.io.routes.Runner` without iproute2: the ``ip`` arguments the drivers
    build, carried out over netlink. Returns what ``ip`` would print (only ``-j addr show`` prints)."""
    words = list(args)
    what = "ip " + " ".join(words)
    version = 4
    if words and words[0] in ("-4", "-6"):
        version = int(words.pop(0)[1])
    if words[:3] == ["-j", "addr", "show"]:
        return addresses_json()
    if len(words) < 3:
        raise LocalError(f"{what}: not supported over netlink")
    obj, verb, rest = words[0], words[1], words[2:]
    if obj == "route" and verb in ("replace", "del"):
        _route_words(verb, rest, what)
    elif obj == "rule" and verb in ("add", "del"):
        rule(verb, version, rest, what=what)
    elif obj == "addr" and verb in ("replace", "del") and len(rest) >= 3 and rest[1] == "dev":
        _address_words(verb, rest, what)
    elif obj == "link" and verb == "set" and len(rest) >= 2 and rest[0] == "dev":
        _link_words(rest[1], rest[2:], what)
    else:
        raise LocalError(f"{what}: not supported over netlink")
    return ""


def _pairs(words: Sequence[str], what: str) -> dict[str, str]:
    if len(words) % 2:
        raise LocalError(f"{what}: cannot read {' '.join(words)!r}")
    return dict(zip(words[::2], words[1::2], strict=True))


def _route_words(verb: str, rest: Sequence[str], what: str) -> None:
    try:
        network = ipaddress.ip_network(rest[0], strict=False)
    except (IndexError, ValueError):
        raise LocalError(f"{what}: bad route destination") from None
    opts = _pairs(rest[1:], what)
    if "dev" not in opts or not set(opts) <= {"dev", "table", "metric", "src"}:
        raise LocalError(f"{what}: not supported over netlink")
    table = None if opts.get("table", "main") == "main" else int(opts["table"])
    metric = int(opts["metric"]) if "metric" in opts else None
    route(verb, network, opts["dev"], table=table, metric=metric, src=opts.get("src"), what=what)


def _address_words(verb: str, rest: Sequence[str], what: str) -> None:
    words = list(rest[3:])
    nodad = "nodad" in words
    if nodad:
        words.remove("nodad")
    opts = _pairs(words, what)
    if not set(opts) <= {"valid_lft", "preferred_lft"}:
        raise LocalError(f"{what}: not supported over netlink")
    lifetime = None
    if opts:
        try:
            valid = int(opts.get("valid_lft", opts.get("preferred_lft", "")))
            lifetime = (valid, int(opts.get("preferred_lft", valid)))
        except ValueError:
            raise LocalError(f"{what}: lifetimes are whole seconds") from None
    address(verb, rest[0], rest[2], nodad=nodad, lifetime=lifetime, what=what)


def _link_words(device: str, rest: Sequence[str], what: str) -> None:
    words = list(rest)
    up: bool | None = None
    for state in ("up", "down"):
        if state in words:
            words.remove(state)
            up = state == "up"
    opts = _pairs(words, what)
    if not set(opts) <= {"mtu", "txqueuelen"}:
        raise LocalError(f"{what}: not supported over netlink")
    mtu = int(opts["mtu"]) if "mtu" in opts else None
    txq = int(opts["txqueuelen"]) if "txqueuelen" in opts else None
    link_set(device, mtu=mtu, txqueuelen=txq, up=up, what=what)


# --- address changes -------------------------------------------------------------------------------
class AddressMonitor:
    """A non-blocking netlink socket subscribed to address changes (IPv4 and IPv6), opened in the
    calling thread's namespace. Register :meth:`fileno` with the loop; :meth:`changed` drains what
    arrived and says whether an address came or went (then read them again: :func:`addresses`)."""

    def __init__(self) -> None:
        self.sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE
        )
        try:
            self.sock.bind((0, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
            self.sock.setblocking(False)
        except OSError as e:
            self.sock.close()
            raise LocalError(f"netlink address monitor: {e.strerror or e}") from None

    def fileno(self) -> int:
        return self.sock.fileno()

    def changed(self) -> bool:
        seen = False
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except (BlockingIOError, InterruptedError):
                return seen
            except OSError:  # ENOBUFS: we missed some; read everything again
                return True
            offset = 0
            while offset + _HDR.size <= len(data):
                length, kind = _HDR.unpack_from(data, offset)[:2]
                seen = seen or kind in (RTM_NEWADDR, RTM_DELADDR)
                if length < _HDR.size:
                    break
                offset += (length + 3) & ~3

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
