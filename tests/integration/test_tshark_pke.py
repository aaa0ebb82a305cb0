"""What Wireshark's ISAKMP dissector makes of phase 1 with public key encryption (RFC 2409 5.2,
5.3), given our key log (``ikev1_decryption_table``: initiator cookie, phase 1 encryption key).

- 5.2 (method 4): everything protected by SKEYID_e decrypts and decodes (MM5/MM6 or AM3, Quick
  Mode). The RSA-encrypted ID and nonce bodies of MM3/MM4 (AM1/AM2) cannot be: that needs the
  private keys, which no key log carries; tshark shows them as opaque ID data (no error).
- 5.3 (method 5): Quick Mode decrypts, and so does MM6; the first SKEYID_e message (MM5, AM3)
  does not, because Wireshark takes its IV from hash(g^xi | g^xr) read from the KE payloads,
  which revised mode encrypts with Ke_i/Ke_r. A Wireshark limitation (4.0), asserted here so that
  a change is noticed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from snakeswan.ike.events import IkeSaEstablished, KeyLog
from tests.integration.test_tshark_decode import HASH, ID, NONCE, SA, parse_frames, tshark
from tests.pair import Pair
from tests.pcap import write_pcap
from tests.pki import TestPki
from tests.unit.ike.test_pair_pubkey_enc import configs

pytestmark = pytest.mark.tshark


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki(tmp_path_factory.mktemp("pki-tshark-pke"), "rsa")


@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
@pytest.mark.parametrize("auth", ["pubkey-enc", "pubkey-enc-revised"])
def test_tshark_with_our_keylog(pki: TestPki, tmp_path: Path, auth: str, aggressive: bool) -> None:
    a, b, west, _ = configs(pki, auth=auth, aggressive=aggressive)
    p = Pair(a, b, keylog=True)
    p.a.engine.initiate("site", now=p.now)
    p.run()
    assert p.of(p.a, IkeSaEstablished) and p.of(p.b, IkeSaEstablished)
    line = next(e.ikev1_line for e in p.of(p.a, KeyLog) if e.ikev1_line)
    ike = [d for _, d in p.wire if not d.keepalive]
    pcap = write_pcap(
        tmp_path / "pke.pcap", [(p.now + n * 0.001, d.src, d.dst, d.data) for n, d in enumerate(ike)]
    )
    text = tshark(pcap, tmp_path, "-o", f"uat:ikev1_decryption_table:{line}")
    frames = parse_frames(text)
    n1 = 3 if aggressive else 6  # phase 1 messages
    assert len(frames) == n1 + 3
    first = frames[0] if aggressive else frames[2]  # AM1 / MM3: the ID, encrypted to the peer
    assert ID in first.clear and NONCE in first.clear and HASH in first.clear  # HASH(1)
    assert "west.sw-lab" not in first.text and west.dn not in first.text
    for f in frames[n1 : n1 + 2]:  # Quick Mode decrypts with the key log in both modes
        assert f.encrypted and f.decrypted[:2] == [HASH, SA], f"frame {f.number}: {f.decrypted}"
    assert frames[-1].encrypted and frames[-1].decrypted == [HASH]
    final = frames[n1 - 1 if aggressive else n1 - 2]  # AM3 / MM5
    assert final.encrypted and final.decrypted[:1] == [HASH]
    if auth == "pubkey-enc":
        assert "Malformed" not in text and "Expert Info (Error" not in text
    else:  # MM5 / AM3 misdecrypted (IV from the encrypted KE payloads); nothing else
        malformed = [f.number for f in frames if "Malformed" in f.text]
        assert malformed == [final.number], malformed
