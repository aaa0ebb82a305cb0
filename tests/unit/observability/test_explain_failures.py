"""Issue 12: every failure class says which attribute or check failed, in the trace record
``exchange_failed`` and the ``NegotiationFailed`` reason (what the daemon logs at warning)."""

from __future__ import annotations

from snakeswan.ike.events import NegotiationFailed
from snakeswan.ike.mismatch import FIRST
from tests.pair import A_ADDR, B_ADDR, Pair, site_config

LAN_A, LAN_B = "10.231.1.0/24", "10.231.2.0/24"


def pair(a_kw: dict | None = None, b_kw: dict | None = None, lan_b_at_a: str = LAN_B) -> Pair:  # type: ignore[type-arg]
    a = site_config(A_ADDR, B_ADDR, LAN_A, lan_b_at_a, **(a_kw or {}))
    b = site_config(B_ADDR, A_ADDR, LAN_B, LAN_A, **(b_kw or {}))
    p = Pair(a, b)
    p.a.engine.initiate("site", now=p.now)
    p.run(max_time=600)
    return p


def failed_reason(p: Pair) -> str:
    """The responder's explanation: the trace record and the event must say the same."""
    rec = next(r for r in p.b.engine.tracer.records if r.event == "exchange_failed")
    ev = p.of(p.b, NegotiationFailed)
    assert ev and ev[0].reason == rec.fields["reason"]
    return str(rec.fields["reason"])


def test_ike_key_length_is_the_first_difference() -> None:
    reason = failed_reason(pair({"ike": "aes128-sha1-modp1024"}, {"ike": "aes256-sha256-modp2048"}))
    assert reason.startswith("no acceptable ISAKMP proposal: transform 1 [")
    # what was offered and what is configured, attribute by attribute
    assert "cipher=AES_CBC keylen=128 hash=SHA group=MODP_1024 auth=PRE_SHARED_KEY" in reason
    assert "vs ours 1 [cipher=AES_CBC keylen=256 hash=SHA2_256 group=MODP_2048" in reason
    assert f"{FIRST}: keylen 128 != 256 (also hash SHA != SHA2_256, group MODP_1024 != MODP_2048)" in reason


def test_ike_group_only_difference_against_each_configured_proposal() -> None:
    reason = failed_reason(
        pair({"ike": "aes128-sha256-modp1024"}, {"ike": 'aes128-sha256-modp2048", "aes256-sha256-modp1024'})
    )
    assert "vs ours 1 [cipher=AES_CBC keylen=128 hash=SHA2_256 group=MODP_2048 auth=PRE_SHARED_KEY" in reason
    parts = reason.split(" | ")
    assert len(parts) == 2
    assert parts[0].endswith(f"{FIRST}: group MODP_1024 != MODP_2048")
    assert parts[1].startswith("vs ours 2 [cipher=AES_CBC keylen=256")
    assert parts[1].endswith(f"{FIRST}: keylen 128 != 256")


def test_ike_lifetime_difference_is_named() -> None:
    # a longer lifetime is refused only when strict (lenient, the default, runs with ours)
    reason = failed_reason(pair({"rekey_time": "8h"}, {"rekey_time": "1h", "ike_lifetime_check": "strict"}))
    assert "life=28800s" in reason and "life=<=3600s" in reason
    assert f"{FIRST}: lifetime 28800s longer than ours (3600s)" in reason


def test_esp_proposal_mismatch_names_the_integrity_algorithm() -> None:
    reason = failed_reason(pair({"esp": "aes128-sha256-modp2048"}, {"esp": "aes128-sha1-modp2048"}))
    assert reason.startswith(
        "no acceptable IPsec proposal: transform 1 [protocol=IPSEC_ESP transform=AES_CBC"
    )
    assert "integrity=HMAC_SHA2_256" in reason and "integrity=HMAC_SHA " in reason
    assert f"{FIRST}: integrity HMAC_SHA2_256 != HMAC_SHA" in reason


def test_esp_pfs_group_mismatch() -> None:
    reason = failed_reason(pair({"esp": "aes128gcm16-modp2048"}, {"esp": "aes128gcm16"}))
    assert f"{FIRST}: PFS group MODP_2048 != none" in reason


def test_proxy_id_mismatch_shows_both_sides_selectors() -> None:
    reason = failed_reason(pair(lan_b_at_a="10.231.3.0/24"))
    assert "peer proposes IDci=10.231.1.0/24 IDcr=10.231.3.0/24" in reason
    assert "child net [remote_ts=10.231.1.0/24 local_ts=10.231.2.0/24]" in reason
    assert f"{FIRST}: IDcr 10.231.3.0/24 not in local_ts" in reason


def test_wrong_psk_aggressive_mode_names_hash_r_and_the_ids() -> None:
    a_kw = {"aggressive": True, "local_id": "@west.test", "remote_id": "@east.test"}
    b_kw = {"aggressive": True, "local_id": "@east.test", "remote_id": "@west.test", "psk": "another-key"}
    p = pair(a_kw, b_kw)
    rej = next(r for r in p.a.engine.tracer.records if r.event == "message_rejected")
    assert "HASH_R mismatch" in rej.fields["reason"]
    assert "local west.test, remote east.test" in rej.fields["reason"]


