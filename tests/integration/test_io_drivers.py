"""The data plane's drivers in network namespaces: the TUN device, raw ESP/AH sockets, routes.

The drivers open their fds in the namespace of the calling thread, so the test thread enters a
namespace (``setns``) to create them (and to run ``ip``, whose children inherit it) and returns
to its own at once; an fd keeps working in its namespace from anywhere.
"""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import struct
import threading
import time
from typing import Any

import pytest

from snakeswan.config.traffic import TrafficSelector
from snakeswan.errors import LocalError
from snakeswan.io.rawip import AH, ESP, RawIp
from snakeswan.io.routes import (
    Routes,
    address_in_selectors,
    local_address_in,
    parse_addresses,
    run_ip,
)
from snakeswan.io.tun import Tun
from tests.netns import Netns, Topology, inside, ping, veth

netns = pytest.mark.netns


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def ipv4(src: str, dst: str, proto: int, payload: bytes, ttl: int = 64) -> bytes:
    hdr = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        0,
        0x4000,
        ttl,
        proto,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    return hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:] + payload


def echo_reply(request: bytes) -> bytes | None:
    """The ICMP echo reply to an IPv4 echo request, both checksums computed here."""
    if len(request) < 28 or request[0] >> 4 != 4 or request[9] != socket.IPPROTO_ICMP:
        return None
    ihl = (request[0] & 15) * 4
    icmp = request[ihl:]
    if icmp[0] != 8:
        return None
    body = bytes([0, 0, 0, 0]) + icmp[4:]
    body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
    src, dst = socket.inet_ntoa(request[12:16]), socket.inet_ntoa(request[16:20])
    return ipv4(dst, src, socket.IPPROTO_ICMP, body)


def one_ns(topology: Any, role: str = "gw") -> tuple[Topology, Netns]:
    topo: Topology = topology()
    return topo, topo.add(role)


# --- TUN ------------------------------------------------------------------------------------------
@netns
def test_tun_ping_through_userspace(topology: Any) -> None:
    topo, ns = one_ns(topology)
    name = f"ssw{topo.tag}t"
    with inside(ns):
        tun = Tun(name)
        try:
            tun.configure(mtu=1400, addresses=["10.231.8.1/24"])
            Routes(name).add("10.231.9.0/24", src="10.231.8.1")
        except BaseException:
            tun.close()
            raise
    with tun:
        assert tun.name == name
        assert "mtu 1400" in ns.ip("link", "show", "dev", name).stdout
        assert f"10.231.9.0/24 dev {name}" in ns.ip("route").stdout
        assert tun.read() == []  # non-blocking, nothing queued

        result: list[int] = []
        pinger = threading.Thread(target=lambda: result.append(ping(ns, "10.231.8.1", "10.231.9.1")))
        pinger.start()
        requests: list[bytes] = []
        deadline = time.monotonic() + 15
        while pinger.is_alive() and time.monotonic() < deadline:
            ready, _, _ = select.select([tun], [], [], 0.1)
            if not ready:
                continue
            for packet in tun.read():
                reply = echo_reply(packet)
                if reply is not None:
                    requests.append(packet)
                    assert tun.write(reply)
        pinger.join(timeout=5)
        assert requests, "no echo request came out of the TUN device"
        req = requests[0]
        assert socket.inet_ntoa(req[12:16]) == "10.231.8.1"
        assert socket.inet_ntoa(req[16:20]) == "10.231.9.1"
        assert result == [3]
        assert tun.drops == 0


@netns
def test_tun_name_taken_and_bad_names(topology: Any) -> None:
    topo, ns = one_ns(topology)
    name = f"ssw{topo.tag}x"
    with inside(ns):
        with Tun(name), pytest.raises(LocalError, match="exists already"):
            Tun(name)
        with pytest.raises(LocalError, match="exists already"):
            Tun("lo")
        with pytest.raises(LocalError, match="bad interface name"):
            Tun("a" * 16)
        with pytest.raises(LocalError, match="bad interface name"):
            Tun("tun%d")
        with Tun(name) as again:  # the first one went away with its fd
            assert again.name == name
    assert name not in ns.ip("link").stdout


