"""Issue 12: ``snakeswan analyze`` on captures made in the test suite (two engines back to back,
every datagram into a pcap by tests/pcap.py): messages named and decrypted with the key log,
phase 1 HASHes checked with the PSK, the problems found, the same diagram as a live run."""

from __future__ import annotations

import io
import re
from contextlib import redirect_stdout
from pathlib import Path

import dpkt
import pytest

from snakeswan.analysis.capture import Analyzer, Report, parse_keylog
from snakeswan.analysis.pcapread import read_capture
from snakeswan.cli.main import main
from snakeswan.ike.events import IkeSaEstablished, KeyLog
from tests.pair import A_ADDR, B_ADDR, PSK, Pair, site_config
from tests.pcap import pcap_bytes

A_NET, B_NET = "10.231.1.0/24", "10.231.2.0/24"
FLOW = ["MM1", "MM2", "MM3", "MM4", "MM5", "MM6", "QM1", "QM2", "QM3"]


def capture(
    tmp_path: Path,
    *,
    aggressive: bool = False,
    nat: bool = False,
    drop: int | None = None,
    b_kw: dict | None = None,  # type: ignore[type-arg]
) -> tuple[Path, Path, Pair]:
    a_kw: dict[str, object] = {}
    bk: dict[str, object] = dict(b_kw or {})
    if aggressive:
        a_kw.update(aggressive=True, local_id="@west.test", remote_id="@east.test")
        bk.update(aggressive=True, local_id="@east.test", remote_id="@west.test")
    if nat:
        bk["remote_addrs"] = "%any"
    p = Pair(
        site_config(A_ADDR, B_ADDR, A_NET, B_NET, **a_kw),  # type: ignore[arg-type]
        site_config(B_ADDR, A_ADDR, B_NET, A_NET, **bk),  # type: ignore[arg-type]
        keylog=True,
        nat_a=("192.0.2.7", 40000) if nat else None,
    )
    if drop is not None:
        p.drop = lambda d, n: n >= drop and d.src[0] == B_ADDR  # the responder goes silent
    p.a.engine.initiate("site", now=p.now)
    p.run(60)
    ike = [d for _, d in p.wire if not d.keepalive]
    pcap = tmp_path / "c.pcap"
    pcap.write_bytes(pcap_bytes((p.now + n * 0.001, d.src, d.dst, d.data) for n, d in enumerate(ike)))
    keys = tmp_path / "c.keys"
    keys.write_text("".join(e.ikev1_line + "\n" for e in p.of(p.a, KeyLog) if e.ikev1_line))
    return pcap, keys, p


def analyze(pcap: Path, keys: Path | None = None, psk: bytes | None = None) -> Report:
    a = Analyzer(parse_keylog(keys.read_text()) if keys else {}, psk)
    for d in read_capture(pcap.read_bytes()).datagrams:
        a.feed(d)
    return a.finish()


def test_main_mode_decrypted_with_the_key_log_and_hashes_checked(tmp_path: Path) -> None:
    pcap, keys, p = capture(tmp_path)
    r = analyze(pcap, keys, PSK.encode())
    labels = [m.label for m in r.messages]
    assert labels[:9] == FLOW
    by = {m.label: m for m in r.messages}
    assert all(by[x].decrypted for x in ("MM5", "MM6", "QM1", "QM2", "QM3"))
    assert by["MM5"].payloads == "ID HASH N(INITIAL_CONTACT)" and by["QM1"].payloads.startswith("HASH SA No")
    assert "HASH_I verified with the given PSK" in by["MM5"].notes
    assert "HASH_R verified with the given PSK" in by["MM6"].notes
    assert [m.from_initiator for m in r.messages[:9]] == [True, False] * 3 + [True, False, True]
    assert r.problems == []
    est = p.of(p.a, IkeSaEstablished)[0]
    assert (r.sas[0].icookie, r.sas[0].rcookie) == (est.icookie, est.rcookie)
    assert r.sas[0].choice.startswith("AES_CBC_128/HMAC_SHA2_256_128")


