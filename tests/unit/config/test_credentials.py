"""Certificates and private keys in the configuration: loaded by the loader, checked, reported."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from snakeswan.config.credentials import cert_contains, subject_identity
from snakeswan.config.identity import Identity
from snakeswan.config.loader import load_config, parse_config
from snakeswan.errors import ConfigError
from tests.pki import Issued, TestPki


def conf(me: Issued, ca: Path, *, key: Path | None = None, local: str = "", extra: str = "") -> str:
    return f"""
[connections.c]
remote_addrs = ["192.0.2.1"]
local = {{ auth = "pubkey", certs = ["{me.cert}"]{local} }}
remote = {{ auth = "pubkey", cacerts = ["{ca}"] }}
[secrets.private-1]
file = "{key or me.key}"
{extra}
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki(tmp_path_factory.mktemp("pki"), "rsa")


@pytest.fixture(scope="module")
def ec_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki(tmp_path_factory.mktemp("ecpki"), "ecdsa")


def test_loads_and_defaults_the_local_id_to_the_subject(pki: TestPki) -> None:
    me = pki.host("west.sw-lab", san=["west.sw-lab", "10.231.0.1", "west@sw-lab"])
    config = parse_config(conf(me, pki.ca_path))
    conn = config.connection("c")
    assert str(conn.local.id) == "C=CH, O=snakeswan, CN=west.sw-lab"
    cert = config.credentials.cert(str(me.cert))
    assert config.credentials.key_for(cert) is not None
    assert "RSA-2048" in repr(config.credentials.keys[0]) and "BEGIN" not in repr(config.credentials)
    for text in ("C=CH, O=snakeswan, CN=west.sw-lab", "@west.sw-lab", "10.231.0.1", "west@sw-lab"):
        assert cert_contains(cert, Identity.parse(text)), text
    for text in ("C=CH, O=snakeswan, CN=east.sw-lab", "@east.sw-lab", "10.231.0.2", "@@east@sw-lab"):
        assert not cert_contains(cert, Identity.parse(text)), text
    assert subject_identity(cert) == conn.local.id


@pytest.mark.parametrize(
    ("fmt", "encoding"),
    [
        (serialization.PrivateFormat.PKCS8, serialization.Encoding.PEM),
        (serialization.PrivateFormat.TraditionalOpenSSL, serialization.Encoding.DER),
        (serialization.PrivateFormat.PKCS8, serialization.Encoding.DER),
    ],
)
def test_key_formats(
    ec_pki: TestPki, tmp_path: Path, fmt: serialization.PrivateFormat, encoding: serialization.Encoding
) -> None:
    me = ec_pki.host("east.sw-lab")
    key = tmp_path / "k"
    key.write_bytes(me.private_key.private_bytes(encoding, fmt, serialization.NoEncryption()))
    der_cert = tmp_path / "c.der"
    der_cert.write_bytes(me.certificate.public_bytes(serialization.Encoding.DER))
    me = Issued(der_cert, key, me.dn, me.certificate, me.private_key)
    config = parse_config(conf(me, ec_pki.ca_path, local=', id = "@east.sw-lab"'))
    assert config.credentials.keys[0].source.endswith(f"({key})")


def test_encrypted_key_needs_its_passphrase(ec_pki: TestPki, tmp_path: Path) -> None:
    me = ec_pki.host("east.sw-lab")
    key = tmp_path / "enc.pem"
    key.write_bytes(
        me.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"open sesame"),
        )
    )
    assert parse_config(conf(me, ec_pki.ca_path, key=key, extra='secret = "open sesame"')).credentials.keys
    with pytest.raises(ConfigError, match="passphrase"):
        parse_config(conf(me, ec_pki.ca_path, key=key))
    with pytest.raises(ConfigError, match="wrong passphrase") as e:
        parse_config(conf(me, ec_pki.ca_path, key=key, extra='secret = "wrong"'))
    assert "secrets.private-1.file" in str(e.value) and "open sesame" not in str(e.value)


def test_errors_name_the_file_and_the_key(pki: TestPki, ec_pki: TestPki, tmp_path: Path) -> None:
    me = pki.host("west.sw-lab")
    missing = tmp_path / "nope.crt"
    text = conf(me, pki.ca_path).replace(str(me.cert), str(missing))
    with pytest.raises(ConfigError) as e:
        parse_config(text, str(tmp_path / "snakeswan.toml"))
    assert "connections.c.local.certs[0]" in str(e.value) and "nope.crt" in str(e.value)
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("hello")
    with pytest.raises(ConfigError, match=r"local\.certs\[0\].*garbage\.crt.*expected an X.509"):
        parse_config(conf(me, pki.ca_path).replace(str(me.cert), str(garbage)))
    with pytest.raises(ConfigError, match=r"remote\.cacerts\[0\].*expected a CA certificate"):
        parse_config(conf(me, me.cert))
    other = pki.host("east.sw-lab", key_index=1)
    with pytest.raises(ConfigError, match="no private key for this certificate"):
        parse_config(conf(me, pki.ca_path, key=other.key))
    with pytest.raises(ConfigError, match="neither the subject nor a subjectAltName"):
        parse_config(conf(me, pki.ca_path, local=', id = "@east.sw-lab"'))
    with pytest.raises(ConfigError, match="another kind of key"):
        parse_config(conf(me, pki.ca_path).replace('auth = "pubkey", certs', 'auth = "ecdsa", certs'))
    with pytest.raises(ConfigError, match="pubkeys"):
        parse_config(conf(me, pki.ca_path, local=', pubkeys = ["x.pub"]'))
    with pytest.raises(ConfigError, match=r"secrets\.private-1\.file.*cannot read"):
        parse_config(conf(me, pki.ca_path, key=tmp_path / "absent.key"))


def test_relative_file_names_are_taken_from_the_config_directory(pki: TestPki) -> None:
    me = pki.host("west.sw-lab")
    text = conf(me, pki.ca_path).replace(str(me.cert), me.cert.name).replace(str(me.key), me.key.name)
    path = pki.dir / "snakeswan.toml"
    path.write_text(text)
    assert load_config(path).credentials.keys
