"""Remote access with vpnc 0.5.3 (Debian's ``vpnc``), the open Cisco VPN Client, against our gateway
in namespaces, at vpnc's defaults: Aggressive Mode with a group name (ID_KEY_ID) and group secret,
MODP-1024, XAUTH, Mode Config pull with the Cisco Unity attributes (split include, banner, domain,
UNITY_PFS), its own userspace ESP over a TUN device, DPD, its ISAKMP SA renewal; behind a NAT,
RFC 3947 NAT-T.

vpnc never rekeys an IPsec SA itself: it proposes 2,147,483 s, the gateway lowers that
(RESPONDER-LIFETIME) and must rekey it. vpnc answers a gateway's Quick Mode by switching both
directions to the new pair at once; two of its habits are met on our side (the 20-byte nonce of
``ike/quick_mode.py``, the switch on the peer's first packet in ``ipsec/processor.py``).

vpnc's own ``vpnc-script`` would rewrite the machine's ``/etc/resolv.conf``: the tests give it a
script of their own that sets the address and split routes on its TUN device and writes down
what vpnc was given.

    west 10.231.0.1 (vpnc)  ===  east 10.231.0.2 (the gateway, LAN 10.231.2.1/24)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.daemons import DaemonProcess, wait_for
from tests.interop.strongswan import Credential, Pki
from tests.interop.test_strongswan_remote_access import _masquerade
from tests.netns import Netns, ping, protected, site_to_site, veth

pytestmark = [pytest.mark.interop, pytest.mark.netns]

WEST, EAST = "10.231.0.1", "10.231.0.2"
LAN_E, LAN_HOST = "10.231.2.0/24", "10.231.2.1"
POOL, FIRST_VIP = "10.231.100.0/24", "10.231.100.1"
GROUP, GROUP_SECRET = "ssw-group", "ssw-group-secret"
TUN = "sswvpnc0"

# the connect script: vpnc's environment written down, the virtual IP and split routes set
SCRIPT = """#!/bin/sh
env | grep -E '^(reason|TUNDEV|VPNGATEWAY|INTERNAL_IP4_|CISCO_)' | sort > "$SSW_VPNC_DIR/env.$reason"
if [ "$reason" = connect ]; then
  ip link set dev "$TUNDEV" up mtu 1300
  ip addr add "$INTERNAL_IP4_ADDRESS/32" dev "$TUNDEV"
  i=0
  while [ "$i" -lt "${CISCO_SPLIT_INC:-0}" ]; do
    eval net=\\$CISCO_SPLIT_INC_${i}_ADDR/\\$CISCO_SPLIT_INC_${i}_MASKLEN
    ip route add "$net" dev "$TUNDEV" src "$INTERNAL_IP4_ADDRESS"
    i=$((i + 1))
  done
fi
"""


def gateway(
    addr: str = EAST,
    *,
    pfs: bool = False,
    password: str = "alice-password",
    ike_life: str = "",
    hybrid: Credential | None = None,
    dpd: bool = False,
) -> str:
    """A Cisco-style remote-access gateway for vpnc's defaults; IPsec SAs lowered to 24 s, so the
    gateway rekeys each one after 14 s (``ike/lifetimes.py``: 10 s before the end). ``hybrid``:
    the gateway signs with this certificate, the client has XAUTH only (vpnc sends no CERTREQ:
    ``send_cert = "always"``, as strongSwan needs for it too)."""
    # two transforms: a rekey we start offers the one in use alone, as vpnc wants
    esp = '"aes256-sha1-modp1024", "aes128-sha1-modp1024"' if pfs else '"aes256-sha1", "aes128-sha1"'
    auth = f"""local = {{ auth = "psk", id = "{addr}" }}
remote-psk = {{ auth = "psk", round = 1, id = "keyid:{GROUP}" }}
remote-xauth = {{ auth = "xauth", round = 2 }}"""
    if hybrid is not None:
        auth = (
            f'send_cert = "always"\nlocal = {{ auth = "pubkey", certs = ["{hybrid.cert}"] }}\n'
            f'remote = {{ auth = "xauth" }}\n[secrets.private-gw]\nfile = "{hybrid.key}"'
        )
    return f"""
