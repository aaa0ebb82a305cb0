"""Two snakeswan daemons on loopback (no root needed): MM+QM through real UDP sockets, list-sas on
both sides, down, SIGTERM sends Delete."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.daemons import DaemonProcess, free_udp_ports, wait_for

CONF = """
[daemon]
port = {port}
nat_port = {nat_port}
dataplane = false  # both daemons share the host's network namespace: no TUN, no routes
[connections.lo]
local_addrs = ["127.0.0.1"]
remote_addrs = ["127.0.0.1"]
remote_port = {peer_port}
aggressive = {aggressive}
proposals = ["aes256-sha256-modp2048"]
local = {{ auth = "psk", id = "{lid}" }}
remote = {{ auth = "psk", id = "{rid}" }}
[connections.lo.children.net]
local_ts = ["{lnet}"]
remote_ts = ["{rnet}"]
esp_proposals = ["aes128gcm16-ecp256"]
[secrets.ike-lo]
id = ["{lid}", "{rid}"]
secret = "loopback-test-psk"
"""


def configs(aggressive: bool) -> tuple[str, str]:
    pa, na, pb, nb = free_udp_ports(4)
    ids = ("@a.test", "@b.test") if aggressive else ("127.0.0.1", "127.0.0.1")
    flag = str(aggressive).lower()
    a = CONF.format(
        port=pa,
        nat_port=na,
        peer_port=pb,
        aggressive=flag,
        lid=ids[0],
        rid=ids[1],
        lnet="10.231.1.0/24",
        rnet="10.231.2.0/24",
    )
    b = CONF.format(
        port=pb,
        nat_port=nb,
        peer_port=pa,
        aggressive=flag,
        lid=ids[1],
        rid=ids[0],
        lnet="10.231.2.0/24",
        rnet="10.231.1.0/24",
    )
    return a, b


@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
def test_two_daemons_on_loopback(tmp_path: Path, aggressive: bool) -> None:
    ca, cb = configs(aggressive)
    a = DaemonProcess(tmp_path, "a", ca, keylog=True)
    b = DaemonProcess(tmp_path, "b", cb)
    try:
        assert a.cmd("up", conn="lo")["ike_sa"] == 1
        sa_a = wait_for(lambda: [s for s in a.sas() if s["children"]], what="A's IPsec SA")[0]
        sa_b = wait_for(lambda: [s for s in b.sas() if s["children"]], what="B's IPsec SA")[0]
        assert sa_a["state"] == sa_b["state"] == "ESTABLISHED"
        assert (sa_a["icookie"], sa_a["rcookie"]) == (sa_b["icookie"], sa_b["rcookie"])
        assert sa_a["mode"] == sa_b["mode"] == ("aggressive" if aggressive else "main")
        assert (
            sa_a["proposal"]
            == sa_b["proposal"]
            == "AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048"
        )
        ch_a, ch_b = sa_a["children"][0], sa_b["children"][0]
        assert (ch_a["spi_in"], ch_a["spi_out"]) == (ch_b["spi_out"], ch_b["spi_in"])
        assert ch_a["proposal"] == ch_b["proposal"] == "AES_GCM_16_128/ECP_256/NO_EXT_SEQ"
        assert ch_a["local_ts"] == ch_b["remote_ts"] == "10.231.1.0/24"
        assert a.keylog_path is not None
        keys = a.keylog_path.read_text().splitlines()
        assert keys[0] == f"{sa_a['icookie']},{keys[0].split(',')[1]}" and len(keys) == 3
        assert f'"0x{ch_a["spi_out"]}"' in keys[1]
        # down CONN/CHILD deletes only the IPsec SA, on both sides
        assert a.cmd("down", conn="lo", child="net") == 1
        wait_for(lambda: not b.sas()[0]["children"], what="B to drop the deleted IPsec SA")
        assert len(b.sas()) == 1
        # up again under the same ISAKMP SA, then SIGTERM on B: A must see the Delete
        a.cmd("up", conn="lo", child="net")
        wait_for(lambda: b.sas()[0]["children"], what="a new IPsec SA")
        assert b.stop() == 0
        wait_for(lambda: a.sas() == [], what="A to drop the SAs B deleted on exit")
        assert "deleted by peer" in a.log()
    finally:
        a.stop()
        b.stop()


def test_control_errors(tmp_path: Path) -> None:
    ca, _ = configs(False)
    a = DaemonProcess(tmp_path, "a", ca)
    try:
        with pytest.raises(Exception, match="no connection named 'nope'"):
            a.cmd("up", conn="nope")
        with pytest.raises(Exception, match="no SA of lo to delete"):
            a.cmd("down", conn="lo")
        with pytest.raises(Exception, match="unknown command"):
            a.cmd("frobnicate")
        conns = a.cmd("list-conns")
        assert [c["name"] for c in conns] == ["lo"] and conns[0]["children"][0]["name"] == "net"
        # reload picks up a changed file
        a.config_path.write_text(a.config_path.read_text().replace("connections.lo", "connections.lo2"))
        assert a.cmd("reload") == ["lo2"]
    finally:
        assert a.stop() == 0


def test_rekey_command_and_close_action_start(tmp_path: Path) -> None:
    ca, cb = configs(False)
    ca = ca.replace(
        'esp_proposals = ["aes128gcm16-ecp256"]',
        'esp_proposals = ["aes128gcm16-ecp256"]\nclose_action = "start"',
    )
    a = DaemonProcess(tmp_path, "a", ca)
    b = DaemonProcess(tmp_path, "b", cb)
    try:
        with pytest.raises(Exception, match="no IPsec SA of lo to rekey"):
            b.cmd("rekey", conn="lo")
        a.cmd("up", conn="lo")
        first = wait_for(lambda: [c for s in b.sas() for c in s["children"]], what="B's IPsec SA")[0]
        # B answered the Quick Mode, but `rekey` works from either end; the old pair goes after 5 s
        assert b.cmd("rekey", conn="lo", child="net") == 1
        rekeyed = wait_for(
            lambda: (
                [c for s in b.sas() for c in s["children"] if c["spi_in"] != first["spi_in"]]
                and len(b.sas()[0]["children"]) == 1
                and len(a.sas()[0]["children"]) == 1
                and b.sas()[0]["children"]
            ),
            what="the rekeyed pair alone on both sides",
            timeout=20,
        )[0]
        ch_a = a.sas()[0]["children"][0]
        assert (ch_a["spi_in"], ch_a["spi_out"]) == (rekeyed["spi_out"], rekeyed["spi_in"])
        # B deletes the IPsec SA; A's close_action = "start" negotiates it again at once
        assert b.cmd("down", conn="lo", child="net") == 1
        again = wait_for(
            lambda: [c for s in a.sas() for c in s["children"] if c["spi_in"] != ch_a["spi_in"]],
            what="A to renegotiate the child B deleted",
        )[0]
        wait_for(lambda: b.sas()[0]["children"], what="B's new IPsec SA")
        assert b.sas()[0]["children"][0]["spi_in"] == again["spi_out"]
        assert len(a.sas()) == len(b.sas()) == 1  # under the same ISAKMP SA
    finally:
        a.stop()
        b.stop()