def _udp4(src: str, sport: int, dst: str, dport: int, payload: bytes) -> bytes:
    return ipv4(
        src, dst, socket.IPPROTO_UDP, struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    )


def _flows_by_queue(queues: list[Tun], want: int, deadline: float) -> dict[int, set[int]]:
    """The UDP source ports read from each queue (by index), until ``want`` packets came."""
    seen: dict[int, set[int]] = {i: set() for i in range(len(queues))}
    got = 0
    while got < want and time.monotonic() < deadline:
        select.select(queues, [], [], 0.1)
        for i, q in enumerate(queues):
            for packet in q.read():
                if packet[0] >> 4 == 4 and packet[9] == socket.IPPROTO_UDP:
                    seen[i].add(struct.unpack_from("!H", packet, 20)[0])
                    got += 1
    return seen


@netns
@pytest.mark.parametrize("offload", [False, True])
def test_tun_multi_queue_spreads_flows_and_answers_follow_the_writer(topology: Any, offload: bool) -> None:
    """Each flow comes out of one queue; the flows spread over the queues by hash; a flow whose
    packet was written into queue 1 comes out of queue 1 from then on (the kernel's automq)."""
    topo, ns = one_ns(topology)
    name = f"ssw{topo.tag}q"
    with inside(ns):
        first = Tun(name, multi_queue=True, offload=offload)
        queues = [first, first.attach_queue()]
        try:
            first.configure(addresses=["10.231.8.1/24"])
            Routes(name).add("10.231.9.0/24", src="10.231.8.1")
            socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(16)]
            for i, s in enumerate(socks):
                s.bind(("10.231.8.1", 41000 + i))
        except BaseException:
            for q in queues:
                q.close()
            raise
    try:
        assert queues[1].name == name and queues[1].offload == offload
        assert "multi_queue" in ns.ip("-d", "link", "show", "dev", name).stdout
        for s in socks:
            s.sendto(b"first", ("10.231.9.1", 5000))
        seen = _flows_by_queue(queues, len(socks), time.monotonic() + 5)
        assert seen[0] | seen[1] == {41000 + i for i in range(16)}
        assert not seen[0] & seen[1]  # a flow on one queue only
        assert seen[0] and seen[1]  # 16 flows on one queue of two: 2 ** -15
        port = min(seen[0])  # a flow the hash gave to queue 0: answer it through queue 1
        assert queues[1].write(_udp4("10.231.9.1", 5000, "10.231.8.1", port, b"answer"))
        sock = socks[port - 41000]
        sock.settimeout(3)
        assert sock.recvfrom(100) == (b"answer", ("10.231.9.1", 5000))
        for _ in range(3):
            sock.sendto(b"again", ("10.231.9.1", 5000))
        again = _flows_by_queue(queues, 3, time.monotonic() + 5)
        assert again == {0: set(), 1: {port}}
    finally:
        for s in socks:
            s.close()
        for q in queues:
            q.close()
    assert name not in ns.ip("link").stdout  # gone with its last queue


@netns
def test_tun_queues_need_a_multi_queue_device(topology: Any) -> None:
    topo, ns = one_ns(topology)
    with inside(ns), Tun(f"ssw{topo.tag}s") as single:
        with pytest.raises(LocalError, match="one queue"):
            single.attach_queue()
        with pytest.raises(LocalError, match="not a multi-queue TUN device"):
            Tun(single.name, _queue_of=single)  # what attach_queue would do on a single-queue device


@netns
def test_tun_write_refused_counts_a_drop(topology: Any) -> None:
    topo, ns = one_ns(topology)
    with inside(ns), Tun(f"ssw{topo.tag}d") as tun:
        tun.configure(addresses=["10.231.8.1/24"])
        assert not tun.write(b"\x70" + bytes(39))  # IP version 7: EINVAL
        assert tun.drops == 1
        assert sum(tun.write_errors.values()) == 1


