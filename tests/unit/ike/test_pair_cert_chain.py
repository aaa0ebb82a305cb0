"""Certificate chains and revocation, two engines back to back: we send the intermediate CA
certificates listed after ours in local.certs; the peer, trusting only the root, validates the
path; CRLs from files (remote.crls) revoke, and a CRL that is expired or badly signed fails closed."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from snakeswan.config.loader import parse_config
from snakeswan.errors import ConfigError
from snakeswan.ike.events import ChildSaEstablished
from tests.pair import A_ADDR, B_ADDR, Pair
from tests.pki import NOW, TestPki, crl, intermediate, make_key

WEST, EAST = "west.sw-lab", "east.sw-lab"


def conf(local: str, remote: str, certs: list[Path], key: Path, ca: Path, *, crls: list[Path] = ()) -> str:  # type: ignore[assignment]
    crl_list = f", crls = [{', '.join(f'{chr(34)}{c}{chr(34)}' for c in crls)}]" if crls else ""
    return f"""
[connections.site]
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
proposals = ["aes128-sha256-modp2048"]
send_cert = "always"
local = {{ auth = "pubkey", certs = [{", ".join(f'"{c}"' for c in certs)}] }}
remote = {{ auth = "pubkey", cacerts = ["{ca}"]{crl_list} }}
[connections.site.children.net]
local_ts = ["10.231.{1 if local == A_ADDR else 2}.0/24"]
remote_ts = ["10.231.{2 if local == A_ADDR else 1}.0/24"]
esp_proposals = ["aes128gcm16"]
[secrets.private-me]
file = "{key}"
"""


def run(a: str, b: str) -> Pair:
    p = Pair(a, b)
    for side in (p.a, p.b):
        side.engine.ctx.wall_offset = time.time() - p.now
    p.a.engine.initiate("site", now=p.now)
    p.run(max_time=120)
    return p


@pytest.fixture
def pki(tmp_path: Path) -> TestPki:
    return TestPki(tmp_path, "rsa")


def test_intermediate_sent_with_our_certificate(pki: TestPki) -> None:
    sub = intermediate(pki)
    west, east = pki.host(WEST), sub.host(EAST, key_index=1)
    a = conf(A_ADDR, B_ADDR, [west.cert], west.key, pki.ca_path)
    b = conf(B_ADDR, A_ADDR, [east.cert, sub.ca_path], east.key, pki.ca_path)
    p = run(a, b)
    assert p.of(p.a, ChildSaEstablished) and p.of(p.b, ChildSaEstablished)
    [auth] = [r.fields for r in p.a.engine.tracer.find("peer_authenticated")]
    assert auth["issuer"] == pki.ca_cert.subject.rfc4514_string()
    # without the intermediate, west has no path to its root
    b = conf(B_ADDR, A_ADDR, [east.cert], east.key, pki.ca_path)
    p = run(a, b)
    assert not p.of(p.a, ChildSaEstablished)
    rejected = [r.fields["reason"] for r in p.a.engine.tracer.find("message_rejected")]
    assert any("no trusted CA certificate for issuer" in r for r in rejected), rejected


def test_the_chain_in_local_certs_must_go_upwards(pki: TestPki) -> None:
    other = TestPki(pki.dir / "other", "rsa", cn="another CA", n=3)
    east = intermediate(pki).host(EAST, key_index=1)
    with pytest.raises(ConfigError, match=r"local\.certs\[1\]: does not issue"):
        parse_config(conf(B_ADDR, A_ADDR, [east.cert, other.ca_path], east.key, pki.ca_path), "b.toml")
    with pytest.raises(ConfigError, match=r"local\.cacerts: cacerts belong to the remote side"):
        text = conf(B_ADDR, A_ADDR, [east.cert], east.key, pki.ca_path)
        parse_config(
            text.replace(
                'local = { auth = "pubkey", ', f'local = {{ cacerts = ["{pki.ca_path}"], auth = "pubkey", '
            ),
            "b.toml",
        )


@pytest.mark.parametrize(
    ("case", "fails_with"),
    [
        ("revoked", "was revoked at"),
        ("not-listed", None),
        ("expired", "expired at"),
        ("forged", "is not signed by it"),
    ],
)
def test_crls_from_files(pki: TestPki, case: str, fails_with: str | None) -> None:
    west, east = pki.host(WEST), pki.host(EAST, key_index=1)
    revoked = [east.certificate] if case in ("revoked", "expired", "forged") else [west.certificate]
    next_update = NOW - dt.timedelta(minutes=5) if case == "expired" else None
    signer = make_key("rsa", 77) if case == "forged" else None
    the_crl = crl(pki, revoked if case != "expired" else [], next_update=next_update, signer=signer, tag=case)
    a = conf(A_ADDR, B_ADDR, [west.cert], west.key, pki.ca_path, crls=[the_crl])
    b = conf(B_ADDR, A_ADDR, [east.cert], east.key, pki.ca_path)
    p = run(a, b)
    if fails_with is None:
        assert p.of(p.a, ChildSaEstablished)
        return
    assert not p.of(p.a, ChildSaEstablished)
    rejected = [r.fields["reason"] for r in p.a.engine.tracer.find("message_rejected")]
    assert any(fails_with in r for r in rejected), rejected
