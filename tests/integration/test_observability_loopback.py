"""Issue 12 on two real daemons on loopback (no root): the Prometheus endpoint scraped over
loopback with counters that move with the negotiation; the sequence diagram drawn from a live
daemon and from its saved log; a proposal mismatch explained in the daemon's log at the default
level."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.daemons import ROOT, DaemonProcess, free_udp_ports, wait_for

CONF = """
[daemon]
port = {port}
nat_port = {nat_port}
dataplane = false
{metrics}
[connections.lo]
local_addrs = ["127.0.0.1"]
remote_addrs = ["127.0.0.1"]
remote_port = {peer_port}
proposals = ["{ike}"]
local = {{ auth = "psk", id = "127.0.0.1" }}
remote = {{ auth = "psk", id = "127.0.0.1" }}
[connections.lo.children.net]
local_ts = ["{lnet}"]
remote_ts = ["{rnet}"]
esp_proposals = ["aes128gcm16"]
[secrets.ike-lo]
id = ["127.0.0.1", "127.0.0.1"]
secret = "loopback-test-psk"
"""


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def configs(metrics_port: int, ike_b: str = "aes256-sha256-modp2048") -> tuple[str, str]:
    pa, na, pb, nb = free_udp_ports(4)
    a = CONF.format(port=pa, nat_port=na, peer_port=pb, ike="aes256-sha256-modp2048", lnet="10.231.1.0/24",
                    rnet="10.231.2.0/24", metrics=f'metrics = "127.0.0.1:{metrics_port}"')  # fmt: skip
    b = CONF.format(port=pb, nat_port=nb, peer_port=pa, ike=ike_b, lnet="10.231.2.0/24",
                    rnet="10.231.1.0/24", metrics="")  # fmt: skip
    return a, b


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run(
        [sys.executable, "-m", "snakeswan.cli.main", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )


def test_metrics_diagram_and_log_history(tmp_path: Path) -> None:
    mport = free_tcp_port()
    ca, cb = configs(mport)
    a = DaemonProcess(tmp_path, "a", ca, log_level="info")
    b = DaemonProcess(tmp_path, "b", cb)
    try:
        before = scrape(mport)
        assert before[("snakeswan_ike_sas", (("state", "established"),))] == 0
        assert ("snakeswan_ike_handshake_seconds_count", (("role", "initiator"),)) not in before
        a.cmd("up", conn="lo")
        wait_for(lambda: [s for s in a.sas() if s["children"]], what="A's IPsec SA")
        m = scrape(mport)
        assert m[("snakeswan_ike_sas", (("state", "established"),))] == 1
        assert m[("snakeswan_ipsec_sas", (("state", "established"),))] == 1
        assert m[("snakeswan_established_total", (("conn", "lo"), ("kind", "ike")))] == 1
        assert m[("snakeswan_established_total", (("conn", "net"), ("kind", "ipsec")))] == 1
        assert m[("snakeswan_ike_messages_total", (("direction", "sent"),))] == 5  # MM1 MM3 MM5 QM1 QM3
        assert m[("snakeswan_ike_messages_total", (("direction", "received"),))] == 4
        assert m[("snakeswan_ike_handshake_seconds_count", (("role", "initiator"),))] == 1
        assert 0 < m[("snakeswan_ike_handshake_seconds_sum", (("role", "initiator"),))] < 10
        # the counters move: a second IPsec SA under the same ISAKMP SA
        a.cmd("down", conn="lo", child="net")
        a.cmd("up", conn="lo", child="net")
        wait_for(lambda: a.sas()[0]["children"], what="the new IPsec SA")
        m2 = scrape(mport)
        assert m2[("snakeswan_established_total", (("conn", "net"), ("kind", "ipsec")))] == 2
        assert m2[("snakeswan_ike_messages_total", (("direction", "sent"),))] > 5
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"http://127.0.0.1:{mport}/other", timeout=5)
        # the diagram from the live daemon's kept records: every message in order
        r = cli("diagram", "--control", a.control)
        assert r.returncode == 0, r.stderr
        labels = [line.split("|", 1)[1].strip("-<>| .").split(" ")[0] for line in r.stdout.splitlines()
                  if line.rstrip().endswith("|") and ("->|" in line or "|<-" in line)]  # fmt: skip
        assert labels[:9] == ["MM1", "MM2", "MM3", "MM4", "MM5", "MM6", "QM1", "QM2", "QM3"]
        assert "INFO" in labels[9:] and labels[-3:] == ["QM1", "QM2", "QM3"]  # the Delete, then the new QM
        # the kept records, explained
        r = cli("log", "--control", a.control, "--history", "--no-follow", "--explain")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        mm1 = next(i for i, x in enumerate(lines) if x.startswith("ike: sent") and "msg=MM1" in x)
        assert lines[mm1 + 1].startswith("    = Main Mode 1/6, initiator: the SA offer.")
        qm3 = next(i for i, x in enumerate(lines) if x.startswith("ike: sent") and "msg=QM3" in x)
        assert "HASH(3)" in lines[qm3 + 1]
        # and from the saved log of the daemon, as HTML
        out = tmp_path / "a.html"
        r = cli("diagram", str(a.log_path), "--format", "html", "--sa", "1", "-o", str(out))
        assert r.returncode == 0, r.stderr
        page = out.read_text()
        assert page.count('class="message"') == len(labels) and "HASH(3)" in page
        # a reload that moves the endpoint is refused (it is bound at start), the running one stays
        a.config_path.write_text(a.config_path.read_text().replace(f":{mport}", f":{free_tcp_port()}"))
        with pytest.raises(Exception, match=r"daemon\.metrics: changing the endpoint needs a restart"):
            a.cmd("reload")
        assert scrape(mport)[("snakeswan_ike_sas", (("state", "established"),))] == 1
    finally:
        a.stop()
        b.stop()


def test_proposal_mismatch_explained_in_the_daemon_log(tmp_path: Path) -> None:
    ca, cb = configs(free_tcp_port(), ike_b="aes128-sha1-modp2048")
    a = DaemonProcess(tmp_path, "a", ca, log_level="info")
    b = DaemonProcess(tmp_path, "b", cb, log_level="info")
    try:
        a.cmd("up", conn="lo")

        # the trace record (exchange_failed) comes a moment before the operator's WARNING line
        def warning() -> str | None:
            return next((x for x in b.log().splitlines() if "WARNING" in x and "main_mode failed" in x), None)

        wait_for(lambda: warning() is not None, what="B's failure")
        line = warning()
        assert line is not None
        assert "transform 1 [cipher=AES_CBC keylen=256 hash=SHA2_256 group=MODP_2048" in line
        assert "vs ours 1 [cipher=AES_CBC keylen=128 hash=SHA group=MODP_2048" in line
        assert "first difference: keylen 256 != 128 (also hash SHA2_256 != SHA)" in line
    finally:
        a.stop()
        b.stop()