def test_without_keys_encrypted_payloads_stay_hidden(tmp_path: Path) -> None:
    pcap, _, _ = capture(tmp_path)
    r = analyze(pcap)
    by = {m.label: m for m in r.messages}
    assert [m.label for m in r.messages][:9] == FLOW
    assert by["MM5"].payloads == "" and not by["MM5"].decrypted and "encrypted; no key" in by["MM5"].notes
    assert by["MM3"].payloads == "KE No NAT-D NAT-D"  # the clear messages are decoded all the same


def test_wrong_psk_is_found_in_the_hashes(tmp_path: Path) -> None:
    pcap, keys, _ = capture(tmp_path, aggressive=True)
    r = analyze(pcap, None, b"not-the-psk")  # aggressive mode: HASH_R is in the clear (AM2)
    assert [m.label for m in r.messages][:3] == ["AM1", "AM2", "AM3"]
    assert any("AM2" in str(x) or "HASH_R does not match the given PSK" in x.text for x in r.problems)
    assert [x.text for x in r.problems if "HASH" in x.text] == [
        "HASH_R does not match the given PSK (or the ID/SA bodies were altered)",
    ]
    assert r.messages[2].notes == ["encrypted; no key"]  # AM3 goes encrypted (issue 10)
    # with the key log, AM3's HASH_I is checked too
    w = analyze(pcap, keys, b"not-the-psk")
    assert [x.text for x in w.problems if "HASH" in x.text] == [
        "HASH_R does not match the given PSK (or the ID/SA bodies were altered)",
        "HASH_I does not match the given PSK (or the ID/SA bodies were altered)",
    ]
    good = analyze(pcap, keys, PSK.encode())
    assert not good.problems and "HASH_I verified with the given PSK" in good.messages[2].notes


def test_unanswered_retransmissions_are_problems(tmp_path: Path) -> None:
    pcap, keys, _ = capture(tmp_path, drop=3)  # B's MM4 (captured on the wire) never reaches A
    r = analyze(pcap, keys)
    mm3 = [m for m in r.messages if m.label == "MM3"]
    assert len(mm3) > 1 and all(m.retransmission for m in mm3[1:])
    texts = [x.text for x in r.problems]
    assert "MM3 sent again after MM4 (frame 4): MM4 did not reach the initiator?" in texts
    assert any(re.fullmatch(r"MM4 unanswered \(sent \d+ times\): phase 1 did not complete", t) for t in texts)


def test_nat_t_capture_on_4500(tmp_path: Path) -> None:
    pcap, keys, _ = capture(tmp_path, nat=True)
    contents = read_capture(pcap.read_bytes())
    assert any(d.dst[1] == 4500 for d in contents.datagrams)
    r = analyze(pcap, keys, PSK.encode())
    assert [m.label for m in r.messages][:9] == FLOW and r.problems == []
    assert all(m.decrypted for m in r.messages if m.encrypted)


def test_proposal_refused_is_reported(tmp_path: Path) -> None:
    pcap, _, _ = capture(tmp_path, b_kw={"ike": "aes256-sha1-modp1024"})
    r = analyze(pcap)
    assert [m.label for m in r.messages][:2] == ["MM1", "INFO"]
    assert any("the responder reports NO_PROPOSAL_CHOSEN" in x.text for x in r.problems)


def test_pcapng_and_ethernet_are_read(tmp_path: Path) -> None:
    pcap, _, _ = capture(tmp_path)
    raw = read_capture(pcap.read_bytes())
    out = io.BytesIO()
    w = dpkt.pcapng.Writer(out, linktype=dpkt.pcap.DLT_EN10MB)
    for ts, buf in dpkt.pcap.Reader(io.BytesIO(pcap.read_bytes())):
        eth = dpkt.ethernet.Ethernet(
            src=b"\x02" * 6, dst=b"\x04" * 6, type=dpkt.ethernet.ETH_TYPE_IP, data=buf
        )
        w.writepkt(bytes(eth), ts=ts)
    ng = read_capture(out.getvalue())
    assert [d.data for d in ng.datagrams] == [d.data for d in raw.datagrams]


