"""An active/standby pair of snakeswan gateways sharing a virtual address through a three-member
etcd cluster (issue 14), against strongSwan, all in namespaces on one LAN segment (a bridge):

    etcd1 .1   etcd2 .2   etcd3 .3   gw1 .11   gw2 .12   peer (strongSwan) .20     10.231.9.0/24
                                     [ virtual address .10 ]
    gw1/gw2 protect 10.231.1.0/24 (each has 10.231.1.1), the peer 10.231.2.0/24 (10.231.2.1)

strongSwan initiates to the virtual address; a 10 Hz ping runs 10.231.2.1 -> 10.231.1.1 through
the tunnel. ``kill -9`` of the active gateway: the standby takes the address (gratuitous ARP) and
the SAs (restored from etcd): the ping resumes within 3 s, strongSwan's log shows one IKE SA
established in all, the SPIs and cookies are the same, served by gw2 (list-sas). Then one etcd
member is killed (the raft leader, the worst case) while the ping goes on: nothing changes.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemons import DaemonProcess, wait_for
from tests.etcd import Cluster, bridge, join_bridge, netns_cluster
from tests.interop.strongswan import psk_secret, swanctl_conf, swanctl_conn
from tests.netns import Netns, protected
from tests.netns import ping as ping_count
from tests.persist_helpers import BackgroundPing

pytestmark = [pytest.mark.interop, pytest.mark.netns]

VIP, PEER = "10.231.9.10", "10.231.9.20"
LAN_GW, LAN_PEER = "10.231.1.0/24", "10.231.2.0/24"
PSK = "cluster-failover-psk"
TTL = 2


def gateway_conf(node: str, endpoints: list[str], key_file: Path, prefer: bool) -> str:
    urls = ", ".join(f'"{e}"' for e in endpoints)
    return f"""
