"""remote.ocsp_uris / ocsp_aia / revocation: accepted where a peer certificate is checked, refused
elsewhere (fail closed), bad values refused at load naming the key."""

from __future__ import annotations

import pytest

from snakeswan.config.loader import parse_config
from snakeswan.errors import ConfigError
from tests.pki import TestPki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki(tmp_path_factory.mktemp("pki"), "ecdsa")


def _conf(pki: TestPki, remote: str, local: str = "") -> str:
    me = pki.host("west.sw-lab")
    return f"""
[connections.c]
remote_addrs = ["192.0.2.1"]
local = {{ auth = "pubkey", certs = ["{me.cert}"]{local} }}
remote = {{ auth = "pubkey", cacerts = ["{pki.ca_path}"]{remote} }}
[secrets.private-1]
file = "{me.key}"
"""


def test_accepted_and_defaults(pki: TestPki) -> None:
    remote = parse_config(_conf(pki, "")).connection("c").remote
    assert (remote.ocsp_uris, remote.ocsp_aia, remote.revocation) == ((), False, "relaxed")
    text = ', ocsp_uris = ["http://127.0.0.1:2560/ocsp"], ocsp_aia = true, revocation = "strict"'
    remote = parse_config(_conf(pki, text)).connection("c").remote
    assert remote.ocsp_uris == ("http://127.0.0.1:2560/ocsp",)
    assert remote.ocsp_aia and remote.revocation == "strict"


@pytest.mark.parametrize(
    ("remote", "local", "key", "why"),
    [
        (', revocation = "hard"', "", "remote.revocation", "strict"),
        (', ocsp_uris = ["https://ocsp.example/"]', "", "ocsp_uris[0]", "http://"),
        (', ocsp_uris = ["ldap://x/"]', "", "ocsp_uris[0]", "http://"),
        (', ocsp_uris = ["http://:80/"]', "", "ocsp_uris[0]", "http://"),
        (', ocsp_uris = ["http://127.0.0.1:99999/"]', "", "ocsp_uris[0]", "http://"),
        (', ocsp_aia = "maybe"', "", "remote.ocsp_aia", "true or false"),
        ("", ', ocsp_uris = ["http://127.0.0.1/"]', "local.ocsp_uris", "remote side"),
        ("", ', revocation = "strict"', "local.revocation", "remote side"),
    ],
)
def test_refused(pki: TestPki, remote: str, local: str, key: str, why: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(_conf(pki, remote, local))
    assert key in str(e.value) and why in str(e.value)


def test_refused_without_a_certificate_to_check() -> None:
    text = """
[connections.c]
remote_addrs = ["192.0.2.1"]
local = { auth = "psk" }
remote = { auth = "psk", revocation = "strict" }
[secrets.ike-1]
secret = "x"
"""
    with pytest.raises(ConfigError, match="not pubkey") as e:
        parse_config(text)
    assert "not pubkey" in str(e.value) and "revocation" in str(e.value)


def test_authorities_name_ocsp_responders_per_ca(pki: TestPki) -> None:
    text = (
        _conf(pki, "")
        + f'[authorities.lab]\ncacert = "{pki.ca_path}"\nocsp_uris = ["http://127.0.0.1:2560/"]\n'
    )
    creds = parse_config(text).credentials
    assert creds.ocsp_uris_for(pki.ca_cert) == ("http://127.0.0.1:2560/",)
    other = TestPki(pki.dir / "other", "ecdsa", cn="another CA", n=4)
    assert creds.ocsp_uris_for(other.ca_cert) == ()


@pytest.mark.parametrize(
    ("body", "key", "why"),
    [
        ('ocsp_uris = ["http://127.0.0.1/"]', "authorities.lab.cacert", "required"),
        ('cacert = "{ca}"', "authorities.lab.ocsp_uris", "required"),
        ('cacert = "{ca}"\nocsp_uris = ["https://x/"]', "authorities.lab.ocsp_uris[0]", "http://"),
        (
            'cacert = "{ca}"\nocsp_uris = ["http://x/"]\ncrl_uris = ["http://x/crl"]',
            "crl_uris",
            "unknown key",
        ),
        ('cacert = "{host}"\nocsp_uris = ["http://x/"]', "authorities.lab.cacert", "CA certificate"),
    ],
)
def test_authorities_refused(pki: TestPki, body: str, key: str, why: str) -> None:
    host = pki.host("host.sw-lab", key_index=3)
    text = _conf(pki, "") + "[authorities.lab]\n" + body.format(ca=pki.ca_path, host=host.cert) + "\n"
    with pytest.raises(ConfigError) as e:
        parse_config(text)
    assert key in str(e.value) and why in str(e.value), str(e.value)
