"""``snakeswan analyze`` on a capture whose certificate messages were cut into IKE fragments
(payload 132): the fragments are joined, then named and decrypted like whole messages."""

from __future__ import annotations

import time
from pathlib import Path

from snakeswan.analysis.capture import Analyzer, parse_keylog
from snakeswan.analysis.pcapread import read_capture
from snakeswan.ike.events import IkeSaEstablished, KeyLog
from snakeswan.wire.enums import PayloadType
from snakeswan.wire.message import decode_header
from tests.pair import Pair
from tests.pcap import pcap_bytes
from tests.pki import TestPki
from tests.unit.ike.test_fragmentation import _configs


def test_fragmented_main_mode_is_joined_named_and_decrypted(tmp_path: Path) -> None:
    a, b = _configs(TestPki(tmp_path / "pki", "rsa"), "yes", "yes")
    p = Pair(a, b, keylog=True)
    p.a.engine.ctx.wall_offset = p.b.engine.ctx.wall_offset = time.time() - p.now
    p.a.engine.initiate("site", now=p.now)
    p.run(30)
    assert len(p.of(p.a, IkeSaEstablished)) == 1
    ike = [d for _, d in p.wire if not d.keepalive]
    frags = [d for d in ike if decode_header(d.data).next_payload == PayloadType.FRAGMENT]
    assert len(frags) >= 4
    pcap = read_capture(pcap_bytes((p.now + n * 0.001, d.src, d.dst, d.data) for n, d in enumerate(ike)))
    keys = parse_keylog("".join(e.ikev1_line + "\n" for e in p.of(p.a, KeyLog) if e.ikev1_line))
    analyzer = Analyzer(keys)
    for d in pcap.datagrams:
        analyzer.feed(d)
    r = analyzer.finish()
    labels = [m.label for m in r.messages]
    assert labels[:9] == ["MM1", "MM2", "MM3", "MM4", "MM5", "MM6", "QM1", "QM2", "QM3"]
    assert len(r.messages) == len(ike) - len(frags) + 2  # each cut message counted once
    by = {m.label: m for m in r.messages}
    for label in ("MM5", "MM6"):
        assert by[label].decrypted and "CERT" in by[label].payloads and "SIG" in by[label].payloads
    assert r.problems == []