[connections.rw]
local_addrs = ["{addr}"]
remote_addrs = ["%any"]
aggressive = true
proposals = ["aes256-sha1-modp1024"]
pools = ["rwpool"]
pull = true
{f'rekey_time = "{ike_life}"' if ike_life else ""}
{'dpd_delay = "2s"' if dpd else ""}
{auth}
[connections.rw.children.net]
local_ts = ["{LAN_E}"]
esp_proposals = [{esp}]
rekey_time = "20s"
life_time = "24s"
[pools.rwpool]
addrs = "{POOL}"
dns = ["10.231.2.53"]
split_include = ["{LAN_E}"]
banner = "welcome to the lab"
default_domain = "lab.example"
[secrets.ike-group]
id = "keyid:{GROUP}"
secret = "{GROUP_SECRET}"
[secrets.xauth-alice]
id = "alice"
secret = "{password}"
"""


class Vpnc:
    """vpnc in the foreground in namespace ``ns`` (its log in ``tmp/vpnc.log``)."""

    def __init__(
        self, ns: Netns, tmp: Path, gateway_addr: str, local: str | None = None, ca: Path | None = None
    ) -> None:
        if shutil.which("vpnc") is None:
            pytest.fail("vpnc is not installed (scripts/setup.sh installs it)")
        self.dir = tmp
        script = tmp / "vpnc-connect.sh"
        script.write_text(SCRIPT)
        script.chmod(0o755)
        conf = tmp / "vpnc.conf"
        conf.write_text(
            f"IPSec gateway {gateway_addr}\nIPSec ID {GROUP}\nIPSec secret {GROUP_SECRET}\n"
            "Xauth username alice\nXauth password alice-password\n"
            + (f"IKE Authmode hybrid\nCA-File {ca}\n" if ca is not None else "")
        )
        conf.chmod(0o600)
        self.log_path = tmp / "vpnc.log"
        args = ["--no-detach", "--debug", "2", "--pid-file", str(tmp / "vpnc.pid"), "--ifname", TUN]
        args += ["--script", str(script)] + (["--local-addr", local] if local else [])
        env = {**os.environ, "SSW_VPNC_DIR": str(tmp)}
        with self.log_path.open("w") as out:
            # line-buffered: the test reads the log while vpnc runs
            self.proc = ns.popen(
                "stdbuf", "-oL", "vpnc", *args, str(conf), stdout=out, stderr=subprocess.STDOUT, env=env
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def env(self, reason: str = "connect") -> dict[str, str]:
        path = self.dir / f"env.{reason}"
        lines = path.read_text().splitlines() if path.exists() else []
        return dict(line.split("=", 1) for line in lines if "=" in line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _start(topo: Any, ns: Netns, gw: DaemonProcess, tmp: Path, gateway_addr: str, **kw: Any) -> Vpnc:
    vpnc = Vpnc(ns, tmp, gateway_addr, **kw)
    topo.on_close(vpnc.stop)
    return vpnc


@pytest.mark.parametrize("pfs", [False, True], ids=["no-pfs", "pfs"])
def test_vpnc_at_its_defaults_through_a_gateway_rekey(pfs: bool, topology: Any, tmp_path: Path) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    gw = DaemonProcess(tmp_path, "east", gateway(pfs=pfs), netns=east.name)
    topo.on_close(gw.stop)
    vpnc = _start(topo, west, gw, tmp_path, EAST, local=WEST)
    [sa] = wait_for(lambda: [s for s in gw.sas() if s["children"]], timeout=30, what="the gateway's IPsec SA")
    assert (sa["mode"], sa["remote_id"], sa["xauth_user"], sa["vips"]) == (
        "aggressive",
        f"keyid:{GROUP}",
        "alice",
        [FIRST_VIP],
    )
    assert sa["proposal"] == "AES_CBC_256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024"
    [child] = sa["children"]
    assert (child["local_ts"], child["remote_ts"]) == (LAN_E, f"{FIRST_VIP}/32")
    assert child["life_seconds"] == 24  # vpnc's 2,147,483 s lowered
    assert (
        child["proposal"].startswith("AES_CBC_256/HMAC_SHA1_96") and ("MODP_1024" in child["proposal"]) == pfs
    )
    env = wait_for(vpnc.env, what="vpnc's connect script")
    assert env["INTERNAL_IP4_ADDRESS"] == FIRST_VIP and env["INTERNAL_IP4_DNS"] == "10.231.2.53"
    assert env["CISCO_BANNER"] == "welcome to the lab" and env["CISCO_DEF_DOMAIN"] == "lab.example"
    assert (env["CISCO_SPLIT_INC"], env["CISCO_SPLIT_INC_0_ADDR"], env["CISCO_SPLIT_INC_0_MASKLEN"]) == (
        "1",
        "10.231.2.0",
        "24",
    )
    assert f"got pfs setting: {int(pfs)}" in vpnc.log()  # UNITY_PFS

    # 18 s of pings from the virtual IP to the gateway's LAN: the gateway rekeys after 14 s
    sent = 180
    got = ping(west, FIRST_VIP, LAN_HOST, count=sent, interval=0.1, timeout=sent * 0.1 + 15)
    wait_for(lambda: "deleted: rekeyed" in gw.log(), what="the old pair's end, 5 s after the rekey")
    log = gw.log()
    assert len(re.findall(r"IPsec SA rw/net established", log)) >= 2, "the gateway did not rekey"
    assert "drop reason=icv" not in log  # vpnc keyed the rekey as we did
    # a reply we sent on the old pair after vpnc had switched (it keeps one pair) can be lost
    assert got >= sent - 1, f"{sent - got} of {sent} pings lost"
    assert "R_U_THERE received" in log  # vpnc's DPD, answered

    vpnc.stop()
    wait_for(lambda: not gw.sas(), what="the gateway to delete the IKE SA vpnc deleted")
    [pool] = gw.cmd("list-pools")
    assert pool["leases"] == [{"identity": "alice", "address": FIRST_VIP, "online": False}]


def test_vpnc_renews_its_isakmp_sa_and_traffic_goes_on(topology: Any, tmp_path: Path) -> None:
    """vpnc renews its ISAKMP SA at 80 % of the lifetime the gateway gave it (22 s here): a new
    Aggressive Mode and XAUTH, then it waits for our RESPONDER-LIFETIME and deletes the old SA
    with a Delete that names the new one. The gateway keeps the new SA, moves the IPsec SA and
    the lease to it, and rekeys the IPsec SA under it; no ping is lost."""
    topo = topology()
    west, east = site_to_site(topo)
    gw = DaemonProcess(tmp_path, "east", gateway(ike_life="20s"), netns=east.name)
    topo.on_close(gw.stop)
    vpnc = _start(topo, west, gw, tmp_path, EAST, local=WEST)
    [first] = wait_for(
        lambda: [s for s in gw.sas() if s["children"]], timeout=30, what="the gateway's IPsec SA"
    )
    assert first["lifetime"] == 22  # vpnc's 2,147,483 s lowered
    # 36 s: the gateway rekeys the IPsec SA after 14 s, vpnc renews after ~18 s, the gateway
    # rekeys the IPsec SA again (under the new ISAKMP SA) after 30-34 s
    sent = 360
    got = ping(west, FIRST_VIP, LAN_HOST, count=sent, interval=0.1, timeout=sent * 0.1 + 15)
    log = gw.log()
    assert "delete_names_the_new_sa sa=2 old=1" in log and "ike_renewed old=1 new=2" in log
    assert log.rindex("IPsec SA rw/net established") > log.index("ike_renewed"), "no rekey under the new SA"
    sa = next(s for s in gw.sas() if s["children"])
    assert sa["id"] >= 2 and sa["xauth_user"] == "alice" and sa["vips"] == [FIRST_VIP]
    assert {c["remote_ts"] for c in sa["children"]} == {f"{FIRST_VIP}/32"}  # (the old pair may overlap)
    assert gw.cmd("list-pools")[0]["leases"] == [{"identity": "alice", "address": FIRST_VIP, "online": True}]
    assert "drop reason=icv" not in log and "no response from target" not in vpnc.log()
    assert got >= sent - 1, f"{sent - got} of {sent} pings lost"


def test_vpnc_hybrid_authentication(topology: Any, tmp_path: Path) -> None:
    """Hybrid (draft-ietf-ipsec-isakmp-hybrid-auth): the gateway signs Aggressive Mode with its
    RSA certificate, which vpnc checks against the CA it was given; vpnc proves itself by XAUTH
    only (HybridInitRSA, 64221)."""
    pki = Pki(tmp_path / "pki")
    ca, cert = pki.ca(), pki.host("gw.sw-lab", san=["gw.sw-lab", EAST])
    topo = topology()
    west, east = site_to_site(topo)
    gw = DaemonProcess(tmp_path, "east", gateway(hybrid=cert), netns=east.name)
    topo.on_close(gw.stop)
    vpnc = _start(topo, west, gw, tmp_path, EAST, local=WEST, ca=ca.cert)
    [sa] = wait_for(lambda: [s for s in gw.sas() if s["children"]], timeout=30, what="the gateway's IPsec SA")
    assert sa["xauth_user"] == "alice" and sa["vips"] == [FIRST_VIP]
    assert "IKE SA selected hybrid(rsa)-aes256-sha1" in vpnc.log()
    assert "CN=gw.sw-lab" in sa["local_id"]
    wait_for(vpnc.env, what="vpnc's connect script")
    assert ping(west, FIRST_VIP, LAN_HOST, count=10, interval=0.1) >= 9


def test_vpnc_with_a_wrong_password_gets_nothing(topology: Any, tmp_path: Path) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    gw = DaemonProcess(tmp_path, "east", gateway(password="not-alices-password"), netns=east.name)
    topo.on_close(gw.stop)
    vpnc = _start(topo, west, gw, tmp_path, EAST, local=WEST)
    assert vpnc.proc.wait(30) != 0
    wait_for(lambda: "XAUTH check of 'alice' failed" in gw.log(), what="the gateway's XAUTH refusal")
    assert not [s for s in gw.sas() if s["children"]]
    assert gw.cmd("list-pools")[0]["leases"] == []
    assert not vpnc.env()  # vpnc never got to configure anything


def test_vpnc_behind_a_nat(topology: Any, tmp_path: Path) -> None:
    """vpnc behind nftables masquerade (UDP ports rewritten): RFC 3947 NAT-T, ESP in UDP 4500; the
    gateway's DPD answered through the NAT."""
    topo = topology()
    client, nat, gw_ns = topo.add("c1"), topo.add("nat1"), topo.add("gw")
    veth(client, "c0", "10.231.10.2/24", nat, "n1", "10.231.10.1/24")
    veth(nat, "n0", "10.231.20.1/24", gw_ns, "g0", "10.231.20.2/24")
    protected(gw_ns, "10.231.2.1/24")
    client.run("ip", "route", "add", "10.231.20.0/24", "via", "10.231.10.1")
    _masquerade(nat, "n0")
    gw = DaemonProcess(tmp_path, "gw", gateway("10.231.20.2", dpd=True), netns=gw_ns.name)
    topo.on_close(gw.stop)
    vpnc = _start(topo, client, gw, tmp_path, "10.231.20.2")
    [sa] = wait_for(lambda: [s for s in gw.sas() if s["children"]], timeout=30, what="the gateway's IPsec SA")
    assert sa["nat_remote"] and sa["encap"] and sa["remote"].startswith("10.231.20.1:")
    assert sa["remote"] != "10.231.20.1:500"  # the NAT's port, after the float to 4500
    assert sa["children"][0]["encap"]
    wait_for(vpnc.env, what="vpnc's connect script")
    assert ping(client, FIRST_VIP, LAN_HOST, count=10, interval=0.1) >= 9
    assert "NAT-T" in vpnc.log() and sa["children"][0]["remote_ts"] == f"{FIRST_VIP}/32"
    # our DPD (2 s of silence) through the NAT: vpnc answers
    wait_for(lambda: "dpd_ack" in gw.log(), what="vpnc's R-U-THERE-ACK")
