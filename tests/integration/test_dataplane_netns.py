"""The data plane between two snakeswan daemons in namespaces: tshark decrypts the ESP with the
daemon's --keylog and sees the inner ICMP; a replayed and a tampered ESP packet are dropped and
counted; traffic no policy covers stays in the clear."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemons import DaemonProcess, wait_for
from tests.netns import Netns, ping, site_to_site

pytestmark = pytest.mark.netns

CONF = """
[connections.gw]
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
proposals = ["aes128-sha256-modp2048"]
local = {{ auth = "psk" }}
remote = {{ auth = "psk" }}
[connections.gw.children.net]
local_ts = ["{lnet}"]
remote_ts = ["{rnet}"]
esp_proposals = ["{esp}"]
start_action = "trap"
[secrets.ike-gw]
id = ["{local}", "{remote}"]
secret = "dataplane-test-psk"
"""

SNIFF = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
s.settimeout(15)
print(s.recv(65535).hex())
"""

INJECT = """
import socket, sys
pkt = bytes.fromhex(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.sendto(pkt, (sys.argv[2], 0))
"""


def pair(
    topology: Any, tmp_path: Path, esp: str = "aes128gcm16", keylog: bool = False
) -> tuple[Netns, Netns, DaemonProcess, DaemonProcess]:
    topo = topology()
    west, east = site_to_site(topo)
    e = DaemonProcess(
        tmp_path,
        "east",
        CONF.format(
            local="10.231.0.2", remote="10.231.0.1", lnet="10.231.2.0/24", rnet="10.231.1.0/24", esp=esp
        ),
        netns=east.name,
    )
    topo.on_close(e.stop)
    w = DaemonProcess(
        tmp_path,
        "west",
        CONF.format(
            local="10.231.0.1", remote="10.231.0.2", lnet="10.231.1.0/24", rnet="10.231.2.0/24", esp=esp
        ),
        netns=west.name,
        keylog=keylog,
    )
    topo.on_close(w.stop)
    return west, east, w, e


