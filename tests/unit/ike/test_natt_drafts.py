"""Draft NAT-T (draft-ietf-ipsec-nat-t-ike-02, -02\\n, -03) and Cisco Unity vendor IDs.

A peer that announces only a draft gets NAT-D as payload 130, NAT-OA as 131, the draft
encapsulation modes (61443/61444) and the float to port 4500; draft-00 alone means no NAT-T.
The pair tests make each engine look draft-only to the other by overwriting the RFC 3947 vendor
ID (and the other drafts) in the plaintext phase 1 messages with bytes of the same length (vendor
IDs are outside HASH_I/HASH_R), behind a NAT in front of A.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from snakeswan.crypto.algorithms import hash_by_name
from snakeswan.ike import natt, vendor
from snakeswan.ike.events import ChildSaEstablished, Datagram, IkeSaEstablished
from snakeswan.wire.enums import EncapsulationMode, ExchangeType, PayloadType
from snakeswan.wire.message import decode_header, decode_message
from snakeswan.wire.payloads import NatOaPayload, VendorIdPayload
from tests.pair import A_ADDR, B_ADDR, Pair, site_config
from tests.ra import client_addr, client_config, gateway_config
from tests.unit.ike.test_pair_remote_access import hub

LAN_A, LAN_B = "10.231.1.0/24", "10.231.2.0/24"
DRAFTS = {"02": vendor.NATT_DRAFTS[1], "02n": vendor.NATT_DRAFTS[2], "03": vendor.NATT_DRAFTS[3]}


def test_flavour_from_vendor_ids() -> None:
    assert vendor.natt_flavour([vendor.NATT_RFC3947, *vendor.NATT_DRAFTS]) == "rfc"
    for vid in DRAFTS.values():
        assert vendor.natt_flavour([vendor.DPD, vid]) == "draft"
    assert vendor.natt_flavour([vendor.NATT_DRAFTS[0]]) is None  # draft-00 does not float: no NAT-T
    assert vendor.natt_flavour([]) is None
    assert vendor.describe(DRAFTS["02n"]) == "draft-ietf-ipsec-nat-t-ike-02\\n"
    assert vendor.describe(DRAFTS["03"]) == "draft-ietf-ipsec-nat-t-ike-03"


def test_draft_payload_numbers_and_encapsulation_modes() -> None:
    assert (
        natt.encap_mode("tunnel", "draft", True) == EncapsulationMode.UDP_ENCAPSULATED_TUNNEL_DRAFT == 61443
    )
    assert natt.encap_mode("transport", "draft", True) == 61444
    assert natt.encap_mode("tunnel", "rfc", True) == 3 and natt.encap_mode("transport", "rfc", True) == 4
    assert natt.decode_encap_mode(61443) == ("tunnel", True)
    assert natt.decode_encap_mode(61444) == ("transport", True)
    assert natt.nat_oa("10.231.0.1", "draft").payload_type == PayloadType.NAT_OA_DRAFT == 131
    assert natt.nat_oa("10.231.0.1", "rfc").payload_type == PayloadType.NAT_OA == 21
    h = hash_by_name("sha256")
    natd = natt.natd_payloads(h, b"i" * 8, b"r" * 8, (A_ADDR, 500), (B_ADDR, 500), "draft")
    assert [p.payload_type for p in natd] == [PayloadType.NAT_D_DRAFT] * 2 == [130, 130]


def only_draft(keep: str) -> Callable[[Datagram, int], Datagram]:
    """Overwrite every NAT-T vendor ID but ``keep``'s in plaintext phase 1 messages."""
    hide = [v for v in (vendor.NATT_RFC3947, *DRAFTS.values()) if v != DRAFTS[keep]]

    def rewrite(d: Datagram, n: int) -> Datagram:
        h = decode_header(d.data)
        if h.encrypted or h.exchange != ExchangeType.IDENTITY_PROTECTION:
            return d
        data = d.data
        for v in hide:
            data = data.replace(v, bytes(b ^ 0x5A for b in v))
        return Datagram(data, d.src, d.dst)

    return rewrite


