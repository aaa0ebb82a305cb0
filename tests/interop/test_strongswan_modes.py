"""What strongSwan 5.9.8 with kernel-libipsec does beyond ESP in tunnel mode over IPv4.

kernel-libipsec (``libipsec/ipsec_sa.c``) creates ESP SAs in tunnel mode only, always
UDP-encapsulated: a transport-mode SA fails with "IPsec SA: unsupported mode", an AH SA with
"IPsec SA: protocol not supported". IKE does not know that beforehand: Quick Mode selects the
proposal and completes, and only installing the SA fails. Then (``ikev1/tasks/quick_mode.c``)

- strongSwan as the responder sends a Delete naming the initiator's SPI (its ``spi_i``, i.e. our
  *inbound* SPI, not the SPI it would have received on);
- strongSwan as the initiator never sends QM3, but an INFORMATIONAL with N(NO_PROPOSAL_CHOSEN).

These tests pin that behaviour down and check that snakeswan stays up, says what happened and keeps
no half SA where it can tell. IPv6 does work: ESP-in-UDP over IPv6 with IPv6 and IPv4 inside.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.daemons import DaemonProcess, wait_for
from tests.interop.strongswan import Charon, children, psk_secret, swanctl_conf, swanctl_conn
from tests.netns import Netns, ping, site_to_site
from tests.traffic import PSK, child, config, ping6, site_to_site6, tcp_transfer

pytestmark = [pytest.mark.interop, pytest.mark.netns]

WEST, EAST = "10.231.0.1", "10.231.0.2"
WEST6, EAST6 = "fdad:231::1", "fdad:231::2"
NETS = {
    4: ("10.231.1.0/24", "10.231.2.0/24", "10.231.1.1", "10.231.2.1"),
    6: ("fdad:231:1::/64", "fdad:231:2::/64", "fdad:231:1::1", "fdad:231:2::1"),
}


def start(
    charon_factory: Any,
    topo: Any,
    tmp_path: Path,
    west: Netns,
    east: Netns,
    *,
    mode: str = "tunnel",
    ah: bool = False,
    outer: int = 4,
    inner: int = 4,
) -> tuple[DaemonProcess, Charon]:
    """strongSwan in ``east``, snakeswan in ``west``, one child ``net`` on both."""
    w_addr, e_addr = (WEST, EAST) if outer == 4 else (WEST6, EAST6)
    lan_w, lan_e, _, _ = NETS[inner]
    ts: dict[str, Any] = {} if mode == "transport" else {"local_ts": lan_e, "remote_ts": lan_w}
    theirs = swanctl_conn(
        "gw",
        local_addrs=e_addr,
        remote_addrs=w_addr,
        mode=mode,
        esp_proposals="aes128gcm16",
        ah_proposals="sha256" if ah else None,
        **ts,
    )
    charon = charon_factory(east, "east", swanctl_conf(theirs, secrets=[psk_secret(PSK, w_addr, e_addr)]))
    ours: dict[str, Any] = {"mode": mode}
    if mode != "transport":
        ours |= {"local_ts": [lan_w], "remote_ts": [lan_e]}
    ours |= {"ah_proposals": ["sha256"]} if ah else {"esp_proposals": ["aes128gcm16"]}
    d = DaemonProcess(tmp_path, "west", config(w_addr, e_addr, child("net", **ours)), netns=west.name)
    topo.on_close(d.stop)
    return d, charon


def ike_established(d: DaemonProcess) -> bool:
    sas = d.sas()
    return bool(sas) and sas[0]["state"] == "ESTABLISHED"


# -- IPv6 -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("outer", "inner", "initiator"),
    [(6, 6, "snakeswan"), (6, 6, "strongswan"), (6, 4, "snakeswan"), (4, 6, "strongswan")],
)
def test_ipv6_traffic_with_strongswan(
    outer: int, inner: int, initiator: str, topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    topo = topology()
    west, east = site_to_site6(topo)
    d, charon = start(charon_factory, topo, tmp_path, west, east, outer=outer, inner=inner)
    if initiator == "snakeswan":
        d.cmd("up", conn="gw")
    else:
        charon.initiate("net", ike="gw")
    wait_for(lambda: d.sas() and d.sas()[0]["children"], what="the tunnel")
    _, _, src, dst = NETS[inner]
    assert (ping6 if inner == 6 else ping)(west, src, dst, count=4) == 4
    assert tcp_transfer(west, east, dst, src, 1 << 20) == 1 << 20
    sa = d.sas()[0]
    assert sa["remote"] == (f"[{EAST6}]:4500" if outer == 6 else f"{EAST}:4500")  # NAT-T (faked NAT)
    ch = sa["children"][0]
    assert ch["encap"] and ch["packets_out"] >= 100 and ch["packets_in"] >= 4
    assert (ch["local_ts"], ch["remote_ts"]) == NETS[inner][:2]
    (theirs,) = children(charon.list_sas_raw()[0])
    assert theirs["state"] == "INSTALLED" and theirs["mode"] == "TUNNEL" and theirs["encap"] == "yes"
    assert int(theirs["bytes-in"]) >= 1 << 20


# -- transport mode and AH: negotiated, then refused by kernel-libipsec ------------------------------------
@pytest.mark.parametrize("kind", ["transport", "ah"])
def test_strongswan_responder_deletes_what_libipsec_cannot_install(
    kind: str, topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    mode = "transport" if kind == "transport" else "tunnel"
    d, charon = start(charon_factory, topo, tmp_path, west, east, mode=mode, ah=kind == "ah")
    d.cmd("up", conn="gw")
    # Quick Mode completes on both sides ...
    m = charon.wait_log(r"sending DELETE for (ESP|AH) CHILD_SA with SPI ([0-9a-f]{8})")
    log = charon.log()
    assert (
        "selected proposal: " + ("ESP:AES_GCM_16_128" if kind == "transport" else "AH:HMAC_SHA2_256_128")
        in log
    )
    why = "IPsec SA: unsupported mode" if kind == "transport" else "IPsec SA: protocol not supported"
    assert why in log and "unable to install inbound and outbound IPsec SA (SAD) in kernel" in log
    assert children(charon.list_sas_raw()[0]) == []
    # ... and the Delete names the SPI *we* chose (our inbound SPI), not strongSwan's inbound one
    mine = re.search(r"child_sa_established .*spi_in=([0-9a-f]{8}) spi_out=([0-9a-f]{8})", d.log())
    assert mine is not None and m.group(2) == mine.group(1)
    assert m.group(1) == ("ESP" if kind == "transport" else "AH")
    # snakeswan stays up with its ISAKMP SA and says what happened
    assert d.proc.poll() is None and ike_established(d)
    if kind == "ah":
        # AH cannot be UDP-encapsulated (libipsec forces NAT-T): our data plane refuses it too, and
        # the daemon deletes the SA it could not install: no half SA
        wait_for(lambda: "AH cannot be UDP-encapsulated" in d.log(), what="our refusal")
        assert "could not be installed in the data plane" in d.log()
        wait_for(lambda: d.sas()[0]["children"] == [], what="the SA gone")
        assert "IPsec SA gw/net established" not in d.log()


def test_no_half_sa_after_strongswan_deletes_a_transport_sa(
    topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    d, charon = start(charon_factory, topo, tmp_path, west, east, mode="transport")
    d.cmd("up", conn="gw")
    charon.wait_log(r"sending DELETE for ESP CHILD_SA")
    wait_for(lambda: d.sas()[0]["children"] == [], timeout=5, what="our half SA deleted")


@pytest.mark.parametrize("kind", ["transport", "ah"])
def test_strongswan_initiator_answers_no_proposal_chosen(
    kind: str, topology: Any, charon_factory: Any, tmp_path: Path
) -> None:
    topo = topology()
    west, east = site_to_site(topo)
    mode = "transport" if kind == "transport" else "tunnel"
    d, charon = start(charon_factory, topo, tmp_path, west, east, mode=mode, ah=kind == "ah")
    cp = charon.initiate("net", ike="gw", check=False, timeout=10)
    assert cp.returncode != 0  # swanctl reports the failed CHILD_SA
    log = charon.log()
    assert "unable to install inbound and outbound IPsec SA (SAD) in kernel" in log
    assert re.search(r"generating INFORMATIONAL_V1 request \d+ \[ HASH N\(NO_PROP\) \]", log)
    assert "generating QUICK_MODE request" in log and log.count("[ HASH ]") == 0  # no QM3
    wait_for(lambda: "notify NO_PROPOSAL_CHOSEN received" in d.log(), what="the notify logged")
    # we answered QM1 with QM2 but install only on QM3, which never comes: nothing installed
    assert d.proc.poll() is None and ike_established(d)
    assert d.sas()[0]["children"] == []
    assert "IPsec SA gw/net established" not in d.log()
