"""AH+ESP bundles in Quick Mode: one proposal carrying AH and ESP, both roles; each end gets two
SA pairs whose SPIs and keys match the other end's, and Deletes name both."""

from __future__ import annotations

import pytest

from snakeswan.config.loader import parse_config
from snakeswan.config.proposals import parse_ah_proposal, parse_esp_proposal
from snakeswan.errors import ConfigError, PeerError
from snakeswan.ike.bundle import (
    bundle_reply,
    bundle_sa_payload,
    check_bundle_reply,
    offers_bundle,
    select_bundle,
)
from snakeswan.ike.events import ChildSaDeleted, ChildSaEstablished, NegotiationFailed
from snakeswan.wire.buffer import Reader
from snakeswan.wire.enums import AhTransformId, EspTransformId, NotifyType, PayloadType, ProtocolId
from snakeswan.wire.payloads import SaPayload, decode_payload
from tests.pair import A_ADDR, B_ADDR, Pair, site_config

LAN_A, LAN_B = "10.231.1.0/24", "10.231.2.0/24"


def bundle_config(local: str, remote: str, lnet: str, rnet: str, esp: str, ah: str, **kw: str) -> str:
    text = site_config(local, remote, lnet, rnet, esp=esp, **kw)  # type: ignore[arg-type]
    return text.replace(f'esp_proposals = ["{esp}"]', f'esp_proposals = ["{esp}"]\nah_proposals = ["{ah}"]')


def bundle_pair(
    esp_a: str = "aes128-sha256-modp2048", ah_a: str = "sha256-modp2048",
    esp_b: str = "aes128-sha256-modp2048", ah_b: str = "sha256-modp2048",
) -> Pair:  # fmt: skip
    p = Pair(
        bundle_config(A_ADDR, B_ADDR, LAN_A, LAN_B, esp_a, ah_a),
        bundle_config(B_ADDR, A_ADDR, LAN_B, LAN_A, esp_b, ah_b),
    )
    p.a.engine.initiate("site", now=p.now)
    p.run()
    return p


def test_bundle_negotiated_with_four_spis_and_matching_keys() -> None:
    p = bundle_pair()
    [ea], [eb] = p.of(p.a, ChildSaEstablished), p.of(p.b, ChildSaEstablished)
    a, b = ea.child, eb.child
    assert a.protocol == b.protocol == ProtocolId.IPSEC_ESP
    assert a.transform_id == EspTransformId.AES_CBC
    assert a.ah is not None and b.ah is not None
    assert a.ah.transform_id == AhTransformId.SHA2_256
    assert (a.spi_out, a.ah.spi_out) == (b.spi_in, b.ah.spi_in)
    assert (b.spi_out, b.ah.spi_out) == (a.spi_in, a.ah.spi_in)
    assert len({a.spi_in, a.ah.spi_in, b.spi_in, b.ah.spi_in}) == 4
    assert a.keys_out == b.keys_in and a.ah.keys_out == b.ah.keys_in and a.ah.keys_in == b.ah.keys_out
    assert a.ah.keys_out.integrity != a.keys_out.integrity  # KEYMAT per protocol and SPI
    assert len(a.ah.keys_out.integrity) == 32 and a.ah.keys_out.encryption == b""
    assert a.pfs_group == b.pfs_group is not None


def test_bundle_sa_payload_round_trips_and_is_selected() -> None:
    """QM1: proposal 1 = AH (SPI a) AND ESP (SPI e); the responder takes both, answers both."""
    ah = parse_ah_proposal("sha256-modp2048") + parse_ah_proposal("sha1-modp2048")
    esp = parse_esp_proposal("aes128-sha256-modp2048")
    offer = bundle_sa_payload(ah, esp, b"\0\0\1\0", b"\0\0\2\0", 1, 3600, None)
    decoded = decode_payload(PayloadType.SA, Reader(offer.encode_body(), where="SA"))
    assert isinstance(decoded, SaPayload) and decoded == offer
    assert [(p.number, p.protocol, p.spi, len(p.transforms)) for p in decoded.proposals] == [
        (1, ProtocolId.IPSEC_AH, b"\0\0\1\0", 2),
        (1, ProtocolId.IPSEC_ESP, b"\0\0\2\0", 1),
    ]
    assert offers_bundle(decoded)
    choice = select_bundle(decoded, ah[1:], esp, [1], 3600, None)  # we only take AH with SHA-1
    assert choice.ah.proposal.transform_id == AhTransformId.SHA and choice.ah.peer_spi == b"\0\0\1\0"
    assert choice.esp.peer_spi == b"\0\0\2\0"
    reply = bundle_reply(choice, b"\0\0\3\0", b"\0\0\4\0")
    back = check_bundle_reply(reply, ah, esp, 3600, None)
    assert (back.ah.peer_spi, back.esp.peer_spi) == (b"\0\0\3\0", b"\0\0\4\0")
    with pytest.raises(PeerError, match="AH and ESP of one proposal"):
        check_bundle_reply(SaPayload(reply.proposals[1:]), ah, esp, 3600, None)
    with pytest.raises(PeerError, match="no acceptable AH\\+ESP bundle"):
        select_bundle(SaPayload(decoded.proposals[1:]), ah, esp, [1], 3600, None)