[daemon]
state = "etcd"
[cluster]
endpoints = [{urls}]
node = "{node}"
name = "lab"
lease_ttl = {TTL}
timeout = "0.3s"
key_file = "{key_file}"
prefer = [{'"vip"' if prefer else ""}]
[cluster.shares.vip]
address = "{VIP}/24"
interface = "eth0"
[connections.gw]
local_addrs = ["{VIP}"]
remote_addrs = ["{PEER}"]
proposals = ["aes128-sha256-modp2048"]
local = {{ auth = "psk" }}
remote = {{ auth = "psk" }}
[connections.gw.children.net]
local_ts = ["{LAN_GW}"]
remote_ts = ["{LAN_PEER}"]
esp_proposals = ["aes128gcm16-modp2048"]
[secrets.ike-gw]
id = ["{VIP}", "{PEER}"]
secret = "{PSK}"
"""


def peer_conf() -> str:
    conn = swanctl_conn(
        "gw", local_addrs=PEER, remote_addrs=VIP, local_ts=LAN_PEER, remote_ts=LAN_GW, dpd_delay="2s"
    )
    return swanctl_conf(conn, secrets=[psk_secret(PSK, PEER, VIP)])


def has_vip(ns: Netns) -> bool:
    return f"{VIP}/24" in ns.ip("-4", "addr", "show", "dev", "eth0").stdout


def established(charon: Any) -> int:
    return len(re.findall(r"IKE_SA gw\[\d+\] established", charon.log()))


def test_pair_failover_and_etcd_member_loss(topology: Any, charon_factory: Any, tmp_path: Path) -> None:
    topo = topology()
    lan = bridge(topo)
    etcd: Cluster = netns_cluster(topo, lan, tmp_path)
    key_file = tmp_path / "cluster.key"
    key_file.write_bytes(os.urandom(32))
    key_file.chmod(0o600)
    gws: dict[str, Netns] = {}
    for i, name in enumerate(("gw1", "gw2")):
        ns = topo.add(name)
        join_bridge(lan, ns, "eth0", f"10.231.9.{11 + i}/24", f"p{name}")
        protected(ns, "10.231.1.1/24")
        gws[name] = ns
    peer = topo.add("peer")
    join_bridge(lan, peer, "eth0", f"{PEER}/24", "ppeer")
    protected(peer, "10.231.2.1/24")

    d1 = DaemonProcess(
        tmp_path, "gw1", gateway_conf("gw1", etcd.endpoints, key_file, True), netns=gws["gw1"].name
    )
    topo.on_close(d1.stop)
    wait_for(lambda: has_vip(gws["gw1"]), timeout=10, what="gw1 to own the virtual address")
    d2 = DaemonProcess(
        tmp_path, "gw2", gateway_conf("gw2", etcd.endpoints, key_file, False), netns=gws["gw2"].name
    )
    topo.on_close(d2.stop)
    time.sleep(TTL + 0.5)  # gw2 is past its patience: it would take a free share now
    assert not has_vip(gws["gw2"]) and has_vip(gws["gw1"])

    charon = charon_factory(peer, "peer", peer_conf())
    charon.initiate("net", ike="gw")
    wait_for(lambda: d1.sas() and d1.sas()[0]["children"], what="the tunnel to gw1")
    before = d1.sas()[0]
    assert before["node"] == "gw1" and before["share"] == "vip"
    assert d2.sas() == []

    ping = BackgroundPing(peer, "10.231.2.1", "10.231.1.1", 10)
    topo.on_close(ping.stop)
    time.sleep(3)
    killed = time.monotonic()
    d1.proc.kill()  # kill -9 of the active: no Delete, no resign
    d1.proc.wait(5)
    wait_for(lambda: has_vip(gws["gw2"]), timeout=TTL + 3, what="gw2 to take the virtual address")
    took = time.monotonic() - killed
    # the dead process's address expired with its lease: gw1's host no longer answers for it
    wait_for(
        lambda: not has_vip(gws["gw1"]), timeout=max(0.1, killed + TTL + 1 - time.monotonic()), what="expiry"
    )
    result = ping.result()
    print(f"failover: address taken {took:.2f} s after kill -9; ping {result}")
    after = d2.sas()
    assert len(after) == 1, after
    assert after[0]["node"] == "gw2" and after[0]["share"] == "vip"
    assert (after[0]["icookie"], after[0]["rcookie"]) == (before["icookie"], before["rcookie"])
    assert [(c["spi_in"], c["spi_out"]) for c in after[0]["children"]] == [
        (c["spi_in"], c["spi_out"]) for c in before["children"]
    ]
    assert result.longest_gap <= 3.0, result
    assert established(charon) == 1, "strongSwan negotiated a new IKE SA"
    assert "took share vip" in d2.log()

    # one etcd member dies during traffic (the leader: the worst case): nothing changes
    ping = BackgroundPing(peer, "10.231.2.1", "10.231.1.1", 6)
    topo.on_close(ping.stop)
    time.sleep(1.5)
    leader = etcd.leader()
    leader.kill()
    time.sleep(TTL + 1.0)
    result = ping.result()
    print(f"etcd member {leader.name} killed: ping {result}")
    assert result.longest_gap <= 0.5 and result.received >= result.sent - 3, result
    assert has_vip(gws["gw2"])
    after2 = d2.sas()
    assert [(s["icookie"], s["node"]) for s in after2] == [(before["icookie"], "gw2")]
    assert "gave up share" not in d2.log()
    assert established(charon) == 1
    # the state is still written to the two members left: the checkpoint of the IPsec SA moves
    spi_in = after2[0]["children"][0]["spi_in"]
    first = seq_revision(etcd, spi_in)
    assert ping_count(peer, "10.231.2.1", "10.231.1.1", count=10, interval=0.1) == 10
    time.sleep(1.5)  # a checkpoint interval (1 s) and some
    assert seq_revision(etcd, spi_in) > first

    # a planned stop hands over at once: gw1 back (as standby now), SIGTERM to gw2
    d1 = DaemonProcess(
        tmp_path, "gw1", gateway_conf("gw1", etcd.endpoints, key_file, True), netns=gws["gw1"].name
    )
    topo.on_close(d1.stop)
    time.sleep(1.0)
    assert not has_vip(gws["gw1"])  # gw1 prefers the share, but it is owned
    ping = BackgroundPing(peer, "10.231.2.1", "10.231.1.1", 4)
    topo.on_close(ping.stop)
    time.sleep(1.0)
    assert d2.stop() == 0
    wait_for(lambda: has_vip(gws["gw1"]), timeout=2, what="gw1 to take the share at once")
    result = ping.result()
    print(f"planned stop of gw2: ping {result}")
    assert not has_vip(gws["gw2"])
    assert [(s["icookie"], s["node"]) for s in d1.sas()] == [(before["icookie"], "gw1")]
    assert "gave up share vip (stopping)" in d2.log()
    assert result.longest_gap <= 1.0, result
    assert established(charon) == 1  # no Delete was sent: strongSwan keeps its SA


def seq_revision(etcd: Cluster, spi_in: str) -> int:
    """The mod revision of the IPsec SA's checkpoint in etcd, asked from a live member."""
    member = next(m for m in etcd.members if m.proc.poll() is None and m.ns is not None)
    assert member.ns is not None
    key = f"/snakeswan/lab/state/vip/seq/{spi_in}"
    cp = member.ns.run("etcdctl", "--endpoints", ",".join(etcd.endpoints), "get", key, "-w", "json")
    kvs = json.loads(cp.stdout).get("kvs", [])
    assert kvs, f"no checkpoint {key} in etcd"
    return int(kvs[0]["mod_revision"])


# -- N active: two shares, each gateway preferring one ------------------------------------------

VIPS = {"a": "10.231.9.10", "b": "10.231.9.30"}
PEERS = {"a": ("10.231.9.20", "10.231.2"), "b": ("10.231.9.21", "10.231.3")}


