"""Phase 1 authenticated with public key encryption (RFC 2409 5.2, auth method 4) and its revised
mode (5.3, method 5): two engines back to back, Main and Aggressive Mode, each side initiating,
keys from pinned certificates or raw public keys; the failures fail closed with their reasons."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from snakeswan.ike.aggressive_mode import AggressiveMode
from snakeswan.ike.events import ChildSaEstablished, Datagram, IkeSaEstablished
from snakeswan.ike.main_mode import MainMode
from snakeswan.wire.enums import AuthMethod, PayloadType
from snakeswan.wire.message import decode_message
from tests.pair import A_ADDR, B_ADDR, Pair
from tests.pki import Issued, TestPki, build_cert, make_key, name

LAN_A, LAN_B = "10.231.1.0/24", "10.231.2.0/24"
WEST, EAST = "west.sw-lab", "east.sw-lab"
METHODS = {"pubkey-enc": AuthMethod.RSA_ENCRYPTION, "pubkey-enc-revised": AuthMethod.RSA_REVISED_ENCRYPTION}


def pke_config(
    local: str,
    remote: str,
    local_net: str,
    remote_net: str,
    me: Issued,
    peer: Path,
    *,
    auth: str,
    aggressive: bool = False,
    raw: bool = False,
    local_id: str | None = None,
    remote_id: str | None = None,
    ike: str = "aes256-sha256-modp2048",
    my_key_file: Path | None = None,
) -> str:
    """``peer``: the peer's certificate (pinned) or, with ``raw``, its public key file."""
    kind = "pubkeys" if raw else "certs"
    mine = raw_public(me) if raw else me.cert
    lid = f'id = "{local_id}", ' if local_id else ""
    rid = f'id = "{remote_id}", ' if remote_id else ""
    return f"""
[connections.site]
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
aggressive = {str(aggressive).lower()}
proposals = ["{ike}"]
local = {{ auth = "{auth}", {lid}{kind} = ["{mine}"] }}
remote = {{ auth = "{auth}", {rid}{kind} = ["{peer}"] }}

[connections.site.children.net]
local_ts = ["{local_net}"]
remote_ts = ["{remote_net}"]
esp_proposals = ["aes128gcm16"]

[secrets.private-me]
file = "{my_key_file or me.key}"
"""


