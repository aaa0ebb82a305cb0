"""Issue 12: ``snakeswan analyze`` on a capture of the real strongSwan 5.9 negotiating with
snakeswan in namespaces (strongSwan initiates; its NAT-T float moves IKE to 4500 with the non-ESP
marker and ESP into UDP): with our key log every message is decrypted and named, strongSwan's
HASH_I and our HASH_R check with the PSK; without keys the clear part is still explained; a
strongSwan with another PSK is diagnosed from the capture."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemons import ROOT, DaemonProcess, wait_for
from tests.interop.test_strongswan_ike import (
    CELLS,
    PSK,
    bring_up,
    daemon_netns,
    snakeswan_conf,
    strongswan_conf,
)
from tests.netns import site_to_site

pytestmark = [pytest.mark.interop, pytest.mark.netns]


def capture_while(daemon: DaemonProcess, pcap: Path, action: Any) -> None:
    cap = subprocess.Popen(
        ["ip", "netns", "exec", daemon_netns(daemon), "tshark", "-q", "-i", "w0", "-f",
         "udp port 500 or udp port 4500", "-w", str(pcap)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: pcap.exists() and pcap.stat().st_size > 0, timeout=15, what="tshark to capture")
        time.sleep(0.5)
        action()
        time.sleep(0.5)
    finally:
        cap.terminate()
        cap.wait(10)


def analyze(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "snakeswan.cli.main", "analyze", *args],
        capture_output=True, text=True, timeout=60, check=False, env={"PYTHONPATH": str(ROOT / "src")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_strongswan_capture_decrypted_and_checked(topology: Any, charon_factory: Any, tmp_path: Path) -> None:
    charon, daemon = bring_up(CELLS[0], topology, charon_factory, tmp_path, keylog=True)
    pcap = tmp_path / "sw.pcapng"

    def negotiate() -> None:
        charon.initiate("net", ike="gw")
        wait_for(lambda: [s for s in daemon.sas() if s["children"]], what="our IPsec SA")

    capture_while(daemon, pcap, negotiate)
    assert daemon.keylog_path is not None
    out = analyze(str(pcap), "--keys", str(daemon.keylog_path), "--psk", PSK, "--explain")
    assert "IKE SA #1: 10.231.0.2:500 (initiator) <-> 10.231.0.1:500" in out, out
    for label in ("MM1", "MM2", "MM3", "MM4", "MM5", "MM6", "QM1", "QM2", "QM3"):
        assert f" {label} " in out, (label, out)
    assert "-> MM5" in out and "<- MM6" in out
    assert "HASH_I verified with the given PSK" in out and "HASH_R verified with the given PSK" in out
    assert "problems: none found" in out, out
    blind = analyze(str(pcap))
    assert "encrypted; no key" in blind and " MM1 " in blind and "problems: none found" in blind


def test_strongswan_with_another_psk_is_diagnosed(topology: Any, charon_factory: Any, tmp_path: Path) -> None:
    cell = CELLS[0]
    topo = topology()
    west, east = site_to_site(topo)
    charon = charon_factory(east, "east", strongswan_conf(cell).replace(PSK, "strongswan-has-another-key"))
    daemon = DaemonProcess(tmp_path, "west", snakeswan_conf(cell), netns=west.name, keylog=True)
    topo.on_close(daemon.stop)
    pcap = tmp_path / "bad.pcapng"

    def negotiate() -> None:
        charon.initiate("net", ike="gw", timeout=3, check=False)
        wait_for(lambda: "wrong PSK" in daemon.log(), timeout=15, what="our rejection of strongSwan's MM5")

    capture_while(daemon, pcap, negotiate)
    assert daemon.keylog_path is not None
    out = analyze(str(pcap), "--keys", str(daemon.keylog_path), "--psk", PSK)
    assert "MM5 does not decrypt with the logged key" in out, out


def test_strongswan_capture_decrypted_from_its_own_dh_secret(
    topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    """No key log from us: strongSwan's ``ike 4`` log hex-dumps g^xy; with the PSK that decrypts
    the whole capture and checks every Quick Mode HASH (the "PSK plus DH secrets" way of issue 12)."""
    cell = CELLS[0]
    topo = topology()
    west, east = site_to_site(topo)
    charon = charon_factory(east, "east", strongswan_conf(cell), log_levels={"ike": 4})
    daemon = DaemonProcess(tmp_path, "west", snakeswan_conf(cell), netns=west.name)
    topo.on_close(daemon.stop)
    pcap = tmp_path / "sw-dh.pcapng"

    def negotiate() -> None:
        charon.initiate("net", ike="gw")
        wait_for(lambda: [s for s in daemon.sas() if s["children"]], what="our IPsec SA")

    capture_while(daemon, pcap, negotiate)
    assert "shared Diffie Hellman secret" in charon.log_path.read_text()
    keys = tmp_path / "derived.keys"
    out = analyze(str(pcap), "--psk", PSK, "--dh-secrets", str(charon.log_path), "--write-keys", str(keys))
    assert "keys derived from a given DH secret" in out, out
    for which in ("HASH(1)", "HASH(2)", "HASH(3)"):
        assert f"{which} verified with SKEYID_a" in out, (which, out)
    assert "HASH_I verified with the given PSK" in out and "problems: none found" in out, out
    icookie = daemon.sas()[0]["icookie"]
    assert keys.read_text().startswith(f"{icookie},"), keys.read_text()