def test_cli_text_and_diagram(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pcap, keys, _ = capture(tmp_path)
    psk = tmp_path / "psk"
    psk.write_text(PSK + "\n")
    assert main(["analyze", str(pcap), "--keys", str(keys), "--psk-file", str(psk), "--explain"]) == 0
    out = capsys.readouterr().out
    assert "IKE SA #1: 10.231.0.1:500 (initiator) <-> 10.231.0.2:500" in out
    assert (
        "-> MM5          ID HASH N(INITIAL_CONTACT)  [decrypted; HASH_I verified with the given PSK]" in out
    )
    assert "HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b)" in out and "problems: none found" in out
    assert main(["analyze", str(pcap), "--keys", str(keys), "--format", "diagram"]) == 0
    arrows = [
        line
        for line in capsys.readouterr().out.splitlines()
        if line.rstrip().endswith("|") and ("->|" in line or "|<" in line)
    ]
    labels = [a.split("|", 1)[1].strip("-<>| .").split(" ")[0] for a in arrows]
    assert labels[:9] == FLOW
    html = tmp_path / "c.html"
    assert main(["analyze", str(pcap), "--format", "html", "-o", str(html)]) == 0
    assert html.read_text().count('class="message"') == len(labels)
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all")
    with redirect_stdout(io.StringIO()):
        assert main(["analyze", str(bad)]) == 1


def test_analysis_of_the_capture_reproduces_the_live_explanation(tmp_path: Path) -> None:
    from snakeswan.analysis import diagram, report  # noqa: PLC0415
    from snakeswan.analysis.records import from_record  # noqa: PLC0415

    pcap, keys, p = capture(tmp_path)
    live = [
        s for s in diagram.steps(from_record(r) for r in p.a.engine.tracer.records) if s.direction != "note"
    ]
    offline = report.steps(analyze(pcap, keys))
    pick = lambda steps: [(s.direction, s.label, s.explanation) for s in steps if s.label[:2] in ("MM", "QM")]  # noqa: E731
    assert pick(live) == pick(offline) and len(pick(live)) == 9
    # the payloads as the initiator's trace names them, decrypted ones included
    assert [s.detail for s in live if s.label[:2] in ("MM", "QM")] == [
        s.detail for s in offline if s.label[:2] in ("MM", "QM")
    ]


def test_padding_longer_than_a_block_is_a_problem(tmp_path: Path) -> None:
    from snakeswan.crypto.algorithms import ike_cipher, ike_hash  # noqa: PLC0415
    from snakeswan.crypto.keymat import phase1_iv  # noqa: PLC0415
    from snakeswan.wire.enums import IkeEncryption, IkeHash  # noqa: PLC0415
    from snakeswan.wire.message import HEADER_SIZE, decode_message  # noqa: PLC0415
    from snakeswan.wire.payloads import KePayload  # noqa: PLC0415

    _, keys, p = capture(tmp_path)
    ike = [d for _, d in p.wire if not d.keepalive]
    gxi, gxr = (decode_message(ike[i].data).first(KePayload).data for i in (2, 3))  # type: ignore[union-attr]
    cipher, h = ike_cipher(IkeEncryption.AES_CBC, 128), ike_hash(IkeHash.SHA2_256)
    key = next(iter(parse_keylog(keys.read_text()).values()))
    iv = phase1_iv(h, gxi, gxr, 16)
    mm5 = ike[4].data
    plain = cipher.decrypt(key, iv, mm5[HEADER_SIZE:]) + bytes(32)  # two more blocks of padding
    body = cipher.encrypt(key, iv, plain)
    header = mm5[:24] + (HEADER_SIZE + len(body)).to_bytes(4, "big")
    packets = [(n * 0.001, d.src, d.dst, d.data) for n, d in enumerate(ike[:5])]
    packets[4] = (0.004, ike[4].src, ike[4].dst, header + body)
    (tmp_path / "pad.pcap").write_bytes(pcap_bytes(packets))
    r = analyze(tmp_path / "pad.pcap", keys)
    assert r.messages[4].decrypted and r.messages[4].payloads == "ID HASH N(INITIAL_CONTACT)"
    pads = [
        m
        for x in r.problems
        if (m := re.fullmatch(r"MM5: (\d+) bytes of padding, more than a cipher block", x.text))
    ]
    assert len(pads) == 1 and 32 <= int(pads[0].group(1)) < 48
    assert not any("padding" in x.text for x in analyze(tmp_path / "c.pcap", keys).problems)