def two_share_conf(node: str, endpoints: list[str], key_file: Path, prefer: str) -> str:
    urls = ", ".join(f'"{e}"' for e in endpoints)
    text = f"""
[daemon]
state = "etcd"
[cluster]
endpoints = [{urls}]
node = "{node}"
name = "lab"
lease_ttl = {TTL}
timeout = "0.3s"
key_file = "{key_file}"
prefer = ["{prefer}"]
"""
    for share, vip in VIPS.items():
        text += f'[cluster.shares.{share}]\naddress = "{vip}/24"\ninterface = "eth0"\n'
    for share, vip in VIPS.items():
        peer, net = PEERS[share]
        text += f"""
[connections.gw-{share}]
local_addrs = ["{vip}"]
remote_addrs = ["{peer}"]
proposals = ["aes128-sha256-modp2048"]
local = {{ auth = "psk" }}
remote = {{ auth = "psk" }}
[connections.gw-{share}.children.net]
local_ts = ["{LAN_GW}"]
remote_ts = ["{net}.0/24"]
esp_proposals = ["aes128gcm16-modp2048"]
[secrets.ike-{share}]
id = ["{vip}", "{peer}"]
secret = "{PSK}"
"""
    return text


def vips_of(ns: Netns) -> set[str]:
    out = ns.ip("-4", "addr", "show", "dev", "eth0").stdout
    return {share for share, vip in VIPS.items() if f"{vip}/24" in out}


def test_two_active_nodes_each_with_a_share(topology: Any, charon_factory: Any, tmp_path: Path) -> None:
    """gw1 serves share a (peer 1), gw2 share b (peer 2); kill -9 of gw1: gw2 takes share a too,
    peer 1's tunnel goes on without a new IKE SA, peer 2 never notices."""
    topo = topology()
    lan = bridge(topo)
    etcd = netns_cluster(topo, lan, tmp_path)
    key_file = tmp_path / "cluster.key"
    key_file.write_bytes(os.urandom(32))
    key_file.chmod(0o600)
    gws: dict[str, Netns] = {}
    for i, name in enumerate(("gw1", "gw2")):
        ns = topo.add(name)
        join_bridge(lan, ns, "eth0", f"10.231.9.{11 + i}/24", f"p{name}")
        protected(ns, "10.231.1.1/24")
        gws[name] = ns
    d1 = DaemonProcess(
        tmp_path, "gw1", two_share_conf("gw1", etcd.endpoints, key_file, "a"), netns=gws["gw1"].name
    )
    topo.on_close(d1.stop)
    d2 = DaemonProcess(
        tmp_path, "gw2", two_share_conf("gw2", etcd.endpoints, key_file, "b"), netns=gws["gw2"].name
    )
    topo.on_close(d2.stop)
    wait_for(lambda: vips_of(gws["gw1"]) == {"a"} and vips_of(gws["gw2"]) == {"b"}, what="one share each")
    charons, pings = {}, {}
    for share, (addr, net) in PEERS.items():
        ns = topo.add(f"peer{share}")
        join_bridge(lan, ns, "eth0", f"{addr}/24", f"pp{share}")
        protected(ns, f"{net}.1/24")
        conn = swanctl_conn(
            "gw", local_addrs=addr, remote_addrs=VIPS[share], local_ts=f"{net}.0/24", remote_ts=LAN_GW
        )
        charons[share] = charon_factory(
            ns, f"peer{share}", swanctl_conf(conn, secrets=[psk_secret(PSK, addr, VIPS[share])])
        )
        charons[share].initiate("net", ike="gw")
        pings[share] = (ns, f"{net}.1")
    wait_for(
        lambda: d1.sas() and d1.sas()[0]["children"] and d2.sas() and d2.sas()[0]["children"], what="tunnels"
    )
    assert [(s["conn"], s["node"], s["share"]) for s in d1.sas()] == [("gw-a", "gw1", "a")]
    assert [(s["conn"], s["node"], s["share"]) for s in d2.sas()] == [("gw-b", "gw2", "b")]
    before_a = d1.sas()[0]
    running = {s: BackgroundPing(ns, src, "10.231.1.1", 8) for s, (ns, src) in pings.items()}
    for p in running.values():
        topo.on_close(p.stop)
    time.sleep(2)
    d1.proc.kill()
    d1.proc.wait(5)
    wait_for(lambda: vips_of(gws["gw2"]) == {"a", "b"}, timeout=TTL + 3, what="gw2 to take share a")
    results = {s: p.result() for s, p in running.items()}
    print(f"two shares, gw1 killed: {results}")
    owned = {s["share"]: s for s in d2.sas()}
    assert set(owned) == {"a", "b"} and all(s["node"] == "gw2" for s in owned.values())
    assert (owned["a"]["icookie"], owned["a"]["rcookie"]) == (before_a["icookie"], before_a["rcookie"])
    assert results["a"].longest_gap <= 3.0, results["a"]
    assert results["b"].longest_gap <= 0.5, results["b"]  # the survivor's own peers see nothing
    assert established(charons["a"]) == 1 and established(charons["b"]) == 1