def pump(a: Tun, b: Tun, packet: bytes, total: int, batch: int = 64) -> str:
    """Write ``total`` copies of ``packet`` into ``a`` in batches, reading ``b`` after each batch."""
    sent = received = 0
    t_write = t_read = 0.0
    start = time.perf_counter()
    while sent < total:
        t0 = time.perf_counter()
        for _ in range(batch):
            a.write(packet)
        t1 = time.perf_counter()
        got = b.read(batch)
        t2 = time.perf_counter()
        sent += batch
        received += len(got)
        t_write += t1 - t0
        t_read += t2 - t1
    deadline = time.monotonic() + 2
    while received < sent - a.drops and time.monotonic() < deadline:
        if select.select([b], [], [], 0.1)[0]:
            t1 = time.perf_counter()
            received += len(b.read(batch))
            t_read += time.perf_counter() - t1
    elapsed = time.perf_counter() - start
    assert received >= sent * 0.9, f"sent {sent}, received {received}"
    return (
        f"{len(packet)}-byte packets: TUN write {sent / t_write:,.0f}/s ({t_write / sent * 1e6:.2f} us "
        f"each, the kernel's forwarding included); TUN read {received / t_read:,.0f}/s "
        f"({t_read / max(received, 1) * 1e6:.2f} us each); loop {received / elapsed:,.0f}/s "
        f"(sent {sent}, received {received}, write drops {a.drops})"
    )


@netns
def test_tun_throughput(topology: Any) -> None:
    """Python writes UDP packets into TUN a, the kernel forwards them into TUN b, Python reads them.

    Prints packets/s for the writes, the reads, and the loop as a whole (no assertion on time).
    """
    topo, ns = one_ns(topology)
    a_name, b_name = f"ssw{topo.tag}a", f"ssw{topo.tag}b"
    with inside(ns):
        a, b = Tun(a_name), Tun(b_name)
        try:
            a.configure(mtu=1400, addresses=["10.231.8.1/24"], txqueuelen=1000)
            b.configure(mtu=1400, addresses=["10.231.7.1/24"], txqueuelen=1000)
            Routes(b_name).add("10.231.9.0/24")
            ns.run("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0")
        except BaseException:
            a.close()
            b.close()
            raise
    with a, b:
        lines = []
        for size in (64, 1372):
            udp = struct.pack("!HHHH", 40000, 9, 8 + size, 0) + bytes(size)  # UDP checksum 0: none
            packet = ipv4("10.231.8.2", "10.231.9.1", socket.IPPROTO_UDP, udp)
            a.write(packet)  # warm up, and check that the kernel forwards a -> b
            select.select([b], [], [], 2)
            first = b.read()
            assert len(first) == 1 and first[0][16:20] == socket.inet_aton("10.231.9.1")
            assert first[0][8] == 63  # forwarded: TTL decremented
            assert len(first[0]) == len(packet)
            lines.append(pump(a, b, packet, 80000))
        print("\n" + "\n".join(lines))


# --- raw ESP / AH ---------------------------------------------------------------------------------
def two_sites(topology: Any) -> tuple[Netns, Netns]:
    topo: Topology = topology()
    west, east = topo.add("west"), topo.add("east")
    veth(west, "w0", "10.231.0.1/24", east, "e0", "10.231.0.2/24")
    west.add_addr("w0", "10.231.0.11/24")
    return west, east


