"""Traffic through a tunnel between snakeswan's userspace data plane and strongSwan's
kernel-libipsec: ESP in UDP (strongSwan fakes a NAT), both roles, AES-GCM and AES-CBC/SHA-256,
ping and a TCP transfer between the protected subnets, with counters on both sides."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.daemons import DaemonProcess, wait_for
from tests.interop.strongswan import children, psk_secret, swanctl_conf, swanctl_conn
from tests.netns import Netns, ping, site_to_site

pytestmark = [pytest.mark.interop, pytest.mark.netns]

PSK = "traffic-pre-shared-key"
WEST, EAST = "10.231.0.1", "10.231.0.2"
LAN_W, LAN_E = "10.231.1.0/24", "10.231.2.0/24"


def ours(esp: str) -> str:
    return f"""
[connections.gw]
local_addrs = ["{WEST}"]
remote_addrs = ["{EAST}"]
proposals = ["aes128-sha256-modp2048"]
local = {{ auth = "psk" }}
remote = {{ auth = "psk" }}
[connections.gw.children.net]
local_ts = ["{LAN_W}"]
remote_ts = ["{LAN_E}"]
esp_proposals = ["{esp}"]
[secrets.ike-gw]
id = ["{WEST}", "{EAST}"]
secret = "{PSK}"
"""


def theirs(esp: str) -> str:
    conn = swanctl_conn(
        "gw", local_addrs=EAST, remote_addrs=WEST, local_ts=LAN_E, remote_ts=LAN_W, esp_proposals=esp
    )
    return swanctl_conf(conn, secrets=[psk_secret(PSK, WEST, EAST)])


def tcp_transfer(src_ns: Netns, dst_ns: Netns, dst: str, src: str, nbytes: int) -> int:
    server = (
        "import socket\n"
        f"s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('{dst}',5201));s.listen(1)\n"
        "s.settimeout(20);c,_=s.accept();n=0\n"
        "while True:\n d=c.recv(65536)\n if not d: break\n n+=len(d)\nprint(n)\n"
    )
    client = (
        "import socket,time\n"
        f"for i in range(50):\n try: s=socket.create_connection(('{dst}',5201),timeout=10,source_address=('{src}',0)); break\n"
        " except OSError: time.sleep(0.1)\n"
        f"s.sendall(b'y'*{nbytes});s.close()\n"
    )
    srv = dst_ns.popen(sys.executable, "-c", server, stdout=subprocess.PIPE, text=True)
    src_ns.run(sys.executable, "-c", client, timeout=60)
    out, _ = srv.communicate(timeout=30)
    return int(out.strip() or 0)


@pytest.mark.parametrize("esp", ["aes128gcm16", "aes256-sha256"])
@pytest.mark.parametrize("initiator", ["snakeswan", "strongswan"])
def test_traffic_through_tunnel(
    esp: str, initiator: str, topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    charon = charon_factory(east, "east", theirs(esp))
    d = DaemonProcess(tmp_path, "west", ours(esp), netns=west.name)
    topo.on_close(d.stop)
    if initiator == "snakeswan":
        d.cmd("up", conn="gw")
    else:
        charon.initiate("net", ike="gw")
    wait_for(lambda: d.sas() and d.sas()[0]["children"], what="the tunnel")
    # west's LAN address 10.231.1.1 -> east's LAN address 10.231.2.1 and back
    assert ping(west, "10.231.1.1", "10.231.2.1", count=5) == 5
    got = tcp_transfer(west, east, "10.231.2.1", "10.231.1.1", 1 << 20)
    assert got == 1 << 20
    ch = d.sas()[0]["children"][0]
    assert ch["encap"] and ch["packets_out"] >= 5 and ch["packets_in"] >= 5
    sa = charon.list_sas_raw()[0]
    theirs_child = children(sa)[0]
    assert int(theirs_child["packets-in"]) >= 5 and int(theirs_child["packets-out"]) >= 5
    assert int(theirs_child["bytes-in"]) >= 1 << 20  # the transfer went through libipsec
