"""Issue 10's exchanges decoded by Wireshark with our key log: the commit bit and CONNECTED, a
draft-only NAT-T peer behind a NAT (NAT-D 130, NAT-OA 131, the float), and certificate Main Mode
cut into fragments (tshark reassembles, then decrypts). Two engines back to back, their datagrams
(as delivered) in a pcap; see test_tshark_decode.py for the method."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from snakeswan.ike.events import ChildSaEstablished, Datagram, IkeSaEstablished, KeyLog
from tests.integration.test_tshark_decode import HASH, INFO, NOTIFY, QUICK, parse_frames, tshark
from tests.pair import A_ADDR, B_ADDR, Pair, site_config
from tests.pcap import write_pcap
from tests.pki import TestPki
from tests.unit.ike.test_commit_bit import make_pair
from tests.unit.ike.test_fragmentation import _configs
from tests.unit.ike.test_natt_drafts import only_draft

pytestmark = pytest.mark.tshark

LAN_A, LAN_B = "10.231.1.0/24", "10.231.2.0/24"


def capture(p: Pair) -> list[Datagram]:
    """What each side received (after the pair's rewrite), in order."""
    seen: list[Datagram] = []
    inner = p.rewrite

    def record(d: Datagram, n: int) -> Datagram:
        out = inner(d, n)
        if not out.keepalive:
            seen.append(out)
        return out

    p.rewrite = record
    return seen


def decode(p: Pair, seen: list[Datagram], tmp_path: Path, name: str) -> str:
    (line,) = {e.ikev1_line for e in p.of(p.a, KeyLog) if e.ikev1_line}
    pcap = write_pcap(
        tmp_path / f"{name}.pcap", [(p.now + n * 0.001, d.src, d.dst, d.data) for n, d in enumerate(seen)]
    )
    text = tshark(pcap, tmp_path, "-o", f"uat:ikev1_decryption_table:{line}")
    assert "Malformed" not in text and "Expert Info (Error" not in text
    return text


def test_commit_bit_and_connected(tmp_path: Path) -> None:
    p = make_pair(a_commit=True, keylog=True)
    seen = capture(p)
    p.a.engine.initiate("site", now=p.now)
    p.run(30)
    assert len(p.of(p.a, ChildSaEstablished)) == 1
    frames = parse_frames(decode(p, seen, tmp_path, "commit"))
    qm1, qm2, qm3, connected = frames[6:10]
    assert [f.exchange for f in (qm1, qm2, qm3, connected)] == [QUICK, QUICK, QUICK, INFO]
    for f in (qm1, qm2):
        assert re.search(r"\.\.1\. = Commit: Commit", f.text), f.text[:3000]
    assert not re.search(r"\.\.1\. = Commit: Commit", qm3.text)
    # the CONNECTED notify decrypts (its IV continues the Quick Mode's chain) and is recognised
    assert connected.decrypted == [HASH, NOTIFY], connected.decrypted
    assert "CONNECTED (16384)" in connected.text


@pytest.mark.parametrize("mode", ["tunnel", "transport"])
def test_draft_nat_traversal(mode: str, tmp_path: Path) -> None:
    a = site_config(A_ADDR, B_ADDR, LAN_A, LAN_B, mode=mode)
    b = site_config(B_ADDR, A_ADDR, LAN_B, LAN_A, mode=mode, remote_addrs="%any")
    p = Pair(a, b, keylog=True, nat_a=("10.231.9.9", 40000))
    p.rewrite = only_draft("02n")
    seen = capture(p)
    p.a.engine.initiate("site", now=p.now)
    p.run(30)
    assert len(p.of(p.a, ChildSaEstablished)) == 1
    text = decode(p, seen, tmp_path, f"draft-{mode}")
    frames = parse_frames(text)
    assert text.count("Payload: NAT-D (draft-ietf-ipsec-nat-t-ike-01 to 03) (130)") == 4
    assert "Payload: NAT-D (RFC 3947) (20)" not in text
    assert "draft-ietf-ipsec-nat-t-ike-02\\n" in text and "RFC 3947" not in text.replace("NAT-D (RFC", "")
    assert all("Non-ESP Marker" in f.text for f in frames[4:])  # floated to 4500
    qm1 = next(f for f in frames if f.exchange == QUICK)
    kind, value = ("Tunnel", 61443) if mode == "tunnel" else ("Transport", 61444)
    assert f"Encapsulation Mode: UDP-Encapsulated-{kind} (draft) ({value})" in qm1.text
    if mode == "transport":
        # NAT-OAi, NAT-OAr as draft payloads
        assert len(re.findall(r"^ +Payload: NAT-OA[^\n]*\(131\)$", qm1.text, re.M)) == 2, qm1.text[-3000:]


def test_fragmented_certificate_main_mode(tmp_path: Path) -> None:
    pki = TestPki(tmp_path / "pki", "rsa")
    a, b = _configs(pki, "yes", "yes")
    p = Pair(a, b, keylog=True)
    offset = time.time() - p.now
    p.a.engine.ctx.wall_offset = p.b.engine.ctx.wall_offset = offset
    seen = capture(p)
    p.a.engine.initiate("site", now=p.now)
    p.run(30)
    assert len(p.of(p.a, IkeSaEstablished)) == 1
    text = decode(p, seen, tmp_path, "frag")
    assert all(len(d.data) + 28 <= 576 for d in seen)
    assert text.count("Payload: Cisco-Fragmentation (132)") >= 4
    assert text.count("[Reassembled ISAKMP length:") == 2
    assert text.count("Payload: Certificate (6)") == 2 and text.count("Payload: Signature (9)") == 2
