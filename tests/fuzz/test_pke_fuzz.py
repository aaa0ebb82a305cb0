"""Junk in place of each datagram of a phase 1 with public key encryption (RFC 2409 5.2, 5.3),
Main and Aggressive Mode: truncated, bit-flipped inside the encrypted bodies, or random after the
header. Nothing escapes the engine and nothing is an ``internal_error``: the RSA and Ke decryptions
and the re-decoding of the bodies fail only with the engine's own error families."""

from __future__ import annotations

import random

import pytest

from snakeswan.ike.events import Datagram
from snakeswan.wire.message import HEADER_SIZE
from tests.pair import Pair
from tests.pki import TestPki
from tests.unit.ike.test_pair_pubkey_enc import configs

MUTATIONS = ("truncate", "flip", "random")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki(tmp_path_factory.mktemp("pki-pke-fuzz"), "rsa")


def _junk(data: bytes, how: str, rnd: random.Random) -> bytes:
    if how == "truncate":
        return data[: rnd.randrange(HEADER_SIZE, len(data))]
    if how == "flip":
        out = bytearray(data)
        for _ in range(rnd.randrange(1, 4)):
            at = rnd.randrange(HEADER_SIZE, len(out))
            out[at] ^= 1 << rnd.randrange(8)
        return bytes(out)
    return data[:HEADER_SIZE] + rnd.randbytes(len(data) - HEADER_SIZE)


@pytest.mark.parametrize("how", MUTATIONS)
@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
@pytest.mark.parametrize("auth", ["pubkey-enc", "pubkey-enc-revised"])
def test_junk_in_place_of_each_message(pki: TestPki, auth: str, aggressive: bool, how: str) -> None:
    a, b, _, _ = configs(pki, auth=auth, aggressive=aggressive)
    clean = Pair(a, b)
    clean.a.engine.initiate("site", now=clean.now)
    clean.run()
    n_phase1 = 3 if aggressive else 6
    for target in range(n_phase1 + 1):
        for seed in range(4):
            rnd = random.Random(f"{auth}{aggressive}{how}{target}{seed}")
            p = Pair(a, b)
            p.rewrite = lambda d, n, t=target, r=rnd: (  # type: ignore[misc]
                Datagram(_junk(d.data, how, r), d.src, d.dst) if n == t else d
            )
            p.a.engine.initiate("site", now=p.now)
            p.run()
            for side in (p.a, p.b):
                errors = [r.render() for r in side.engine.tracer.find("internal_error")]
                assert not errors, (target, seed, errors)
