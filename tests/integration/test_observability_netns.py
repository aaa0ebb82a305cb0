"""Issue 12 with real traffic: two daemons in namespaces with the data plane; the Prometheus
endpoint (inside west's namespace, on its loopback) shows per-IPsec-SA packet and byte counters that
move with pings; a capture of the IKE on the link, analysed with the daemon's key log, is decrypted,
named and explained with no problem found."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemons import ROOT, DaemonProcess, wait_for
from tests.netns import Netns, ping, site_to_site

pytestmark = pytest.mark.netns

CONF = """
[daemon]
{metrics}
[connections.gw]
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
proposals = ["aes128-sha256-modp2048"]
local = {{ auth = "psk" }}
remote = {{ auth = "psk" }}
[connections.gw.children.net]
local_ts = ["{lnet}"]
remote_ts = ["{rnet}"]
esp_proposals = ["aes128gcm16"]
start_action = "trap"
[secrets.ike-gw]
id = ["{local}", "{remote}"]
secret = "observability-netns-psk"
"""

SCRAPE = """
import sys, urllib.request
print(urllib.request.urlopen("http://127.0.0.1:9464/metrics", timeout=5).read().decode())
"""


def scrape(ns: Netns) -> dict[str, float]:
    text = ns.run(sys.executable, "-c", SCRAPE, timeout=20).stdout
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def packets(m: dict[str, float], direction: str) -> float:
    return sum(
        v
        for k, v in m.items()
        if k.startswith("snakeswan_ipsec_packets_total{") and f'direction="{direction}"' in k
    )


def test_metrics_move_with_traffic_and_the_capture_is_explained(topology: Any, tmp_path: Path) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    e = DaemonProcess(tmp_path, "east", CONF.format(metrics="", local="10.231.0.2", remote="10.231.0.1",
                      lnet="10.231.2.0/24", rnet="10.231.1.0/24"), netns=east.name)  # fmt: skip
    topo.on_close(e.stop)
    w = DaemonProcess(tmp_path, "west", CONF.format(metrics='metrics = "127.0.0.1:9464"', local="10.231.0.1",
                      remote="10.231.0.2", lnet="10.231.1.0/24", rnet="10.231.2.0/24"),
                      netns=west.name, keylog=True)  # fmt: skip
    topo.on_close(w.stop)
    pcap = tmp_path / "ike.pcapng"
    cap = subprocess.Popen(
        ["ip", "netns", "exec", west.name, "tshark", "-q", "-i", "w0", "-f", "udp port 500", "-w", str(pcap)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: pcap.exists() and pcap.stat().st_size > 0, timeout=15, what="tshark to capture")
        time.sleep(0.5)
        before = scrape(west)
        assert packets(before, "out") == 0 and before['snakeswan_ike_sas{state="established"}'] == 0
        assert ping(west, "10.231.1.1", "10.231.2.1", count=4) >= 3  # the first one triggers IKE
        m1 = scrape(west)
        assert m1['snakeswan_ike_sas{state="established"}'] == 1
        assert m1['snakeswan_ipsec_sas{state="installed"}'] == 1
        assert m1['snakeswan_ike_handshake_seconds_count{role="initiator"}'] == 1
        assert packets(m1, "out") >= 3 and packets(m1, "in") >= 3
        assert ping(west, "10.231.1.1", "10.231.2.1", count=5) == 5
        m2 = scrape(west)
        assert packets(m2, "out") >= packets(m1, "out") + 5 and packets(m2, "in") >= packets(m1, "in") + 5
        nbytes = [
            v
            for k, v in m2.items()
            if k.startswith("snakeswan_ipsec_bytes_total{") and 'direction="out"' in k
        ]
        assert nbytes and nbytes[0] >= 84 * packets(m2, "out")  # an IPv4 echo request is 84 bytes
        time.sleep(0.5)
    finally:
        cap.terminate()
        cap.wait(10)
    assert w.keylog_path is not None
    done = subprocess.run(
        [sys.executable, "-m", "snakeswan.cli.main", "analyze", str(pcap), "--keys", str(w.keylog_path),
         "--psk", "observability-netns-psk", "--explain"],
        capture_output=True, text=True, timeout=60, check=False, env={"PYTHONPATH": str(ROOT / "src")},
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, done.stderr
    assert "IKE SA #1: 10.231.0.1:500 (initiator) <-> 10.231.0.2:500" in out
    for label in ("MM1", "MM2", "MM3", "MM4", "MM5", "MM6", "QM1", "QM2", "QM3"):
        assert f" {label} " in out, label
    assert "[decrypted; HASH_I verified with the given PSK]" in out
    assert "[decrypted; HASH_R verified with the given PSK]" in out
    assert "problems: none found" in out, out