def wait_receive(raw: RawIp, timeout: float = 3.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        select.select([raw], [], [], 0.1)
        got = list(raw.receive())
        if got:
            return got
    return []


@netns
def test_rawip_receives_fake_esp_from_other_namespace(topology: Any) -> None:
    west, east = two_sites(topology)
    with inside(east):
        esp_in, ah_in = RawIp(ESP), RawIp(AH)
    with inside(west):
        plain = socket.socket(socket.AF_INET, socket.SOCK_RAW, ESP)  # a sender that is not ours
    with esp_in, ah_in, plain:
        payload = struct.pack("!II", 0x1234ABCD, 1) + b"fake ESP ciphertext" * 5
        plain.sendto(payload, ("10.231.0.2", 0))
        got = wait_receive(esp_in)
        assert len(got) == 1
        pkt = got[0]
        assert (pkt.protocol, pkt.src, pkt.dst, pkt.data) == (ESP, "10.231.0.1", "10.231.0.2", payload)
        assert pkt.ttl == 64
        assert list(ah_in.receive()) == []  # the AH socket sees only protocol 51
        # the data plane's batch read: payloads only, in order
        more = [struct.pack("!II", 0x1234ABCD, i) + bytes([i]) * 30 for i in range(2, 6)]
        for m in more:
            plain.sendto(m, ("10.231.0.2", 0))
        got_payloads: list[bytes] = []
        deadline = time.monotonic() + 3
        while len(got_payloads) < len(more) and time.monotonic() < deadline:
            select.select([esp_in], [], [], 0.1)
            got_payloads += esp_in.receive_payloads(2)  # at most 2 a call
        assert got_payloads == more
        assert esp_in.receive_payloads() == []


@netns
def test_rawip_send_from_chosen_source_and_tos(topology: Any) -> None:
    west, east = two_sites(topology)
    with inside(west):
        esp_out, ah_out = RawIp(ESP), RawIp(AH)
    with inside(east):
        esp_in, ah_in = RawIp(ESP), RawIp(AH)
        capture = socket.socket(socket.AF_INET, socket.SOCK_RAW, ESP)  # a second, plain listener
        capture.settimeout(3)
    with esp_out, ah_out, esp_in, ah_in, capture:
        payload = struct.pack("!II", 0xC0FFEE, 7) + os.urandom(48)
        assert esp_out.send(payload, "10.231.0.2", src="10.231.0.11", tos=0xB8)
        got = wait_receive(esp_in)
        assert [(p.src, p.dst, p.data, p.tos) for p in got] == [("10.231.0.11", "10.231.0.2", payload, 0xB8)]
        raw = capture.recv(65535)  # the whole IPv4 packet, seen by a socket that is not RawIp
        assert raw[9] == ESP and socket.inet_ntoa(raw[12:16]) == "10.231.0.11"
        assert raw[(raw[0] & 15) * 4 :] == payload

        assert esp_out.send(payload, "10.231.0.2", src="10.231.0.1")
        assert [p.src for p in wait_receive(esp_in)] == ["10.231.0.1"]

        ah = b"\x04\x04\x00\x00" + struct.pack("!II", 0xAA55, 1) + bytes(12)
        assert ah_out.send(ah, "10.231.0.2", src="10.231.0.1")
        assert [(p.protocol, p.data) for p in wait_receive(ah_in)] == [(AH, ah)]
        assert list(esp_in.receive()) == []

        # failures are counted, never raised: a source that is not ours, an unreachable destination
        assert not esp_out.send(payload, "10.231.0.2", src="10.231.5.5")
        assert not esp_out.send(payload, "10.231.99.1")
        assert not esp_out.send(payload, "::1")
        assert esp_out.drops == 3


@netns
def test_rawip_ipv6_loopback(topology: Any) -> None:
    """IPv6: payload only from the kernel; dst from IPV6_PKTINFO (over ::1 inside the namespace)."""
    _, ns = one_ns(topology)
    ns.run("sysctl", "-qw", "net.ipv6.conf.lo.disable_ipv6=0")
    with inside(ns):
        rx, tx = RawIp(ESP, socket.AF_INET6), RawIp(ESP, socket.AF_INET6)
    with rx, tx:
        payload = struct.pack("!II", 0x600D, 3) + b"v6 payload"
        assert tx.send(payload, "::1", src="::1", tos=0x20)
        got = [p for p in wait_receive(rx)]
        assert [(p.src, p.dst, p.data) for p in got] == [("::1", "::1", payload)]


# --- routes ---------------------------------------------------------------------------------------
def routes_of(ns: Netns, name: str, version: int = 4) -> list[str]:
    out = ns.ip(f"-{version}", "route", "show", "dev", name).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


@netns
def test_routes_idempotent_owned_and_removed(topology: Any) -> None:
    topo, ns = one_ns(topology)
    name = f"ssw{topo.tag}r"
    ns.run("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0")
    ns.run("sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=0")
    ns.run("sysctl", "-qw", "net.ipv6.conf.lo.disable_ipv6=0")
    ns.ip("link", "add", "sswlan", "type", "veth", "peer", "name", "sswlanp")
    ns.add_addr("sswlan", "10.231.1.1/24")
    with inside(ns):
        tun = Tun(name)
    with tun, inside(ns):
        tun.configure(addresses=["10.231.8.1/24"])
        routes = Routes(name)
        local_ts = [TrafficSelector.from_text("10.231.1.0/24")]
        src = local_address_in(local_ts)
        assert src == ipaddress.ip_address("10.231.1.1")
        assert local_address_in([TrafficSelector.from_text("10.231.66.0/24")]) is None
        remote = [TrafficSelector.from_text("10.231.2.0/24"), TrafficSelector.from_text("10.231.3.1")]
        nets = routes.add_selectors(remote, src=src, owner="site/lan")
        assert [str(n) for n in nets] == ["10.231.2.0/24", "10.231.3.1/32"]
        routes.add_selectors(remote, src=src, owner="site/lan")  # again: no error, no duplicate
        routes.add("10.231.2.0/24", src=src, owner="other/lan")
        shown = routes_of(ns, name)
        assert sum("10.231.2.0/24" in line for line in shown) == 1
        assert any(line.startswith("10.231.2.0/24") and "src 10.231.1.1" in line for line in shown)
        assert any(line.startswith("10.231.3.1 ") for line in shown)

        # a range becomes the prefixes that cover it
        rng = routes.add_selectors([TrafficSelector.from_text("10.231.4.1-10.231.4.6")], owner="r")
        assert [str(n) for n in rng] == [
            "10.231.4.1/32",
            "10.231.4.2/31",
            "10.231.4.4/31",
            "10.231.4.6/32",
        ]

        # IPv6 too (a documentation prefix, no traffic; ::1 is no valid route source)
        routes.add("2001:db8:231::/64", owner="v6")
        routes.add("2001:db8:231::/64", owner="v6")
        assert any(line.startswith("2001:db8:231::/64") for line in routes_of(ns, name, 6))

        # the route stays while another owner needs it
        assert routes.remove_owner("site/lan") == [ipaddress.ip_network("10.231.3.1/32")]
        assert any(line.startswith("10.231.2.0/24") for line in routes_of(ns, name))
        assert not any(line.startswith("10.231.3.1 ") for line in routes_of(ns, name))
        assert routes.remove("10.231.2.0/24", owner="other/lan")
        assert not routes.remove("10.231.2.0/24", owner="other/lan")  # again: nothing to do

        # somebody deleted it behind our back: removal is still fine
        routes.add("10.231.5.0/24", owner="x")
        run_ip(["route", "del", "10.231.5.0/24", "dev", name])
        assert routes.remove("10.231.5.0/24", owner="x")

        with pytest.raises(LocalError, match=r"ip -4 route replace 10\.231\.6\.0/24 .*src 10\.231\.66\.1"):
            routes.add("10.231.6.0/24", src="10.231.66.1")  # not a local address

        routes.remove_all()
        assert routes.installed() == {}
        assert routes_of(ns, name) == ["10.231.8.0/24 proto kernel scope link src 10.231.8.1"]
        assert not any("2001:db8" in r for r in routes_of(ns, name, 6))


# --- routes without root: a fake ip runner -------------------------------------------------------
class FakeIp:
    def __init__(self, fail: str = "") -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, args: Any) -> str:
        self.calls.append(list(args))
        if self.fail and self.fail in args:
            raise LocalError(f"ip {' '.join(args)}: RTNETLINK answers: No such process")
        return ""