@pytest.mark.parametrize("mode", ["tunnel", "transport"])
@pytest.mark.parametrize("keep", list(DRAFTS))
def test_draft_only_peers_behind_a_nat(keep: str, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    oa_types: list[int] = []
    real = natt.nat_oa

    def spy(addr: str, flavour: str | None) -> NatOaPayload:
        p = real(addr, flavour)
        oa_types.append(p.payload_type)
        return p

    monkeypatch.setattr(natt, "nat_oa", spy)
    a = site_config(A_ADDR, B_ADDR, LAN_A, LAN_B, mode=mode)
    b = site_config(B_ADDR, A_ADDR, LAN_B, LAN_A, mode=mode, remote_addrs="%any")
    p = Pair(a, b, nat_a=("10.231.9.9", 40000))
    p.rewrite = only_draft(keep)
    p.a.engine.initiate("site", now=p.now)
    p.run(30)
    assert len(p.of(p.a, IkeSaEstablished)) == 1 and len(p.of(p.b, IkeSaEstablished)) == 1
    for side in (p.a, p.b):
        sa = side.engine.ike_sas[0]
        assert sa.natt_flavour == "draft" and sa.nat is not None and sa.encap
    assert p.a.engine.ike_sas[0].nat.local_behind and p.b.engine.ike_sas[0].nat.remote_behind  # type: ignore[union-attr]
    # NAT-D went as payload 130 in MM3/MM4, never as 20
    plain = [
        decode_message(d.data) for _, d in p.wire if not d.keepalive and not decode_header(d.data).encrypted
    ]
    natd = [t for m in plain for t in m.types() if t in (PayloadType.NAT_D, PayloadType.NAT_D_DRAFT)]
    assert natd == [PayloadType.NAT_D_DRAFT] * 4
    # the peer's vendor IDs as each engine saw them: the kept draft, no RFC 3947
    for side in (p.a, p.b):
        (seen,) = [r.fields["vids"] for r in side.engine.tracer.find("vendor_ids")]
        assert vendor.describe(DRAFTS[keep]) in seen and "NAT-T (RFC 3947)" not in seen  # type: ignore[operator]
    # everything after MM4 floated to 4500
    later = [d for _, d in p.wire if not d.keepalive][4:]
    assert later and all(4500 in (d.src[1], d.dst[1]) for d in later)
    (ca,), (cb,) = p.of(p.a, ChildSaEstablished), p.of(p.b, ChildSaEstablished)
    assert ca.child.encap and cb.child.encap and ca.child.mode == cb.child.mode == mode
    assert ca.child.spi_in == cb.child.spi_out
    if mode == "transport":  # NAT-OA both ways, as payload 131
        assert oa_types == [PayloadType.NAT_OA_DRAFT] * 4
        assert cb.child.nat_oa is not None and ca.child.nat_oa is not None
    else:
        assert oa_types == []


def test_rfc_peers_use_the_rfc_numbers() -> None:
    a = site_config(A_ADDR, B_ADDR, LAN_A, LAN_B)
    b = site_config(B_ADDR, A_ADDR, LAN_B, LAN_A, remote_addrs="%any")
    p = Pair(a, b, nat_a=("10.231.9.9", 40000))
    p.a.engine.initiate("site", now=p.now)
    p.run(30)
    assert p.a.engine.ike_sas[0].natt_flavour == "rfc"
    plain = [
        decode_message(d.data) for _, d in p.wire if not d.keepalive and not decode_header(d.data).encrypted
    ]
    assert [t for m in plain for t in m.types() if t in (20, 130)] == [PayloadType.NAT_D] * 4


def test_a_draft_00_only_peer_gets_no_nat_traversal() -> None:
    """draft-00 (no float, another encapsulation) is not spoken: no NAT-D, no float, no encap."""
    hide = [vendor.NATT_RFC3947, *DRAFTS.values()]

    def rewrite(d: Datagram, n: int) -> Datagram:
        h = decode_header(d.data)
        if h.encrypted or h.exchange != ExchangeType.IDENTITY_PROTECTION or p.wire[n][0] != "b":
            return d
        data = d.data
        for v in hide:
            data = data.replace(v, vendor.NATT_DRAFTS[0] if v == vendor.NATT_RFC3947 else bytes(16))
        return Datagram(data, d.src, d.dst)

    a = site_config(A_ADDR, B_ADDR, LAN_A, LAN_B)
    b = site_config(B_ADDR, A_ADDR, LAN_B, LAN_A)
    p = Pair(a, b)
    p.rewrite = rewrite
    p.a.engine.initiate("site", now=p.now)
    p.run(30)
    sa = p.a.engine.ike_sas[0]
    assert sa.natt_flavour is None and not sa.encap
    assert all(d.dst[1] == 500 for w, d in p.wire if w == "a")


def test_cisco_unity_and_xauth_vendor_ids_with_remote_access() -> None:
    h = hub(gateway_config(), client_config(client_addr(0)))
    h.run(30)
    mm1 = decode_message(h.wire[0].data)
    vids = [v.data for v in mm1.all(VendorIdPayload)]
    assert vendor.CISCO_UNITY in vids and vendor.XAUTH in vids
    assert vendor.describe(vendor.CISCO_UNITY) == "Cisco Unity"
    assert h.gateway.ike_sas[0].unity and h.clients[0].ike_sas[0].unity


def test_no_unity_vendor_id_without_remote_access() -> None:
    p = Pair(site_config(A_ADDR, B_ADDR, LAN_A, LAN_B), site_config(B_ADDR, A_ADDR, LAN_B, LAN_A))
    p.a.engine.initiate("site", now=p.now)
    p.run(30)
    vids = [v.data for v in decode_message(p.wire[0][1].data).all(VendorIdPayload)]
    assert vendor.CISCO_UNITY not in vids and vendor.XAUTH not in vids
    assert vendor.CISCO_FRAGMENTATION in vids  # fragmentation = "yes" by default
    assert not p.a.engine.ike_sas[0].unity
