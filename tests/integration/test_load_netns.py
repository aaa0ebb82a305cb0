"""``snakeswan load`` against a snakeswan gateway in namespaces: every simulated peer gets its
tunnel, with and without XAUTH + Mode Config, and the report says so."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.daemons import ROOT, DaemonProcess
from tests.netns import site_to_site

pytestmark = pytest.mark.netns

GATEWAY = """
[connections.hub]
local_addrs = ["10.231.0.2"]
remote_addrs = ["%any"]
proposals = ["aes128-sha256-ecp256"]
{pools}
local = {{ auth = "psk", id = "hub.load" }}
remote-psk = {{ auth = "psk", round = 1 }}
{xauth}
[connections.hub.children.lan]
local_ts = ["10.231.2.0/24"]
esp_proposals = ["aes128gcm16"]
[secrets.ike-group]
secret = "load-psk"
{secrets}
"""


def load(ns: Any, *args: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "snakeswan.cli.main", "load", "10.231.0.2", "--local", "10.231.0.1"]
    cp = ns.run(*cmd, "--psk", "load-psk", "--json", "-q", *args, check=False, timeout=120,
                env={**os.environ, "PYTHONPATH": str(ROOT / "src")})  # fmt: skip
    assert cp.returncode in (0, 1), cp.stderr
    result: dict[str, Any] = json.loads(cp.stdout)
    return result


@pytest.mark.parametrize("remote_access", [False, True], ids=["psk", "xauth-modecfg"])
def test_load_generator_brings_up_every_peer(remote_access: bool, topology: Any, tmp_path: Path) -> None:
    n = 60
    topo = topology()
    west, east = site_to_site(topo)
    users = "".join(f'[secrets.xauth-{i}]\nid = "user{i}"\nsecret = "pw{i}"\n' for i in range(n))
    conf = GATEWAY.format(
        pools='pools = ["p"]' if remote_access else "",
        xauth='remote-xauth = { auth = "xauth", round = 2 }' if remote_access else "",
        secrets=users + '[pools.p]\naddrs = "10.231.100.0/24"\n' if remote_access else "",
    )
    daemon = "\n[daemon]\ndataplane = false\nhalf_open_per_source = 1000  # every simulated peer comes from one address\n"
    gw = DaemonProcess(tmp_path, "east", conf + daemon, netns=east.name)
    topo.on_close(gw.stop)
    extra = ["--xauth-user", "user{i}", "--xauth-password", "pw{i}", "--vips"] if remote_access else []
    result = load(west, "-n", str(n), "--ike", "aes128-sha256-ecp256", "--remote-ts", "10.231.2.0/24", *extra)
    assert result["established"] == n and result["failed"] == 0, result
    assert result["per_second"] > 0 and set(result["latency_ms"]) == {"p50", "p90", "p99"}
    sas = gw.sas()
    assert len(sas) == n and all(s["children"] for s in sas)
    if remote_access:
        assert len({s["vips"][0] for s in sas}) == n
        assert {s["xauth_user"] for s in sas} == {f"user{i}" for i in range(n)}


@pytest.mark.parametrize("own_address", [False, True], ids=["ports", "addresses"])
def test_load_generator_in_two_processes(own_address: bool, topology: Any, tmp_path: Path) -> None:
    """``--procs 2``: two processes share the peers out (identities unique across them), each from
    its own UDP port of one address, or from an address of its own; one result counts them all."""
    n = 40
    topo = topology()
    west, east = site_to_site(topo)
    conf = GATEWAY.format(pools="", xauth="", secrets="")
    daemon = "\n[daemon]\ndataplane = false\nhalf_open_per_source = 1000\n"
    gw = DaemonProcess(tmp_path, "east", conf + daemon, netns=east.name)
    topo.on_close(gw.stop)
    local: tuple[str, ...] = ()
    if own_address:
        west.run("ip", "addr", "add", "10.231.0.3/24", "dev", "w0")
        local = ("--local", "10.231.0.1,10.231.0.3")  # the later --local wins
    args = ("-n", str(n), "--procs", "2", "--ike", "aes128-sha256-ecp256", "--remote-ts", "10.231.2.0/24")
    result = load(west, *args, *local)
    assert result["established"] == n and result["failed"] == 0 and result["started"] == n, result
    sas = gw.sas()
    assert len(sas) == n and all(s["children"] for s in sas)
    assert {s["remote_id"] for s in sas} == {f"peer{i}.load" for i in range(n)}
    sources = {tuple(s["remote"].rsplit(":", 1)) for s in sas}
    if own_address:
        assert sources == {("10.231.0.1", "500"), ("10.231.0.3", "500")}
    else:
        assert sources == {("10.231.0.1", "500"), ("10.231.0.1", "501")}


def test_load_generator_reusing_one_dh_key_pair(topology: Any, tmp_path: Path) -> None:
    """``--reuse-dh`` (MODP-2048, two processes): the gateway checks every peer as usual and every
    peer still gets its tunnel."""
    n = 30
    topo = topology()
    west, east = site_to_site(topo)
    conf = GATEWAY.format(pools="", xauth="", secrets="").replace("ecp256", "modp2048")
    gw = DaemonProcess(tmp_path, "east", conf + "\n[daemon]\ndataplane = false\nhalf_open_per_source = 1000\n",
                       netns=east.name)  # fmt: skip
    topo.on_close(gw.stop)
    args = ("-n", str(n), "--procs", "2", "--reuse-dh", "--remote-ts", "10.231.2.0/24")
    result = load(west, *args)
    assert result["established"] == n and result["failed"] == 0, result
    sas = gw.sas()
    assert len(sas) == n and all(s["children"] for s in sas)
    assert {s["remote_id"] for s in sas} == {f"peer{i}.load" for i in range(n)}