def test_tshark_decrypts_esp_with_keylog(topology: Any, tmp_path: Path) -> None:
    assert shutil.which("tshark"), "tshark is installed by scripts/setup.sh"
    west, _east, w, _e = pair(topology, tmp_path, esp="aes256-sha256", keylog=True)
    pcap = tmp_path / "esp.pcapng"
    cap = subprocess.Popen(
        ["ip", "netns", "exec", west.name, "tshark", "-q", "-i", "w0", "-f", "esp", "-w", str(pcap)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: pcap.exists() and pcap.stat().st_size > 0, timeout=15, what="tshark to capture")
        time.sleep(0.5)
        assert ping(west, "10.231.1.1", "10.231.2.1", count=4) >= 3  # the first one triggers IKE
        time.sleep(0.5)
    finally:
        cap.terminate()
        cap.wait(10)
    assert w.keylog_path is not None
    esp_lines = [x for x in w.keylog_path.read_text().splitlines() if x.startswith('"')]
    assert len(esp_lines) == 2
    opts = ["-o", "esp.enable_encryption_decode:TRUE"]
    for line in esp_lines:
        opts += ["-o", f"uat:esp_sa:{line}"]
    out = subprocess.run(
        ["tshark", "-r", str(pcap), *opts, "-Y", "icmp"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert out.count("Echo (ping) request") >= 3 and out.count("Echo (ping) reply") >= 3, out
    assert "10.231.1.1" in out and "10.231.2.1" in out
    blind = subprocess.run(
        ["tshark", "-r", str(pcap), "-Y", "icmp"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "Echo" not in blind  # without the keys nothing inside is visible


def test_replayed_and_tampered_esp_are_dropped_and_counted(topology: Any, tmp_path: Path) -> None:
    west, east, _w, e = pair(topology, tmp_path)
    assert ping(west, "10.231.1.1", "10.231.2.1", count=3) >= 2
    sniffer = east.popen(sys.executable, "-c", SNIFF, stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    assert ping(west, "10.231.1.1", "10.231.2.1", count=1) == 1
    captured = bytes.fromhex(sniffer.communicate(timeout=20)[0].strip())
    assert captured[9] == 50  # an IPv4 packet carrying ESP from west
    before = e.sas()[0]["children"][0]
    west.run(sys.executable, "-c", INJECT, captured.hex(), "10.231.0.2")  # the same packet again
    wait_for(lambda: e.sas()[0]["children"][0].get("drop_replay") == 1, what="the replay drop")
    tampered = bytearray(captured)
    tampered[-20] ^= 0x01  # inside the ciphertext, same (already seen) sequence number
    west.run(sys.executable, "-c", INJECT, bytes(tampered).hex(), "10.231.0.2")
    wait_for(
        lambda: e.sas()[0]["children"][0].get("drop_replay") == 2, what="the tampered copy dropped as replay"
    )
    # the replay check comes first (RFC 4303 3.4.3); with an unseen sequence number a forged
    # packet reaches the ICV check
    forged = bytearray(captured)
    ihl = (forged[0] & 0x0F) * 4
    forged[ihl + 4 : ihl + 8] = (0x7FFFFFF0).to_bytes(4, "big")
    west.run(sys.executable, "-c", INJECT, bytes(forged).hex(), "10.231.0.2")
    after = wait_for(lambda: (c := e.sas()[0]["children"][0]).get("drop_icv") and c, what="the ICV drop")
    assert after["drop_icv"] == 1 and after["packets_in"] == before["packets_in"]
    assert ping(west, "10.231.1.1", "10.231.2.1", count=2) == 2  # the tunnel still works


def test_traffic_without_policy_stays_clear(topology: Any, tmp_path: Path) -> None:
    west, east, w, _e = pair(topology, tmp_path)
    assert ping(west, "10.231.0.1", "10.231.0.2", count=2) == 2  # gateway to gateway: no policy
    assert w.sas() == []  # ... and no tunnel was triggered
    assert ping(west, "10.231.1.1", "10.231.2.1", count=3) >= 2
    assert w.sas() and w.sas()[0]["children"]
    del east


def test_forced_encap_without_a_nat_carries_traffic(topology: Any, tmp_path: Path) -> None:
    """``encap = true`` on west only, no NAT (issue 17: ESP-in-UDP went to port 500, nothing
    arrived): both ends float to 4500 and the ping crosses ESP-in-UDP."""
    topo = topology()
    west, east = site_to_site(topo)
    conf = CONF.replace("[connections.gw.children.net]", "encap = true\n[connections.gw.children.net]")
    e = DaemonProcess(
        tmp_path,
        "east",
        CONF.format(
            local="10.231.0.2",
            remote="10.231.0.1",
            lnet="10.231.2.0/24",
            rnet="10.231.1.0/24",
            esp="aes128gcm16",
        ),
        netns=east.name,
    )
    topo.on_close(e.stop)
    w = DaemonProcess(
        tmp_path,
        "west",
        conf.format(
            local="10.231.0.1",
            remote="10.231.0.2",
            lnet="10.231.1.0/24",
            rnet="10.231.2.0/24",
            esp="aes128gcm16",
        ),
        netns=west.name,
    )
    topo.on_close(w.stop)
    assert ping(west, "10.231.1.1", "10.231.2.1", count=4) >= 3
    sw, se = w.sas()[0], e.sas()[0]
    assert sw["local"] == "10.231.0.1:4500" and se["local"] == "10.231.0.2:4500"
    assert sw["encap"] and se["encap"] and se["nat_remote"] and not sw["nat_local"]
    cw, ce = sw["children"][0], se["children"][0]
    assert cw["encap"] and ce["encap"]
    assert cw["packets_out"] >= 3 and ce["packets_in"] >= 3 and ce["packets_out"] >= 3


def test_snakeswan_capture_writes_what_wireshark_decrypts(topology: Any, tmp_path: Path) -> None:
    """`snakeswan capture -w FILE --keylog KEYS`: IKE and ESP in the pcap, and the -o options that
    make tshark decrypt both (Main Mode's ID payloads and the ICMP inside ESP)."""
    west, _east, w, _e = pair(topology, tmp_path, esp="aes256-sha256", keylog=True)
    pcap = tmp_path / "both.pcap"
    assert w.keylog_path is not None
    cmd = [sys.executable, "-m", "snakeswan.cli.main", "capture", "-w", str(pcap), "-i", "w0"]
    cmd += ["--duration", "8", "--keylog", str(w.keylog_path)]
    env = {
        "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    }
    cap = west.popen(*cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(1.5)
    assert ping(west, "10.231.1.1", "10.231.2.1", count=4) >= 3  # the first one triggers IKE
    out, err = cap.communicate(timeout=30)
    assert cap.returncode == 0, err
    line = out.strip().splitlines()[-1]
    assert line.startswith("wireshark -r ")
    opts = shlex.split(line)[3:]
    assert (tmp_path / "both.pcap.wireshark").read_text().count("-o") == len(opts) // 2
    text = subprocess.run(
        ["tshark", "-r", str(pcap), *opts, "-V"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "Echo (ping) request" in text and "ID_IPV4_ADDR: 10.231.0.2" in text
    blind = subprocess.run(
        ["tshark", "-r", str(pcap), "-V"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "Echo (ping) request" not in blind and "ID_IPV4_ADDR" not in blind