def test_bundle_mismatch_is_refused_naming_the_bundle() -> None:
    p = bundle_pair(
        esp_a="aes256-sha1-modp2048", ah_a="sha1-modp2048",
        esp_b="aes128-sha256-modp2048", ah_b="sha256-modp2048",
    )  # fmt: skip
    assert not p.of(p.a, ChildSaEstablished) and not p.of(p.b, ChildSaEstablished)
    [fa] = p.of(p.a, NegotiationFailed)
    assert fa.notify == NotifyType.NO_PROPOSAL_CHOSEN
    [fb] = p.b.engine.tracer.find("exchange_failed")
    assert "no acceptable AH+ESP bundle" in fb.fields["reason"]


def test_plain_esp_offer_is_refused_by_a_bundle_child_and_vice_versa() -> None:
    plain = site_config(A_ADDR, B_ADDR, LAN_A, LAN_B, esp="aes128-sha256-modp2048")
    p = Pair(plain, bundle_config(B_ADDR, A_ADDR, LAN_B, LAN_A, "aes128-sha256-modp2048", "sha256-modp2048"))
    p.a.engine.initiate("site", now=p.now)
    p.run()
    assert not p.of(p.b, ChildSaEstablished)
    [fb] = [r for r in p.b.engine.tracer.find("exchange_failed")]
    assert "AH+ESP bundle" in fb.fields["reason"]
    p = Pair(
        bundle_config(A_ADDR, B_ADDR, LAN_A, LAN_B, "aes128-sha256-modp2048", "sha256-modp2048"),
        site_config(B_ADDR, A_ADDR, LAN_B, LAN_A, esp="aes128-sha256-modp2048"),
    )
    p.a.engine.initiate("site", now=p.now)
    p.run()
    assert not p.of(p.b, ChildSaEstablished)
    [fb] = [r for r in p.b.engine.tracer.find("exchange_failed")]
    assert "bundles (AH+ESP) are not supported" in fb.fields["reason"]


def test_delete_of_a_bundle_names_both_sas() -> None:
    p = bundle_pair()
    [ea] = p.of(p.a, ChildSaEstablished)
    sa_id = ea.child.ike_sa
    p.a.engine.delete_child(sa_id, ea.child.spi_in, p.now)
    p.run()
    [gone] = p.of(p.b, ChildSaDeleted)
    [eb] = p.of(p.b, ChildSaEstablished)
    assert (gone.spi_in, gone.reason) == (eb.child.spi_in, "deleted by peer")
    assert not list(p.b.engine.tracer.find("delete_unknown_spi"))  # the AH Delete was expected
    assert ea.child.ah is not None
    [info] = p.a.engine.tracer.find("informational_sent")
    assert info.fields["summary"] == "HASH D D"
    assert info.fields["payloads"] == [
        f"D(protocol=3,spis={ea.child.spi_in:08x})",  # ESP
        f"D(protocol=2,spis={ea.child.ah.spi_in:08x})",  # AH
    ]


def test_loader_accepts_bundles_and_refuses_what_cannot_run() -> None:
    cfg = parse_config(bundle_config(A_ADDR, B_ADDR, LAN_A, LAN_B, "aes128gcm16-modp2048", "sha256-modp2048"))
    child = cfg.connection("site").child("net")
    assert child.esp_proposals and child.ah_proposals
    with pytest.raises(ConfigError, match="same PFS groups"):
        parse_config(bundle_config(A_ADDR, B_ADDR, LAN_A, LAN_B, "aes128gcm16-modp2048", "sha256"))
    with pytest.raises(ConfigError, match="UDP-encapsulated"):
        text = bundle_config(A_ADDR, B_ADDR, LAN_A, LAN_B, "aes128gcm16-modp2048", "sha256-modp2048")
        parse_config(text.replace("aggressive = false", "aggressive = false\nencap = true"))


def test_bundle_rekeys_as_a_bundle_and_the_old_one_goes_with_both_deletes() -> None:
    esp, ah = "aes128-sha256-modp2048", "sha256-modp2048"
    p = Pair(
        bundle_config(A_ADDR, B_ADDR, LAN_A, LAN_B, esp, ah, life_time="100s"),
        bundle_config(B_ADDR, A_ADDR, LAN_B, LAN_A, esp, ah, life_time="100s"),
    )
    p.a.engine.initiate("site", now=p.now)
    p.run(max_time=1)
    p.run(max_time=100)  # rekeyed at about 90 s, the old bundle deleted 5 s later
    est_a = [e.child for e in p.of(p.a, ChildSaEstablished)]
    est_b = [e.child for e in p.of(p.b, ChildSaEstablished)]
    assert len(est_a) == len(est_b) == 2
    assert all(c.ah is not None for c in est_a + est_b)
    new_a, new_b = est_a[1], est_b[1]
    assert new_a.replaces == est_a[0].spi_in and new_b.replaces == est_b[0].spi_in
    assert new_a.ah is not None and new_b.ah is not None and new_a.ah.spi_out == new_b.ah.spi_in
    assert {new_a.ah.spi_in, new_a.ah.spi_out}.isdisjoint({est_a[0].ah.spi_in, est_a[0].ah.spi_out})  # type: ignore[union-attr]
    [gone_b] = p.of(p.b, ChildSaDeleted)
    assert (gone_b.spi_in, gone_b.reason) == (est_b[0].spi_in, "deleted by peer")
    assert not list(p.b.engine.tracer.find("delete_unknown_spi"))
    (sa_a,), (sa_b,) = p.a.engine.ike_sas, p.b.engine.ike_sas
    assert [c.spi_in for c in sa_a.children] == [new_a.spi_in]
    assert [c.spi_in for c in sa_b.children] == [new_b.spi_in]
