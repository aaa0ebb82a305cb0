"""Two snakeswan daemons in network namespaces authenticating with public key encryption (RFC 2409
5.2 ``pubkey-enc``, 5.3 ``pubkey-enc-revised``), Main and Aggressive Mode, each side initiating
once: the daemons load the pinned certificates and raw keys from files, negotiate, and a ping
crosses the tunnel (ESP through the userspace data plane)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from tests.daemons import DaemonProcess, wait_for
from tests.netns import ping, site_to_site
from tests.pki import Issued, TestPki

pytestmark = pytest.mark.netns

CONF = """
[connections.site]
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
aggressive = {aggressive}
proposals = ["aes256-sha256-modp2048"]
local = {{ auth = "{auth}", {mine} }}
remote = {{ auth = "{auth}", {theirs} }}
[connections.site.children.lan]
local_ts = ["{lnet}"]
remote_ts = ["{rnet}"]
esp_proposals = ["aes128gcm16"]
[secrets.private-me]
file = "{key}"
"""


def _pub(me: Issued) -> Path:
    path = me.cert.with_suffix(".pub")
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    path.write_bytes(me.private_key.public_key().public_bytes(serialization.Encoding.PEM, spki))
    return path


@pytest.mark.parametrize(
    ("auth", "aggressive", "raw", "starter"),
    [
        ("pubkey-enc", False, False, "west"),
        ("pubkey-enc-revised", False, True, "east"),
        ("pubkey-enc", True, True, "east"),
        ("pubkey-enc-revised", True, False, "west"),
    ],
    ids=["enc-mm-certs", "revised-mm-raw", "enc-am-raw", "revised-am-certs"],
)
def test_pke_between_two_daemons(
    topology: Any, tmp_path: Path, auth: str, aggressive: bool, raw: bool, starter: str
) -> None:
    pki = TestPki(tmp_path / "pki", "rsa")
    wc, ec = pki.host("west.sw-lab"), pki.host("east.sw-lab", key_index=1)

    def keys(me: Issued, peer: Issued) -> tuple[str, str]:
        if raw:  # a raw key names no one: the IDs are configured
            return (
                f'id = "@{me.cert.stem.split("-")[0]}", pubkeys = ["{_pub(me)}"]',
                f'id = "@{peer.cert.stem.split("-")[0]}", pubkeys = ["{_pub(peer)}"]',
            )
        return f'certs = ["{me.cert}"]', f'certs = ["{peer.cert}"]'

    topo = topology()
    west, east = site_to_site(topo)
    flag = str(aggressive).lower()
    mw, tw = keys(wc, ec)
    me_, te = keys(ec, wc)
    cw = CONF.format(
        local="10.231.0.1", remote="10.231.0.2", aggressive=flag, auth=auth, mine=mw, theirs=tw,
        lnet="10.231.1.0/24", rnet="10.231.2.0/24", key=wc.key,
    )  # fmt: skip
    ce = CONF.format(
        local="10.231.0.2", remote="10.231.0.1", aggressive=flag, auth=auth, mine=me_, theirs=te,
        lnet="10.231.2.0/24", rnet="10.231.1.0/24", key=ec.key,
    )  # fmt: skip
    w = DaemonProcess(tmp_path, "west", cw, netns=west.name)
    topo.on_close(w.stop)
    e = DaemonProcess(tmp_path, "east", ce, netns=east.name)
    topo.on_close(e.stop)
    (w if starter == "west" else e).cmd("up", conn="site")
    wait_for(lambda: all(d.sas() and d.sas()[0]["children"] for d in (w, e)), timeout=20, what="SAs on both")
    sw, se = w.sas()[0], e.sas()[0]
    assert (sw["icookie"], sw["rcookie"]) == (se["icookie"], se["rcookie"])
    assert sw["role"] == ("initiator" if starter == "west" else "responder")
    assert sw["mode"] == ("aggressive" if aggressive else "main")
    for d in (w, e):
        assert "pke_decrypted" in d.log()
    assert ping(west, "10.231.1.1", "10.231.2.1", count=3) >= 2