def test_routes_commands_and_ownership() -> None:
    fake = FakeIp()
    routes = Routes("snakeswan0", table=220, metric=5, runner=fake)
    routes.add("10.231.2.0/24", src="10.231.1.1", owner="a")
    routes.add("10.231.2.0/24", src="10.231.1.1", owner="b")
    assert (
        fake.calls
        == [
            [
                "-4",
                "route",
                "replace",
                "10.231.2.0/24",
                "dev",
                "snakeswan0",
                "table",
                "220",
                "metric",
                "5",
                "src",
                "10.231.1.1",
            ],
        ]
        * 2
    )
    assert not routes.remove("10.231.2.0/24", owner="a")
    assert routes.remove("10.231.2.0/24", owner="b")
    assert fake.calls[-1] == [
        "-4",
        "route",
        "del",
        "10.231.2.0/24",
        "dev",
        "snakeswan0",
        "table",
        "220",
        "metric",
        "5",
    ]
    with pytest.raises(LocalError, match="another address family"):
        routes.add("2001:db8::/64", src="10.231.1.1")
    with pytest.raises(LocalError, match="bad route destination"):
        routes.add("10.231.2.0/33")
    with pytest.raises(LocalError, match="bad source address"):
        routes.add("10.231.2.0/24", src="10.231.1")
    nets = routes.add_selectors(
        [TrafficSelector.from_text("10.231.3.0/24[tcp/80]"), TrafficSelector.from_text("2001:db8:1::/48")],
        src=ipaddress.ip_address("10.231.1.1"),
    )
    assert [str(n) for n in nets] == ["10.231.3.0/24", "2001:db8:1::/48"]
    assert fake.calls[-1][:4] == ["-6", "route", "replace", "2001:db8:1::/48"] and "src" not in fake.calls[-1]
    gone = FakeIp(fail="del")
    routes._run = gone
    routes.remove_all()  # "No such process": already gone, fine
    assert routes.installed() == {}