def test_initiator_explains_a_transform_it_did_not_offer() -> None:
    from snakeswan.config.proposals import parse_ike_proposal  # noqa: PLC0415
    from snakeswan.errors import PeerError  # noqa: PLC0415
    from snakeswan.ike.proposals import check_ike_reply, ike_sa_payload  # noqa: PLC0415

    offered = ike_sa_payload(parse_ike_proposal("aes128-sha256-modp2048"), 1, 3600)
    reply = ike_sa_payload(parse_ike_proposal("aes128-sha256-modp1024"), 1, 3600)
    try:
        check_ike_reply(reply, offered, 3600)
    except PeerError as e:
        assert e.what.startswith("responder chose a transform we did not offer: transform 1 [")
        assert f"{FIRST}: group MODP_1024 != MODP_2048" in e.what
    else:
        raise AssertionError("accepted a transform we did not offer")


def test_wrong_psk_main_mode_names_the_ids_the_key_was_looked_up_by() -> None:
    p = pair(b_kw={"psk": "another-key"})
    rej = next(r for r in p.b.engine.tracer.records if r.event == "message_rejected")
    assert rej.fields["reason"].endswith(
        "wrong PSK? (the PSK was looked up for local 10.231.0.2, remote 10.231.0.1 (peer at 10.231.0.1))"
    )


def test_certificate_path_failure_is_named(tmp_path: object) -> None:
    from pathlib import Path  # noqa: PLC0415

    from tests.pki import TestPki  # noqa: PLC0415
    from tests.unit.ike.test_pair_pubkey import EAST, WEST, cert_config, run_pair  # noqa: PLC0415

    base = Path(str(tmp_path))
    pki = TestPki(base / "good", "ecdsa")
    rogue = TestPki(base / "rogue", "ecdsa", cn="rogue CA", n=1)
    west, east = rogue.host(WEST), pki.host(EAST, key_index=1)
    a = cert_config(A_ADDR, B_ADDR, LAN_A, LAN_B, west, rogue.ca_path, remote_dn=east.dn)
    b = cert_config(B_ADDR, A_ADDR, LAN_B, LAN_A, east, pki.ca_path, remote_dn=west.dn)
    p = run_pair(a, b, max_time=600)
    reason = next(r for r in p.b.engine.tracer.records if r.event == "message_rejected").fields["reason"]
    assert reason == (
        'certificate path check of "CN=west.sw-lab,O=snakeswan,C=CH" failed: '
        'no trusted CA certificate for issuer "CN=rogue CA,O=snakeswan,C=CH"'
    )


def test_key_derivation_only_on_opt_in_with_consistent_values() -> None:
    from snakeswan.analysis.explain import explain  # noqa: PLC0415
    from snakeswan.analysis.records import from_record  # noqa: PLC0415
    from snakeswan.crypto.algorithms import ike_hash  # noqa: PLC0415
    from snakeswan.crypto.keymat import derive_phase1  # noqa: PLC0415
    from snakeswan.ike.events import ChildSaEstablished, IkeSaEstablished, KeyLog  # noqa: PLC0415
    from snakeswan.wire.enums import IkeHash  # noqa: PLC0415

    p = Pair(
        site_config(A_ADDR, B_ADDR, LAN_A, LAN_B), site_config(B_ADDR, A_ADDR, LAN_B, LAN_A), keylog=True
    )
    p.a.engine.tracer.log_keys = True  # the explicit opt-in (daemon --explain-keys)
    p.a.engine.initiate("site", now=p.now)
    p.run(30)
    assert not [r for r in p.b.engine.tracer.records if r.event in ("phase1_keys", "keymat")]  # default
    k = next(r.fields for r in p.a.engine.tracer.records if r.event == "phase1_keys")
    est = p.of(p.a, IkeSaEstablished)[0]
    again = derive_phase1(ike_hash(IkeHash.SHA2_256), k["skeyid"], k["gxy"], est.icookie, est.rcookie)
    assert (again.skeyid_d, again.skeyid_a, again.skeyid_e) == (k["skeyid_d"], k["skeyid_a"], k["skeyid_e"])
    line = next(e.ikev1_line for e in p.of(p.a, KeyLog) if e.ikev1_line)
    assert line == f"{est.icookie.hex()},{k['enc_key'].hex()}"
    child = p.of(p.a, ChildSaEstablished)[0].child
    mats = {r.fields["spi"]: r.fields for r in p.a.engine.tracer.records if r.event == "keymat"}
    assert mats[f"{child.spi_in:08x}"]["enc_key"] == child.keys_in.encryption
    assert mats[f"{child.spi_out:08x}"]["enc_key"] == child.keys_out.encryption
    rec = next(r for r in p.a.engine.tracer.records if r.event == "phase1_keys")
    assert "SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0)" in (explain(from_record(rec)) or "")
