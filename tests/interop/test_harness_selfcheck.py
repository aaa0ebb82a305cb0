"""The interop harness proves itself with strongSwan on both sides.

west (10.231.0.1, LAN 10.231.1.0/24) and east (10.231.0.2, LAN 10.231.2.0/24) in fresh namespaces;
IKEv1 PSK (Main and Aggressive Mode) aes128-sha256-modp2048, ESP aes128gcm16-modp2048 tunnel;
west initiates; both sides must list the same IKE SA and crossed SPIs; a ping between the LANs
goes through kernel-libipsec; a terminate from west removes east's SAs. Also: the list-sas parser
on recorded output, namespace teardown and stale cleanup, certificates with pki.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.interop.strongswan import (
    AGGRESSIVE_PSK_OPT_IN,
    Pki,
    children,
    find_sa,
    parse_list_sas,
    parse_vici_dump,
    psk_secret,
    require_strongswan,
    swanctl_conf,
    swanctl_conn,
)
from tests.netns import OWNERS_DIR, Netns, cleanup_stale, list_namespaces, ping, site_to_site

WEST, EAST = "10.231.0.1", "10.231.0.2"
WEST_LAN, EAST_LAN = "10.231.1.0/24", "10.231.2.0/24"
WEST_HOST, EAST_HOST = "10.231.1.1", "10.231.2.1"
PSK = "harness-selfcheck-psk"

# swanctl --list-sas --raw, recorded on the initiator (west) of the Main Mode test
RAW_SAMPLE = (
    "list-sa event {tun {uniqueid=1 version=1 state=ESTABLISHED local-host=10.231.0.1 local-port=4500 "
    "local-id=10.231.0.1 remote-host=10.231.0.2 remote-port=4500 remote-id=10.231.0.2 initiator=yes "
    "initiator-spi=2fabf52fb65b6eb7 responder-spi=0239d7737db1a014 nat-remote=yes nat-any=yes "
    "encr-alg=AES_CBC encr-keysize=128 integ-alg=HMAC_SHA2_256_128 prf-alg=PRF_HMAC_SHA2_256 "
    "dh-group=MODP_2048 established=0 rekey-time=14384 child-sas {net-1 {name=net uniqueid=1 reqid=1 "
    "state=INSTALLED mode=TUNNEL protocol=ESP encap=yes spi-in=54ee7c4e spi-out=cff11206 "
    "encr-alg=AES_GCM_16 encr-keysize=128 dh-group=MODP_2048 bytes-in=0 packets-in=0 bytes-out=0 "
    "packets-out=0 rekey-time=3449 life-time=3960 install-time=0 local-ts=[10.231.1.0/24] "
    "remote-ts=[10.231.2.0/24]}}}}\n"
    "list-sas reply {}\n"
)
# swanctl --list-conns --raw: a value with a space, empty lists
RAW_CONNS = (
    "list-conn event {tun {local_addrs=[10.231.0.1] remote_addrs=[10.231.0.2] version=IKEv1 "
    "reauth_time=0 rekey_time=14400 unique=UNIQUE_NO local-1 {class=pre-shared key groups=[] "
    "cert_policy=[] certs=[] cacerts=[]} remote-1 {class=pre-shared key id=C=CH, O=snakeswan, CN=east "
    "groups=[] cert_policy=[] certs=[] cacerts=[]} children {net {mode=TUNNEL rekey_time=3600 "
    "local-ts=[10.231.1.0/24 10.231.3.0/24] remote-ts=[10.231.2.0/24]}}}}\n"
    "list-conns reply {}\n"
)


# -- parser on recorded output (no root needed) -----------------------------------------------------
def test_parse_list_sas_recorded() -> None:
    (sa,) = parse_list_sas(RAW_SAMPLE)
    assert sa["name"] == "tun"
    assert sa["state"] == "ESTABLISHED"
    assert (sa["initiator-spi"], sa["responder-spi"]) == ("2fabf52fb65b6eb7", "0239d7737db1a014")
    assert (sa["local-host"], sa["local-port"], sa["remote-port"]) == (WEST, "4500", "4500")
    assert sa["nat-remote"] == "yes" and "nat-local" not in sa
    (child,) = children(sa)
    assert child["name"] == "net"
    assert (child["state"], child["mode"], child["protocol"], child["encap"]) == (
        "INSTALLED",
        "TUNNEL",
        "ESP",
        "yes",
    )
    assert (child["spi-in"], child["spi-out"]) == ("54ee7c4e", "cff11206")
    assert child["local-ts"] == [WEST_LAN] and child["remote-ts"] == [EAST_LAN]
    assert parse_list_sas("list-sas reply {}\n") == []


def test_parse_vici_dump_values_with_spaces() -> None:
    (label, tree), (label2, reply) = parse_vici_dump(RAW_CONNS)
    assert (label, label2, reply) == ("list-conn event", "list-conns reply", {})
    tun = tree["tun"]
    assert tun["local-1"]["class"] == "pre-shared key"
    assert tun["local-1"]["groups"] == []
    assert tun["remote-1"]["id"] == "C=CH, O=snakeswan, CN=east"
    assert tun["children"]["net"]["local-ts"] == [WEST_LAN, "10.231.3.0/24"]


# -- namespaces ---------------------------------------------------------------------------------------
@pytest.mark.netns
def test_topology_teardown_kills_and_deletes(topology: Any) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    assert ping(west, WEST, EAST, count=2, timeout=5) == 2
    sleeper = west.popen("sleep", "300")
    names = [west.name, east.name]
    assert all(n.startswith("ssw") and n in list_namespaces() for n in names)
    topo.close()
    assert sleeper.poll() is not None
    assert not any(n in list_namespaces() for n in names)


@pytest.mark.netns
def test_cleanup_stale_removes_only_orphans(topology: Any) -> None:
    live = topology()
    live.add("live")
    orphan = topology()
    ns = orphan.add("orphan")
    ns.popen("sleep", "300")
    (OWNERS_DIR / orphan.tag).unlink()  # as if its test process had been killed
    cleanup_stale()  # (a parallel run may have removed it first: only check the outcome)
    assert ns.name not in list_namespaces()
    assert live["live"].name in list_namespaces()
    assert not ns.pids()


# -- strongSwan <-> strongSwan --------------------------------------------------------------------------
def _site_confs(aggressive: bool) -> tuple[str, str]:
    ids = ("west.sw-lab", "east.sw-lab") if aggressive else (None, None)
    secret = [psk_secret(PSK, *(ids if aggressive else (WEST, EAST)))]
    common: dict[str, Any] = {
        "aggressive": aggressive,
        "proposals": "aes128-sha256-modp2048",
        "esp_proposals": "aes128gcm16-modp2048",
        "mode": "tunnel",
        "ike_rekey_time": "4h",
        "rekey_time": "1h",
    }
    west = swanctl_conn(
        "tun",
        local_addrs=WEST,
        remote_addrs=EAST,
        local_id=ids[0],
        remote_id=ids[1],
        local_ts=WEST_LAN,
        remote_ts=EAST_LAN,
        **common,
    )
    east = swanctl_conn(
        "tun",
        local_addrs=EAST,
        remote_addrs=WEST,
        local_id=ids[1],
        remote_id=ids[0],
        local_ts=EAST_LAN,
        remote_ts=WEST_LAN,
        **common,
    )
    return swanctl_conf(west, secrets=secret), swanctl_conf(east, secrets=secret)


def _assert_tunnel(west_sas: list[dict[str, Any]], east_sas: list[dict[str, Any]]) -> None:
    w, e = find_sa(west_sas, "tun"), find_sa(east_sas, "tun")
    assert w and e, (west_sas, east_sas)
    for sa, local, remote in ((w, WEST, EAST), (e, EAST, WEST)):
        assert sa["state"] == "ESTABLISHED"
        assert sa["version"] == "1"
        assert (sa["local-host"], sa["remote-host"]) == (local, remote)
        # kernel-libipsec fakes NAT-D on both sides: floated to 4500, peer "behind NAT"
        assert (sa["local-port"], sa["remote-port"]) == ("4500", "4500")
        assert sa["nat-remote"] == "yes"
        assert (sa["encr-alg"], sa["encr-keysize"], sa["integ-alg"], sa["dh-group"]) == (
            "AES_CBC",
            "128",
            "HMAC_SHA2_256_128",
            "MODP_2048",
        )
    assert w.get("initiator") == "yes" and "initiator" not in e
    assert (w["initiator-spi"], w["responder-spi"]) == (e["initiator-spi"], e["responder-spi"])
    assert len(w["initiator-spi"]) == 16 and w["initiator-spi"] != "0" * 16
    (wc,), (ec,) = children(w), children(e)
    for c in (wc, ec):
        assert (c["name"], c["state"], c["mode"], c["protocol"], c["encap"]) == (
            "net",
            "INSTALLED",
            "TUNNEL",
            "ESP",
            "yes",
        )
        assert (c["encr-alg"], c["encr-keysize"], c["dh-group"]) == ("AES_GCM_16", "128", "MODP_2048")
        assert "integ-alg" not in c  # AEAD
        assert len(c["spi-in"]) == 8
    assert (wc["spi-in"], wc["spi-out"]) == (ec["spi-out"], ec["spi-in"])
    assert (wc["local-ts"], wc["remote-ts"]) == ([WEST_LAN], [EAST_LAN])
    assert (ec["local-ts"], ec["remote-ts"]) == ([EAST_LAN], [WEST_LAN])


_CLOCKS = {"established", "rekey-time", "reauth-time", "life-time", "install-time", "use-in", "use-out"}


def _no_clocks(tree: Any) -> Any:
    """A vici tree without its seconds counters (they differ between two calls a second apart)."""
    if isinstance(tree, dict):
        return {k: _no_clocks(v) for k, v in tree.items() if k not in _CLOCKS}
    if isinstance(tree, list):
        return [_no_clocks(v) for v in tree]
    return tree


@pytest.mark.interop
@pytest.mark.parametrize("mode", ["main", "aggressive"])
def test_strongswan_site_to_site(topology: Any, charon_factory: Any, mode: str) -> None:
    t0 = time.monotonic()
    aggressive = mode == "aggressive"
    topo = topology()
    west, east = site_to_site(topo)
    conf_w, conf_e = _site_confs(aggressive)
    # Aggressive Mode + PSK: only the responder needs the opt-in
    east_settings = {AGGRESSIVE_PSK_OPT_IN: True} if aggressive else {}
    cw = charon_factory(west, "west", conf_w, log_levels={"ike": 4, "chd": 4})  # keys in the log
    ce = charon_factory(east, "east", conf_e, settings=east_settings)

    out = cw.initiate("net", ike="tun", timeout=15)
    assert "initiate completed successfully" in out.stdout
    cw.wait_log(rf"initiating {'Aggressive' if aggressive else 'Main'} Mode IKE_SA tun\[1\]", timeout=1)
    ce.wait_log(r"CHILD_SA net\{1\} established", timeout=5)
    ce.wait_log(r"remote host is behind NAT", timeout=1)  # the faked NAT-D
    cw.wait_log(r"encryption key Ka => 16 bytes", timeout=1)
    assert "encryption key Ka" not in ce.log()  # default level 1 on east

    west_sas = cw.list_sas_raw()
    east_sas = ce.list_sas_raw()
    _assert_tunnel(west_sas, east_sas)
    # both parsers agree on live output
    raw = cw.swanctl("--list-sas", "--raw").stdout
    pretty = cw.swanctl("--list-sas", "--pretty").stdout
    # two calls: a clock value may tick between them
    assert [_no_clocks(t) for _, t in parse_vici_dump(raw)] == [
        _no_clocks(t) for _, t in parse_vici_dump(pretty)
    ]
    if aggressive:
        w = find_sa(west_sas, "tun")
        assert w and (w["local-id"], w["remote-id"]) == ("west.sw-lab", "east.sw-lab")

    assert ping(west, WEST_HOST, EAST_HOST, count=3, timeout=8) == 3
    e = find_sa(ce.list_sas_raw(), "tun")
    assert e and int(children(e)[0]["packets-in"]) >= 3

    mark = ce.log_mark()
    cw.terminate(ike="tun")
    ce.wait_sas(lambda sas: not sas, timeout=5)
    ce.wait_log(r"received DELETE for IKE_SA tun\[1\]", since=mark, timeout=1)
    assert cw.list_sas_raw() == []
    assert ping(west, WEST_HOST, EAST_HOST, count=1, timeout=2) == 0

    names = list(topo.namespaces.values())
    for c in (cw, ce):
        assert c.stop() is not None and not c.running()
    topo.close()
    assert not any(isinstance(n, Netns) and n.exists() for n in names)
    assert time.monotonic() - t0 < 30


@pytest.mark.interop
def test_pki_certificates(tmp_path: Path) -> None:
    require_strongswan()
    t0 = time.monotonic()
    pki = Pki(tmp_path / "pki", key_type="ecdsa")
    ca = pki.ca()
    west = pki.host("west.sw-lab")
    assert "CN=west.sw-lab" in west.dn and west.cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE")
    assert pki.verify(west)
    other = Pki(tmp_path / "other", key_type="ecdsa")
    assert not other.verify(west)
    assert ca.key.exists() and os.path.getsize(ca.cert) > 0
    assert time.monotonic() - t0 < 20


@pytest.mark.interop
def test_strongswan_main_mode_certificates(tmp_path: Path, topology: Any, charon_factory: Any) -> None:
    """Main Mode with RSA certificates from :class:`Pki` (MM5 goes out as IKEv1 fragments)."""
    t0 = time.monotonic()
    pki = Pki(tmp_path / "pki")
    ca, creds = pki.ca(), {h: pki.host(f"{h}.sw-lab") for h in ("west", "east")}
    west, east = site_to_site(topology())
    charons = {}
    for ns, me, peer, local, remote, lts, rts in (
        (west, "west", "east", WEST, EAST, WEST_LAN, EAST_LAN),
        (east, "east", "west", EAST, WEST, EAST_LAN, WEST_LAN),
    ):
        conn = swanctl_conn(
            "tun",
            local_addrs=local,
            remote_addrs=remote,
            auth="pubkey",
            local_id=creds[me].dn,
            remote_id=creds[peer].dn,
            local_ts=lts,
            remote_ts=rts,
            local_extra={"certs": f"{me}.sw-lab.crt"},
            remote_extra={"cacerts": "ca.crt"},
        )
        c = charon_factory(ns, me, swanctl_conf(conn), start=False)
        c.add_cert(ca.cert, "x509ca")
        c.add_cert(creds[me].cert, "x509")
        c.add_cert(creds[me].key, "rsa")
        c.start()
        c.load_all()
        charons[me] = c
    charons["west"].initiate("net", timeout=15)
    w = find_sa(charons["west"].list_sas_raw(), "tun", "ESTABLISHED")
    e = find_sa(charons["east"].list_sas_raw(), "tun", "ESTABLISHED")
    assert w and e and w["initiator-spi"] == e["initiator-spi"]
    assert w["remote-id"] == creds["east"].dn and e["remote-id"] == creds["west"].dn
    assert ping(west, WEST_HOST, EAST_HOST, count=2, timeout=5) == 2
    assert time.monotonic() - t0 < 30
