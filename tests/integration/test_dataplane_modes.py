"""The data plane's modes end to end between two snakeswan daemons in namespaces, each proven on
the wire (tcpdump, read back with tshark) and in the daemons' own listings:

- ESP transport mode between the gateways themselves (the daemons' IKE and ESP must not be routed
  into the TUN: policy routing with a firewall mark, ``io.routes``);
- AH in tunnel and transport mode (IP protocol 51, the inner packets in the clear);
- pass and drop shunt policies next to a tunnel, most specific policy first;
- IPv6: IPv6 in IPv6, IPv4 in IPv6 and IPv6 in IPv4.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.daemons import ROOT, DaemonProcess, wait_for
from tests.netns import Netns, ping, site_to_site
from tests.traffic import (
    capture,
    child,
    config,
    inject,
    ip_rules,
    keylog_opts,
    ping6,
    raw_frames,
    site_to_site6,
    tcp_transfer,
)

pytestmark = pytest.mark.netns

WEST, EAST = "10.231.0.1", "10.231.0.2"
WEST6, EAST6 = "fdad:231::1", "fdad:231::2"


def daemons(
    topo: Any,
    tmp_path: Path,
    west: Netns,
    east: Netns,
    west_children: list[str],
    east_children: list[str],
    *,
    addrs: tuple[str, str] = (WEST, EAST),
    keylog: bool = False,
    daemon: str = "",
) -> tuple[DaemonProcess, DaemonProcess]:
    w_addr, e_addr = addrs
    e = DaemonProcess(tmp_path, "east", config(e_addr, w_addr, *east_children), netns=east.name)
    topo.on_close(e.stop)
    w_conf = config(w_addr, e_addr, *west_children, daemon=daemon)
    w = DaemonProcess(tmp_path, "west", w_conf, netns=west.name, keylog=keylog)
    topo.on_close(w.stop)
    return w, e


def cli_json(d: DaemonProcess, verb: str) -> Any:
    """``snakeswan <verb> --json`` against the daemon's control socket (the user's view)."""
    cp = subprocess.run(
        [sys.executable, "-m", "snakeswan.cli.main", "--control", d.control, verb, "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    return json.loads(cp.stdout)


def only_child(d: DaemonProcess) -> dict[str, Any]:
    sas = cli_json(d, "list-sas")
    assert len(sas) == 1 and len(sas[0]["children"]) == 1, sas
    result: dict[str, Any] = sas[0]["children"][0]
    return result


# -- 1. ESP transport mode ------------------------------------------------------------------------------
@pytest.mark.parametrize("esp", ["aes128gcm16", "aes128-sha256"])
def test_esp_transport_mode_between_gateways(esp: str, topology: Any, tmp_path: Path) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    host = child("host", mode="transport", esp_proposals=[esp], start_action="trap")  # dynamic TS
    w, e = daemons(topo, tmp_path, west, east, [host], [host], keylog=True)
    # policy routing: the TUN's routes in table 220, entered by all but the daemon's marked sockets
    assert "not from all fwmark 0x42 lookup 220" in ip_rules(west)
    with capture(west, "w0", tmp_path / "transport.pcap") as cap:
        assert ping(west, WEST, EAST, count=4) >= 3  # the first one triggers Main + Quick Mode
        assert tcp_transfer(west, east, EAST, WEST, 1 << 20) == 1 << 20
        assert tcp_transfer(east, west, WEST, EAST, 256 << 10, port=5202) == 256 << 10
    assert (
        "10.231.0.2 dev snakeswan0 scope link src 10.231.0.1"
        in west.ip("route", "show", "table", "220").stdout
    )
    assert "snakeswan0" not in west.ip("route", "show").stdout  # nothing of ours in main
    for d in (w, e):
        c = only_child(d)
        assert (c["mode"], c["protocol"], c["encap"]) == ("transport", "ESP", False), c
        assert (c["local_ts"], c["remote_ts"]) in (
            (f"{WEST}/32", f"{EAST}/32"),
            (f"{EAST}/32", f"{WEST}/32"),
        )
        assert c["packets_in"] >= 100 and c["packets_out"] >= 100, c
    assert only_child(e)["bytes_in"] >= 1 << 20
    # the wire: IKE in the clear on UDP 500 (it never went through the TUN), everything else ESP
    assert cap.count("isakmp && udp.port == 500") >= 9  # MM1..MM6, QM1..QM3
    assert cap.count("icmp || tcp") == 0
    esp_packets = cap.count(f"esp && ip.src == {WEST} && ip.dst == {EAST}")
    assert esp_packets >= 100
    assert cap.count("not (esp || isakmp)") == 0
    # decrypted with the keylog: ICMP and TCP right after the ESP header (transport mode: one IP
    # header per packet, the gateways'), and every ICV checks out
    assert w.keylog_path is not None
    opts = keylog_opts(w.keylog_path)
    rows = cap.fields("esp && (icmp || tcp)", "ip.src", "ip.dst", opts=opts)
    assert len(rows) >= esp_packets
    assert {tuple(r) for r in rows} <= {(WEST, EAST), (EAST, WEST)}  # no inner IP header
    assert cap.count("ip.proto == 4", opts=opts) == 0
    assert cap.count("esp.icv_good == 1", opts=opts) >= esp_packets
    assert cap.count("esp.icv_good == 0 || esp.icv_bad == 1", opts=opts) == 0


def test_policy_routing_is_removed_at_stop(topology: Any, tmp_path: Path) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    host = child("host", mode="transport", esp_proposals=["aes128gcm16"], start_action="trap")
    w, _e = daemons(topo, tmp_path, west, east, [host], [host])
    assert ping(west, WEST, EAST, count=3) >= 2
    assert "lookup 220" in ip_rules(west)
    assert w.stop() == 0
    assert "lookup 220" not in ip_rules(west)
    assert west.ip("route", "show", "table", "220").stdout.strip() == ""


def test_route_table_zero_routes_in_main_without_rule(topology: Any, tmp_path: Path) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    net_w = child("net", local_ts=["10.231.1.0/24"], remote_ts=["10.231.2.0/24"], start_action="trap")
    net_e = child("net", local_ts=["10.231.2.0/24"], remote_ts=["10.231.1.0/24"])
    w, _e = daemons(topo, tmp_path, west, east, [net_w], [net_e], daemon="[daemon]\nroute_table = 0\n")
    assert "10.231.2.0/24 dev snakeswan0" in west.ip("route", "show").stdout  # the main table
    assert "fwmark" not in ip_rules(west)
    assert ping(west, "10.231.1.1", "10.231.2.1", count=3) >= 2
    pols = cli_json(w, "list-pols")
    assert pols["table"] is None and pols["fwmark"] == 0 and pols["rules"] == []


# -- 2. AH, tunnel and transport mode -------------------------------------------------------------------
@pytest.mark.parametrize("ah", ["sha256", "sha1"])
@pytest.mark.parametrize("mode", ["tunnel", "transport"])
def test_ah(mode: str, ah: str, topology: Any, tmp_path: Path) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    if mode == "tunnel":
        src, dst = "10.231.1.1", "10.231.2.1"  # LAN to LAN, outer header gateway to gateway
        w_child = child("net", local_ts=["10.231.1.0/24"], remote_ts=["10.231.2.0/24"], ah_proposals=[ah])
        e_child = child("net", local_ts=["10.231.2.0/24"], remote_ts=["10.231.1.0/24"], ah_proposals=[ah])
    else:
        src, dst = WEST, EAST
        w_child = e_child = child("net", mode="transport", ah_proposals=[ah])
    w_child += 'start_action = "trap"\n'
    w, e = daemons(topo, tmp_path, west, east, [w_child], [e_child])
    with capture(west, "w0", tmp_path / "ah.pcap") as cap:
        assert ping(west, src, dst, count=4) >= 3
        assert tcp_transfer(west, east, dst, src, 512 << 10) == 512 << 10
    for d in (w, e):
        c = only_child(d)
        assert (c["protocol"], c["mode"]) == ("AH", mode), c
        assert c["proposal"].startswith("HMAC_SHA2_256_128" if ah == "sha256" else "HMAC_SHA1_96"), c
    # the wire: IP protocol 51 only; the inner ICMP and TCP readable (AH authenticates, no more)
    assert cap.count("ip.proto == 50 || udp.port == 4500") == 0
    assert cap.count("(icmp || tcp) && !ah") == 0
    requests = cap.fields(f"ah && icmp.type == 8 && ip.dst == {dst}", "ip.src", "ip.dst")
    replies = cap.fields(f"ah && icmp.type == 0 && ip.dst == {src}", "ip.src", "ip.dst")
    assert len(requests) >= 3 and len(replies) >= 3
    if mode == "tunnel":  # two IP headers: outer gateway -> gateway, inner LAN -> LAN
        assert requests[0] == [f"{WEST},{src}", f"{EAST},{dst}"]
    else:  # one: the gateways' own
        assert requests[0] == [src, dst]
    assert cap.count(f"ah && tcp.dstport == 5201 && ip.dst == {dst}") >= 300  # 512 KiB in the clear
    # integrity: the same packet again is a replay; with an unseen sequence number its ICV fails
    frame = int(cap.fields(f"ah && icmp.type == 8 && ip.dst == {dst}")[-1][0])
    packet = bytearray(raw_frames(cap.path)[frame - 1])
    before = only_child(e)
    inject(west, bytes(packet), EAST)
    wait_for(lambda: only_child(e).get("drop_replay") == 1, what="the replayed AH packet dropped")
    ihl = (packet[0] & 0x0F) * 4
    packet[ihl + 8 : ihl + 12] = (0x7FFFFFF0).to_bytes(4, "big")
    inject(west, bytes(packet), EAST)
    after = wait_for(lambda: (c := only_child(e)).get("drop_icv") == 1 and c, what="the ICV drop")
    assert after["packets_in"] == before["packets_in"]
    assert ping(west, src, dst, count=2) == 2  # still working


# -- 4. pass and drop shunts ------------------------------------------------------------------------------
def test_pass_and_drop_policies_next_to_a_tunnel(topology: Any, tmp_path: Path) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    east.add_addr("ssw-lan", "10.231.2.7/32")  # a host on east's LAN that west must not reach
    west.route("10.231.2.0/24", via=EAST)  # the clear path a pass policy takes
    east.route("10.231.1.0/24", via=WEST)
    lan_w, lan_e = "10.231.1.0/24", "10.231.2.0/24"
    # configuration order: the tunnel first, the narrower shunts after it (most specific wins anyway)
    w_children = [
        child("net", local_ts=[lan_w], remote_ts=[lan_e], start_action="trap"),
        child("web", mode="pass", local_ts=[f"{lan_w}[tcp]"], remote_ts=[f"{lan_e}[tcp/5201]"]),
        child("block", mode="drop", local_ts=[lan_w], remote_ts=["10.231.2.7"]),
    ]
    e_children = [
        child("net", local_ts=[lan_e], remote_ts=[lan_w]),
        child("web", mode="pass", local_ts=[f"{lan_e}[tcp/5201]"], remote_ts=[f"{lan_w}[tcp]"]),
    ]
    w, e = daemons(topo, tmp_path, west, east, w_children, e_children)
    pols = cli_json(w, "list-pols")
    order = [(p["child"], p["action"]) for p in pols["policies"] if p["conn"] == "gw"]
    assert order == [("web", "bypass"), ("block", "discard"), ("net", "protect")]
    assert all(p["conn"] == "%ike" for p in pols["policies"][: -len(order)])  # our own IKE first
    rules = ip_rules(west)
    assert f"219:\tfrom {lan_w} to {lan_e} ipproto tcp dport 5201 lookup main" in rules, rules
    assert "220:\tnot from all fwmark 0x42 lookup 220" in rules
    assert (
        "10.231.2.7 dev snakeswan0" in west.ip("route", "show", "table", "220").stdout
    )  # drop: into the TUN
    with capture(west, "w0", tmp_path / "shunts.pcap") as cap:
        assert ping(west, "10.231.1.1", "10.231.2.1", count=3) >= 2  # protected
        assert ping(west, "10.231.1.1", "10.231.2.7", count=3) == 0  # dropped
        assert tcp_transfer(west, east, "10.231.2.1", "10.231.1.1", 256 << 10, port=5201) == 256 << 10
        assert tcp_transfer(west, east, "10.231.2.1", "10.231.1.1", 256 << 10, port=5202) == 256 << 10
    assert cli_json(w, "list-pols")["drops"].get("discard") == 3
    clear = cap.fields("tcp.dstport == 5201 && ip.src == 10.231.1.1", "tcp.len")
    assert sum(int(n) for (n,) in clear) >= 256 << 10  # passed in the clear (GSO: a few big frames)
    assert cap.count("tcp.srcport == 5201 && ip.src == 10.231.2.1") >= 5  # ... both ways
    assert cap.count("tcp.port == 5202 || icmp") == 0  # protected, or dropped before the wire
    assert cap.count("ip.addr == 10.231.2.7") == 0
    assert cap.count("esp") >= 100
    c = only_child(e)
    assert (256 << 10) <= c["bytes_in"] < (512 << 10), c  # port 5202 through the SA, 5201 not
    # reload without the shunts: their policies, rules and routes go, the tunnel covers it all
    w.config_path.write_text(config(WEST, EAST, w_children[0]))
    assert w.cmd("reload") == ["gw"]
    pols = cli_json(w, "list-pols")
    assert [(p["child"], p["action"]) for p in pols["policies"] if p["conn"] == "gw"] == [("net", "protect")]
    assert "ipproto" not in ip_rules(west) and "lookup 220" in ip_rules(west)
    assert "10.231.2.7" not in west.ip("route", "show", "table", "220").stdout
    assert ping(west, "10.231.1.1", "10.231.2.7", count=3) == 3  # through the tunnel now
    assert w.stop() == 0
    assert "lookup" not in ip_rules(west).replace("lookup local", "").replace("lookup main", "").replace(
        "lookup default", ""
    )
    assert "ipproto" not in ip_rules(west)


# -- 5. IPv6 ----------------------------------------------------------------------------------------------
LAN6_W, LAN6_E = "fdad:231:1::/64", "fdad:231:2::/64"


@pytest.mark.parametrize("outer", [6, 4])
def test_ipv6_and_mixed_families(outer: int, topology: Any, tmp_path: Path) -> None:
    """Outer IPv6: IPv6 in IPv6 and IPv4 in IPv6; outer IPv4: IPv6 in IPv4 (next to IPv4 in IPv4)."""
    topo = topology()
    west, east = site_to_site6(topo)
    addrs = (WEST6, EAST6) if outer == 6 else (WEST, EAST)
    kids = {
        "west": [
            child("net6", local_ts=[LAN6_W], remote_ts=[LAN6_E], start_action="trap"),
            child("net4", local_ts=["10.231.1.0/24"], remote_ts=["10.231.2.0/24"], start_action="trap"),
        ],
        "east": [
            child("net6", local_ts=[LAN6_E], remote_ts=[LAN6_W]),
            child("net4", local_ts=["10.231.2.0/24"], remote_ts=["10.231.1.0/24"]),
        ],
    }
    w, _e = daemons(topo, tmp_path, west, east, kids["west"], kids["east"], addrs=addrs, keylog=True)
    assert "not from all fwmark 0x42 lookup 220" in ip_rules(west, 6)
    with capture(west, "w0", tmp_path / "v6.pcap", bpf="not arp") as cap:
        assert ping6(west, "fdad:231:1::1", "fdad:231:2::1", count=4) >= 3
        assert tcp_transfer(west, east, "fdad:231:2::1", "fdad:231:1::1", 1 << 20) == 1 << 20
        assert ping(west, "10.231.1.1", "10.231.2.1", count=4) >= 3
        assert tcp_transfer(west, east, "10.231.2.1", "10.231.1.1", 256 << 10, port=5202) == 256 << 10
    sas = cli_json(w, "list-sas")
    assert len(sas) == 1 and sas[0]["local"] == (f"[{WEST6}]:500" if outer == 6 else f"{WEST}:500")
    kids_up = {c["name"]: c for c in sas[0]["children"]}
    assert (kids_up["net6"]["local_ts"], kids_up["net6"]["remote_ts"]) == (LAN6_W, LAN6_E)
    assert kids_up["net6"]["bytes_out"] >= 1 << 20 and kids_up["net4"]["bytes_out"] >= 256 << 10
    assert not kids_up["net6"]["encap"] and not kids_up["net4"]["encap"]
    # the wire: ESP between the outer addresses only, nothing of the inner traffic in the clear
    src = "ipv6.src" if outer == 6 else "ip.src"
    assert cap.count(f"esp && {src} == {addrs[0]}") >= 100
    assert cap.count("tcp || icmp || icmpv6.type == 128 || icmpv6.type == 129") == 0
    assert cap.count("isakmp") >= 9
    assert cap.count("not (esp || isakmp || icmpv6)") == 0  # (icmpv6: neighbour discovery)
    # decrypted: each inner family inside the outer one
    assert w.keylog_path is not None
    opts = keylog_opts(w.keylog_path)
    outer_filter = "ipv6.nxt == 50" if outer == 6 else "ip.proto == 50"
    inner6 = cap.count(f"{outer_filter} && icmpv6.type == 128 && ipv6.src == fdad:231:1::1", opts=opts)
    inner4 = cap.count(f"{outer_filter} && icmp.type == 8 && ip.src == 10.231.1.1", opts=opts)
    assert inner6 >= 3 and inner4 >= 3
    assert cap.count("esp.icv_bad == 1", opts=opts) == 0


def test_ah_over_ipv6_is_refused_cleanly(topology: Any, tmp_path: Path) -> None:
    """AH over IPv6 is not supported by the data plane: negotiated, then deleted on both sides with
    a clear log line, nothing left installed (no half SA)."""
    topo = topology()
    west, east = site_to_site6(topo)
    w_child = child("net6", local_ts=[LAN6_W], remote_ts=[LAN6_E], ah_proposals=["sha256"])
    e_child = child("net6", local_ts=[LAN6_E], remote_ts=[LAN6_W], ah_proposals=["sha256"])
    w, e = daemons(topo, tmp_path, west, east, [w_child], [e_child], addrs=(WEST6, EAST6))
    w.cmd("up", conn="gw")
    for d in (w, e):
        wait_for(lambda d=d: "AH over IPv6 is not supported" in d.log(), what=f"{d.name} to refuse")
        wait_for(lambda d=d: d.sas() and d.sas()[0]["children"] == [], what=f"{d.name} without SA")
        assert d.proc.poll() is None and "IPsec SA gw/net6 established" not in d.log()
    assert [p for p in cli_json(w, "list-pols")["policies"] if p["conn"] == "gw"] == []
    assert "fdad:231:2::/64" not in west.ip("-6", "route", "show", "table", "220").stdout
