"""Main/Aggressive Mode + Quick Mode between two engines for every IKE cipher x hash x group."""

from __future__ import annotations

import itertools

import pytest

from snakeswan.ike.events import ChildSaEstablished, IkeSaEstablished, NegotiationFailed
from tests.pair import A_ADDR, B_ADDR, Pair, site_config

CIPHERS = ["des", "3des", "aes128", "aes192", "aes256"]
HASHES = ["md5", "sha1", "sha256", "sha384", "sha512"]
GROUPS = [
    "modp768",
    "modp1024",
    "modp1536",
    "modp2048",
    "modp3072",
    "modp4096",
    "modp6144",
    "modp8192",
    "ecp256",
    "ecp384",
    "ecp521",
    "curve25519",
]


def configs(ike: str, esp: str, *, aggressive: bool) -> tuple[str, str]:
    ids = (
        {"local_id": "@west.test", "remote_id": "@east.test"},
        {"local_id": "@east.test", "remote_id": "@west.test"},
    )
    ia, ib = ids if aggressive else ({}, {})
    a = site_config(
        A_ADDR, B_ADDR, "10.231.1.0/24", "10.231.2.0/24", ike=ike, esp=esp, aggressive=aggressive, **ia
    )
    b = site_config(
        B_ADDR, A_ADDR, "10.231.2.0/24", "10.231.1.0/24", ike=ike, esp=esp, aggressive=aggressive, **ib
    )
    return a, b


def handshake(ike: str, esp: str, *, aggressive: bool) -> Pair:
    a, b = configs(ike, esp, aggressive=aggressive)
    p = Pair(a, b)
    p.a.engine.initiate("site", now=p.now)
    p.run()
    assert not p.of(p.a, NegotiationFailed) and not p.of(p.b, NegotiationFailed)
    ia, ib = p.of(p.a, IkeSaEstablished), p.of(p.b, IkeSaEstablished)
    assert len(ia) == 1 and len(ib) == 1
    assert ia[0].icookie == ib[0].icookie and ia[0].rcookie == ib[0].rcookie
    assert ia[0].proposal == ib[0].proposal
    ca, cb = p.of(p.a, ChildSaEstablished), p.of(p.b, ChildSaEstablished)
    assert len(ca) == 1 and len(cb) == 1
    x, y = ca[0].child, cb[0].child
    assert x.spi_in == y.spi_out and x.spi_out == y.spi_in and x.spi_in != x.spi_out
    assert x.keys_out == y.keys_in and x.keys_in == y.keys_out
    assert x.keys_in != x.keys_out
    return p


@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
@pytest.mark.parametrize(("cipher", "hash_", "group"), list(itertools.product(CIPHERS, HASHES, GROUPS)))
def test_every_ike_cipher_hash_group(cipher: str, hash_: str, group: str, aggressive: bool) -> None:
    p = handshake(f"{cipher}-{hash_}-{group}", "aes128-sha256", aggressive=aggressive)
    assert p.of(p.a, ChildSaEstablished)[0].child.pfs_group is None


@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
@pytest.mark.parametrize("group", GROUPS)
def test_pfs_every_group(group: str, aggressive: bool) -> None:
    p = handshake("aes128-sha256-modp2048", f"aes128gcm16-{group}", aggressive=aggressive)
    child = p.of(p.a, ChildSaEstablished)[0].child
    assert child.pfs_group is not None


ESP_KEY_LENGTHS = {
    # proposal: (encryption key bytes incl. salt, integrity key bytes)
    "aes128gcm16": (20, 0),
    "aes256gcm16": (36, 0),
    "aes128gcm8": (20, 0),
    "aes256gcm12": (36, 0),
    "aes128-sha1": (16, 20),
    "aes192-sha256": (24, 32),
    "aes256-sha384": (32, 48),
    "aes256-sha512": (32, 64),
    "3des-md5": (24, 16),
    "des-sha1": (8, 20),
    "null-sha256": (0, 32),
}


@pytest.mark.parametrize(("esp", "sizes"), list(ESP_KEY_LENGTHS.items()))
def test_esp_key_lengths(esp: str, sizes: tuple[int, int]) -> None:
    p = handshake("aes128-sha256-modp2048", esp, aggressive=False)
    child = p.of(p.a, ChildSaEstablished)[0].child
    assert (len(child.keys_in.encryption), len(child.keys_in.integrity)) == sizes
    assert (len(child.keys_out.encryption), len(child.keys_out.integrity)) == sizes


@pytest.mark.parametrize(
    ("ah", "ikey"), [("md5", 16), ("sha1", 20), ("sha256", 32), ("sha384", 48), ("sha512", 64)]
)
def test_ah(ah: str, ikey: int) -> None:
    a = site_config(A_ADDR, B_ADDR, "10.231.1.0/24", "10.231.2.0/24", ah=ah, mode="transport")
    b = site_config(B_ADDR, A_ADDR, "10.231.2.0/24", "10.231.1.0/24", ah=ah, mode="transport")
    p = Pair(a, b)
    p.a.engine.initiate("site", now=p.now)
    p.run()
    x, y = p.of(p.a, ChildSaEstablished)[0].child, p.of(p.b, ChildSaEstablished)[0].child
    assert x.protocol == y.protocol == 2 and x.mode == y.mode == "transport"
    assert len(x.keys_in.integrity) == ikey and x.keys_in.encryption == b""
    assert x.keys_out == y.keys_in and x.keys_in == y.keys_out