def raw_public(me: Issued) -> Path:
    path = me.cert.with_suffix(".pub")
    path.write_bytes(
        me.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki(tmp_path_factory.mktemp("pki-pke"), "rsa")


def configs(pki: TestPki, *, raw: bool = False, **kw: object) -> tuple[str, str, Issued, Issued]:
    west, east = pki.host(WEST), pki.host(EAST, key_index=1)
    ids: dict[str, object] = {}
    if raw:  # a raw key binds no identity: the configured IDs decide
        ids = {"a": (f"@{WEST}", f"@{EAST}"), "b": (f"@{EAST}", f"@{WEST}")}
    peer_a = raw_public(east) if raw else east.cert
    peer_b = raw_public(west) if raw else west.cert
    la, ra = ids.get("a", (None, None))  # type: ignore[misc]
    lb, rb = ids.get("b", (None, None))  # type: ignore[misc]
    a = pke_config(A_ADDR, B_ADDR, LAN_A, LAN_B, west, peer_a, raw=raw, local_id=la, remote_id=ra, **kw)  # type: ignore[arg-type]
    b = pke_config(B_ADDR, A_ADDR, LAN_B, LAN_A, east, peer_b, raw=raw, local_id=lb, remote_id=rb, **kw)  # type: ignore[arg-type]
    return a, b, west, east


def run(a: str, b: str, *, initiator: str = "a", rewrite: object = None) -> Pair:
    p = Pair(a, b)
    if rewrite is not None:
        p.rewrite = rewrite  # type: ignore[assignment]
    side = p.a if initiator == "a" else p.b
    side.engine.initiate("site", now=p.now)
    p.run(max_time=120.0)
    return p


def _reasons(p: Pair) -> list[str]:
    out = []
    for side in (p.a, p.b):
        for what in ("message_rejected", "exchange_failed"):
            out += [str(r.fields.get("reason")) for r in side.engine.tracer.find(what)]
    return out


@pytest.mark.parametrize("initiator", ["a", "b"])
@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
@pytest.mark.parametrize("auth", list(METHODS))
def test_establishes(pki: TestPki, auth: str, aggressive: bool, initiator: str) -> None:
    a, b, west, east = configs(pki, auth=auth, aggressive=aggressive)
    p = run(a, b, initiator=initiator)
    ea, eb = p.of(p.a, IkeSaEstablished), p.of(p.b, IkeSaEstablished)
    assert len(ea) == 1 and len(eb) == 1, _reasons(p)
    assert (
        ea[0].local_id == f"C=CH, O=snakeswan, CN={WEST}"
        and ea[0].remote_id == f"C=CH, O=snakeswan, CN={EAST}"
    )
    assert eb[0].remote_id == ea[0].local_id and ea[0].aggressive is aggressive
    assert ea[0].initiator is (initiator == "a")
    for side in (p.a, p.b):
        sa = side.engine.ike_sas[0]
        assert sa.choice is not None and sa.choice.auth_method == METHODS[auth]
        assert len(list(side.engine.tracer.find("pke_decrypted"))) == 1
    ca, cb = p.of(p.a, ChildSaEstablished)[0].child, p.of(p.b, ChildSaEstablished)[0].child
    assert ca.spi_in == cb.spi_out and ca.keys_in == cb.keys_out
    # identity protection even in Aggressive Mode: neither DN is ever on the wire in the clear,
    # nor (revised mode) a DH public value
    wire = b"".join(d.data for _, d in p.wire)
    for cert in (west.certificate, east.certificate):
        assert cert.subject.public_bytes() not in wire
    ex = p.a.engine.ike_sas[0].phase1
    assert isinstance(ex, MainMode | AggressiveMode)
    with_ke = [d for _, d in p.wire if ex.p1.gxi in d.data or ex.p1.gxr in d.data]
    assert (not with_ke) if auth == "pubkey-enc-revised" else len(with_ke) == 2


@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
@pytest.mark.parametrize("auth", list(METHODS))
def test_raw_public_keys(pki: TestPki, auth: str, aggressive: bool) -> None:
    a, b, _, _ = configs(pki, raw=True, auth=auth, aggressive=aggressive)
    p = run(a, b)
    ea = p.of(p.a, IkeSaEstablished)
    assert len(ea) == 1 and len(p.of(p.b, IkeSaEstablished)) == 1, _reasons(p)
    assert ea[0].remote_id == EAST and p.of(p.b, IkeSaEstablished)[0].remote_id == WEST


@pytest.mark.parametrize("raw", [False, True], ids=["cert", "raw-key"])
@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
@pytest.mark.parametrize("auth", list(METHODS))
def test_wrong_key_refused(pki: TestPki, tmp_path: Path, auth: str, aggressive: bool, raw: bool) -> None:
    """A encrypts to a certificate (or raw key) B does not hold: HASH(1) names another key."""
    a, b, _, east = configs(pki, auth=auth, aggressive=aggressive, raw=raw)
    carol = pki.host("carol.sw-lab", key_index=2)
    if raw:
        a = a.replace(f'pubkeys = ["{raw_public(east)}"]', f'pubkeys = ["{raw_public(carol)}"]')
    else:
        a = a.replace(f'certs = ["{east.cert}"]', f'certs = ["{carol.cert}"]')
    assert str(carol.cert.stem) in a
    p = run(a, b)
    assert not p.of(p.a, IkeSaEstablished) and not p.of(p.b, IkeSaEstablished)
    rejected = [r.fields for r in p.b.engine.tracer.find("message_rejected")]
    assert rejected and rejected[0]["notify"] == "INVALID_HASH_INFORMATION"
    assert "HASH(1) names a key that is not ours" in str(rejected[0]["reason"])


def _flip_in(data: bytes, payload_type: int) -> bytes:
    """``data`` with one bit flipped in the middle of the body of its first payload of that type."""
    msg = decode_message(data, allow_trailing=True)
    raw = next(rp.raw for rp in msg.payloads if rp.payload.payload_type == payload_type)
    at = data.index(raw) + 4 + (len(raw) - 4) // 2
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


@pytest.mark.parametrize("every_copy", [True, False], ids=["every-copy", "once"])
@pytest.mark.parametrize("target", [PayloadType.NONCE, PayloadType.ID], ids=["nonce", "id"])
@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
@pytest.mark.parametrize("auth", list(METHODS))
def test_tampered_encrypted_payload(
    pki: TestPki, auth: str, aggressive: bool, target: int, every_copy: bool
) -> None:
    """One bit of the initiator's encrypted nonce (RSA) or ID (RSA in 5.2, Ke_i in 5.3) flipped on
    the way: the exchange fails closed, with the reason logged."""
    a, b, _, _ = configs(pki, auth=auth, aggressive=aggressive)
    first = 0 if aggressive else 2  # AM1, or MM3 (after MM1, MM2)
    genuine: list[bytes] = []

    def flip(d: Datagram, n: int) -> Datagram:
        if n == first:
            genuine.append(d.data)
        if not genuine or d.data != genuine[0] or (not every_copy and n != first):
            return d
        return Datagram(_flip_in(d.data, target), d.src, d.dst)

    p = run(a, b, rewrite=flip)
    reasons = _reasons(p)
    assert reasons, "the drop must be explained"
    # RSA decryption of a tampered block yields random bytes of random length (implicit rejection)
    if target == PayloadType.NONCE and auth == "pubkey-enc":
        # a wrong Ni is a wrong SKEYID: MM5 does not decrypt, or (AM) HASH_R does not match
        expected: tuple[str, ...] = (
            "a nonce that did not reach the peer intact",
            "HASH_R mismatch",
            "nonce of",
        )
    elif target == PayloadType.NONCE:  # revised mode: a wrong Ni is a wrong Ke_i
        expected = ("payloads after the nonce do not decrypt with Ke",)
    else:  # the ID decrypts to garbage: no ID, or not the identity of the key we encrypt to
        expected = ("is in none of remote.certs", "ID payload does not decrypt to one", "address ID of")
    assert any(e in reasons[0] for e in expected), reasons
    established = [bool(p.of(p.a, IkeSaEstablished)), bool(p.of(p.b, IkeSaEstablished))]
    # forged every time: nothing; forged once: the genuine retransmission may get through (Main
    # Mode when the forgery is caught on arrival), never one side alone
    assert established == [False, False] if every_copy else established[0] == established[1]


@pytest.mark.parametrize("auth", list(METHODS))
def test_certificate_of_another_identity(pki: TestPki, tmp_path: Path, auth: str) -> None:
    """B pins a certificate with A's key but another name: A's identity is not in it."""
    a, b, west, _ = configs(pki, auth=auth)
    other = build_cert(
        name("mallory.sw-lab"), make_key("rsa", 0), pki.ca_name, pki.ca_key, san=["mallory.sw-lab"]
    )
    path = tmp_path / "mallory.crt"
    path.write_bytes(other.public_bytes(serialization.Encoding.PEM))
    b = b.replace(f'certs = ["{west.cert}"]', f'certs = ["{path}"]')
    p = run(a, b)
    assert not p.of(p.a, IkeSaEstablished) and not p.of(p.b, IkeSaEstablished)
    rejected = [r.fields for r in p.b.engine.tracer.find("message_rejected")]
    assert rejected and rejected[0]["notify"] == "INVALID_ID_INFORMATION"
    assert "is in none of remote.certs" in str(rejected[0]["reason"])


def test_the_pinned_certificate_of_the_configured_remote_id_is_used(pki: TestPki) -> None:
    """Several pinned certificates: the initiator encrypts to the one holding ``remote.id``."""
    a, b, _, east = configs(pki, auth="pubkey-enc")
    carol = pki.host("carol.sw-lab", key_index=2)
    a = a.replace(f'certs = ["{east.cert}"]', f'id = "{east.dn}", certs = ["{carol.cert}", "{east.cert}"]')
    p = run(a, b)
    assert len(p.of(p.a, IkeSaEstablished)) == 1 and len(p.of(p.b, IkeSaEstablished)) == 1, _reasons(p)


@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
@pytest.mark.parametrize("auth", list(METHODS))
def test_responder_answers_as_the_connection_whose_key_hash1_names(
    pki: TestPki, auth: str, aggressive: bool
) -> None:
    """B answers for two connections (same addresses) with different keys of its own; HASH(1)
    says which one A encrypted to, and B decrypts with that key and answers as that connection
    (Main Mode: it had chosen the first by addresses at MM1 and switches at MM3)."""
    a, b, west, east = configs(pki, auth=auth, aggressive=aggressive)
    east2 = pki.host("east2.sw-lab", key_index=3)
    a = a.replace(f'certs = ["{east.cert}"]', f'certs = ["{east2.cert}"]')
    second = pke_config(B_ADDR, A_ADDR, LAN_B, LAN_A, east2, west.cert, auth=auth, aggressive=aggressive)
    second = second.replace("[connections.site", "[connections.second").split("[secrets.")[0]
    b = b.replace(
        "[secrets.private-me]", second + f'[secrets.private-two]\nfile = "{east2.key}"\n[secrets.private-me]'
    )
    p = run(a, b)
    eb = p.of(p.b, IkeSaEstablished)
    assert len(eb) == 1 and eb[0].conn == "second", _reasons(p)
    assert eb[0].local_id == "C=CH, O=snakeswan, CN=east2.sw-lab"
    assert p.of(p.a, IkeSaEstablished)[0].remote_id == eb[0].local_id
    switched = list(p.b.engine.tracer.find("pke_connection"))
    assert len(switched) == (0 if aggressive else 1)


@pytest.mark.parametrize("auth", list(METHODS))
def test_aggressive_mode_responder_takes_the_real_am1_after_a_forged_one(pki: TestPki, auth: str) -> None:
    """The first AM1 arrives with its encrypted ID tampered with and is refused; the initiator's
    retransmission (the real one) is then answered at once, not ignored until the SA times out."""
    a, b, _, _ = configs(pki, auth=auth, aggressive=True)

    def flip(d: Datagram, n: int) -> Datagram:
        return Datagram(_flip_in(d.data, PayloadType.ID), d.src, d.dst) if n == 0 else d

    p = run(a, b, rewrite=flip)
    assert [r.fields["exchange"] for r in p.b.engine.tracer.find("message_rejected")] == ["aggressive_mode"]
    assert len(p.of(p.a, IkeSaEstablished)) == 1 and len(p.of(p.b, IkeSaEstablished)) == 1, _reasons(p)
    assert p.of(p.b, IkeSaEstablished)[0].ike_sa == 1  # the same responder SA, not one after a timeout


@pytest.mark.parametrize(
    "ike",
    ["aes256-sha1-modp2048", "3des-md5-modp1536", "aes128-sha256-ecp256", "aes192-sha512-modp3072"],
)
@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
def test_revised_mode_with_other_ciphers_and_prfs(pki: TestPki, ike: str, aggressive: bool) -> None:
    """Ke_i/Ke_r longer than the prf output (AES-256 under SHA-1, 3DES under MD5: K1 | K2),
    8-byte blocks (3DES), ECP and large MODP KE payloads, all encrypted with Ke."""
    a, b, _, _ = configs(pki, auth="pubkey-enc-revised", aggressive=aggressive, ike=ike)
    p = run(a, b)
    assert len(p.of(p.a, IkeSaEstablished)) == 1 and len(p.of(p.b, IkeSaEstablished)) == 1, _reasons(p)


@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
@pytest.mark.parametrize("auth", list(METHODS))
def test_behind_a_nat(pki: TestPki, auth: str, aggressive: bool) -> None:
    """NAT-D travels encrypted with Ke in revised mode and still detects the NAT; IKE floats to 4500."""
    a, b, _, _ = configs(pki, auth=auth, aggressive=aggressive)
    b = b.replace(f'remote_addrs = ["{A_ADDR}"]', 'remote_addrs = ["%any"]')
    p = Pair(a, b, nat_a=("192.0.2.7", 40000))
    p.a.engine.initiate("site", now=p.now)
    p.run()
    ea, eb = p.of(p.a, IkeSaEstablished), p.of(p.b, IkeSaEstablished)
    assert len(ea) == 1 and len(eb) == 1, _reasons(p)
    assert ea[0].nat_local and eb[0].nat_remote and ea[0].local[1] == 4500
    assert len(p.of(p.a, ChildSaEstablished)) == 1
