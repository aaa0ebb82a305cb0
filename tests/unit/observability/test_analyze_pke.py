"""``snakeswan analyze`` on captures of phase 1 with public key encryption (RFC 2409 5.2, 5.3):
the IDs belong to MM3/MM4 (MM5/MM6 carry only the HASH), and in revised mode the phase 1 IV
cannot be had from a key log (it hashes KE payloads that went encrypted), but Quick Mode's can."""

from __future__ import annotations

from pathlib import Path

import pytest

from snakeswan.ike.events import IkeSaEstablished, KeyLog
from tests.pair import Pair
from tests.pcap import pcap_bytes
from tests.pki import TestPki
from tests.unit.ike.test_pair_pubkey_enc import configs
from tests.unit.observability.test_analyze import analyze


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki(tmp_path_factory.mktemp("pki-analyze-pke"), "rsa")


@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
@pytest.mark.parametrize("auth", ["pubkey-enc", "pubkey-enc-revised"])
def test_analyze(pki: TestPki, tmp_path: Path, auth: str, aggressive: bool) -> None:
    a, b, _, _ = configs(pki, auth=auth, aggressive=aggressive)
    p = Pair(a, b, keylog=True)
    p.a.engine.initiate("site", now=p.now)
    p.run(60)
    assert p.of(p.a, IkeSaEstablished)
    pcap, keys = tmp_path / "c.pcap", tmp_path / "c.keys"
    pcap.write_bytes(
        pcap_bytes((p.now + n * 0.001, d.src, d.dst, d.data) for n, d in enumerate(x for _, x in p.wire))
    )
    keys.write_text("".join(e.ikev1_line + "\n" for e in p.of(p.a, KeyLog) if e.ikev1_line))
    r = analyze(pcap, keys)
    assert r.problems == [], r.problems
    by = {m.label: m for m in r.messages}
    assert r.sas[0].auth == (5 if auth.endswith("revised") else 4)
    final = ["AM3"] if aggressive else ["MM5", "MM6"]
    for label in final:
        if auth == "pubkey-enc":
            assert by[label].decrypted and by[label].payloads.startswith("HASH"), by[label]
        else:
            assert not by[label].decrypted
            assert any("revised mode" in n for n in by[label].notes), by[label].notes
    assert all(by[x].decrypted for x in ("QM1", "QM2", "QM3"))