def test_source_address_within_local_ts() -> None:
    ts = [TrafficSelector.from_text("10.231.1.0/24"), TrafficSelector.from_text("2001:db8:5::/64")]
    addrs = [
        ipaddress.ip_address(a)
        for a in ("127.0.0.1", "10.231.0.1", "10.231.1.7", "10.231.1.1", "2001:db8:5::9")
    ]
    assert address_in_selectors(ts, addrs) == ipaddress.ip_address("10.231.1.1")
    assert address_in_selectors(ts, addrs, prefer=ipaddress.ip_address("10.231.1.7")) == ipaddress.ip_address(
        "10.231.1.7"
    )
    assert address_in_selectors(ts, addrs, prefer=ipaddress.ip_address("10.231.0.1")) == ipaddress.ip_address(
        "10.231.1.1"
    )
    assert address_in_selectors(ts[1:], addrs) == ipaddress.ip_address("2001:db8:5::9")
    assert address_in_selectors([TrafficSelector.from_text("10.231.66.0/24")], addrs) is None
    anyv4 = [TrafficSelector.from_text("%any")]
    assert address_in_selectors(anyv4, addrs) == ipaddress.ip_address("10.231.0.1")  # loopback last
    output = (
        '[{"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},'
        '{"ifname":"e0","addr_info":[{"family":"inet6","local":"fe80::1","prefixlen":64},'
        '{"family":"inet6","local":"2001:db8::7","prefixlen":64,"tentative":true}]},'
        '{"ifname":"snakeswan0","addr_info":[{"family":"inet","local":"10.231.100.1","prefixlen":32}]}]'
    )
    assert [str(a) for a in parse_addresses(output)] == ["127.0.0.1", "fe80::1", "10.231.100.1"]
    assert [str(a) for a in parse_addresses(output, exclude_devices=["lo"])] == ["fe80::1", "10.231.100.1"]
    with pytest.raises(LocalError, match="unreadable"):
        parse_addresses("not json")


def test_run_ip_errors_name_the_command() -> None:
    with pytest.raises(LocalError, match=r"ip route frobnicate: .*"):
        run_ip(["route", "frobnicate"])
