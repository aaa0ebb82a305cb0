"""Issue 12: ``snakeswan analyze`` with DH shared secrets instead of a key log (keys derived,
every phase 2 HASH checked), and captures whose IKE messages were fragmented by IP."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import dpkt
import pytest

from snakeswan.analysis.capture import Analyzer, Report
from snakeswan.analysis.pcapread import read_capture
from snakeswan.analysis.reassembly import Reassembler
from snakeswan.analysis.secrets import parse_dh_secrets
from snakeswan.cli.main import main
from snakeswan.ike.events import KeyLog
from tests.pair import A_ADDR, B_ADDR, PSK, Pair, site_config
from tests.pcap import ipv4_udp, pcap_bytes

A_NET, B_NET = "10.231.1.0/24", "10.231.2.0/24"
FLOW = ["MM1", "MM2", "MM3", "MM4", "MM5", "MM6", "QM1", "QM2", "QM3"]


def negotiate(tmp_path: Path) -> tuple[Path, str, str, Pair]:
    """A PSK Main Mode + Quick Mode + a Delete, captured; the initiator's --explain-keys log and key log."""
    p = Pair(
        site_config(A_ADDR, B_ADDR, A_NET, B_NET), site_config(B_ADDR, A_ADDR, B_NET, A_NET), keylog=True
    )
    p.a.engine.tracer.log_keys = True  # the explicit opt-in
    p.a.engine.initiate("site", now=p.now)
    p.run(30)
    sa = p.a.engine.ike_sas[0]
    p.a.engine.delete_child(sa.unique_id, sa.children[0].spi_in, now=p.now)
    p.run(5)
    ike = [d for _, d in p.wire if not d.keepalive]
    pcap = tmp_path / "c.pcap"
    pcap.write_bytes(pcap_bytes((p.now + n * 0.001, d.src, d.dst, d.data) for n, d in enumerate(ike)))
    log = "\n".join(f"Nov 30 05:00:00 snakeswan[1]: {r.render()}" for r in p.a.engine.tracer.records)
    keys = "".join(e.ikev1_line + "\n" for e in p.of(p.a, KeyLog) if e.ikev1_line)
    return pcap, log, keys, p


def analyze(data: bytes, psk: bytes | None, secrets: list[bytes]) -> Report:
    a = Analyzer({}, psk, secrets)
    for d in read_capture(data).datagrams:
        a.feed(d)
    return a.finish()


def test_dh_secret_and_psk_decrypt_everything_and_check_every_hash(tmp_path: Path) -> None:
    pcap, log, _, _ = negotiate(tmp_path)
    secrets = parse_dh_secrets(log)
    assert len(secrets) == 1 and len(secrets[0]) == 256  # MODP2048's g^xy, from gxy=<hex>
    r = analyze(pcap.read_bytes(), PSK.encode(), [bytes(256), *secrets])  # a wrong one first
    by: dict[str, list[str]] = {}
    for m in r.messages:
        by.setdefault(m.label, []).extend(m.notes)
    assert [m.label for m in r.messages][:9] == FLOW
    assert all(m.decrypted for m in r.messages if m.encrypted)
    assert (
        "keys derived from a given DH secret" in by["MM5"]
        and "HASH_I verified with the given PSK" in by["MM5"]
    )
    assert "HASH(1) verified with SKEYID_a" in by["QM1"]
    assert "HASH(2) verified with SKEYID_a" in by["QM2"]
    assert "HASH(3) verified with SKEYID_a" in by["QM3"]
    assert "HASH verified with SKEYID_a" in by["INFO"]  # the Delete
    assert r.problems == []


def test_wrong_or_missing_secret_and_missing_psk_say_why(tmp_path: Path) -> None:
    pcap, log, _, _ = negotiate(tmp_path)
    secrets = parse_dh_secrets(log)
    wrong = analyze(pcap.read_bytes(), PSK.encode(), [bytes(range(256))])
    mm5 = next(m for m in wrong.messages if m.label == "MM5")
    assert not mm5.decrypted and "encrypted; none of the DH secrets decrypts it" in mm5.notes
    no_psk = analyze(pcap.read_bytes(), None, secrets)
    mm5 = next(m for m in no_psk.messages if m.label == "MM5")
    assert not mm5.decrypted and "encrypted; a PSK is needed with the DH secrets" in mm5.notes
    bad_psk = analyze(pcap.read_bytes(), b"not-the-psk", secrets)  # SKEYID differs: nothing decrypts
    assert not any(m.decrypted for m in bad_psk.messages)


def test_a_tampered_quick_mode_hash_is_a_problem(tmp_path: Path) -> None:
    pcap, log, _, _ = negotiate(tmp_path)
    # QM2's HASH(2) altered after decryption, as a peer with the wrong SKEYID_a would send it
    good = analyze(pcap.read_bytes(), PSK.encode(), parse_dh_secrets(log))
    assert not good.problems
    a = Analyzer({}, PSK.encode(), parse_dh_secrets(log))
    orig = a._check_phase2_hash

    def corrupt(sa, msg, payloads):  # type: ignore[no-untyped-def]
        if msg.label == "QM2":
            from snakeswan.wire.payloads import HashPayload  # noqa: PLC0415

            first = payloads[0]
            bad = HashPayload(bytes(x ^ 0xFF for x in first.payload.data))
            payloads = (type(first)(bad, first.raw), *payloads[1:])
        orig(sa, msg, payloads)

    a._check_phase2_hash = corrupt  # type: ignore[method-assign]
    for d in read_capture(pcap.read_bytes()).datagrams:
        a.feed(d)
    texts = [x.text for x in a.finish().problems]
    assert texts == ["QM2: HASH(2) does not match SKEYID_a from the DH secret"]


def test_secrets_parsed_from_hex_lines_and_a_strongswan_dump() -> None:
    secret = bytes(range(32)) * 4
    dump = ["Nov 30 05:00:00 09[IKE] shared Diffie Hellman secret => 128 bytes @ 0x7f00deadbeef"]
    for off in range(0, len(secret), 16):
        chunk = secret[off : off + 16]
        dump.append(
            f"Nov 30 05:00:00 09[IKE]   {off:>3}: "
            + " ".join(f"{b:02X}" for b in chunk)
            + "  ................"
        )
    dump.append("Nov 30 05:00:00 09[IKE] SKEYID => 32 bytes @ 0x7f00")
    text = "\n".join(
        [*dump, "  " + secret.hex(":"), "0x" + (b"\x01" * 64).hex(), "deadbeef", "gxy=" + "ab" * 8]
    )
    assert parse_dh_secrets(text) == [secret, b"\x01" * 64]  # a repeat once; short values are not secrets


def test_cli_dh_secrets_write_keys_like_the_key_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pcap, log, keys, _ = negotiate(tmp_path)
    (tmp_path / "log").write_text(log)
    (tmp_path / "psk").write_text(PSK + "\n")
    out = tmp_path / "derived.keys"
    argv = ["analyze", str(pcap), "--psk-file", str(tmp_path / "psk"), "--dh-secrets", str(tmp_path / "log")]
    assert main([*argv, "--write-keys", str(out)]) == 0
    text = capsys.readouterr().out
    assert "HASH(3) verified with SKEYID_a" in text and "problems: none found" in text
    assert out.read_text() == keys  # the same line the daemon's --keylog wrote
    (tmp_path / "empty").write_text("nothing here\n")
    assert main(["analyze", str(pcap), "--dh-secrets", str(tmp_path / "empty")]) == 1
    assert "no DH secret found" in capsys.readouterr().err


# ---- IP fragments ---------------------------------------------------------------------------------


def _fragments_v4(packet: bytes, size: int) -> list[bytes]:
    """``packet`` (one IPv4 datagram) cut into fragments with ``size`` bytes of payload each."""
    hdr, data = bytearray(packet[:20]), packet[20:]
    out = []
    for off in range(0, len(data), size):
        part = data[off : off + size]
        more = off + size < len(data)
        h = bytearray(hdr)
        struct.pack_into("!H", h, 2, 20 + len(part))
        struct.pack_into("!H", h, 6, (0x2000 if more else 0) | (off // 8))
        struct.pack_into("!H", h, 10, 0)
        out.append(bytes(h) + part)
    return out


def _fragments_v6(src: str, dst: str, udp: bytes, size: int, ident: int) -> list[bytes]:
    out = []
    for off in range(0, len(udp), size):
        part = udp[off : off + size]
        more = off + size < len(udp)
        frag = struct.pack("!BBHI", 17, 0, (off // 8) << 3 | (1 if more else 0), ident)
        ip6 = dpkt.ip6.IP6(
            src=__import__("ipaddress").IPv6Address(src).packed,
            dst=__import__("ipaddress").IPv6Address(dst).packed,
            nxt=44, hlim=64, plen=len(frag) + len(part),
        )  # fmt: skip
        out.append(bytes(ip6.pack_hdr()) + frag + part)
    return out


def _pcap(frames: list[bytes]) -> bytes:
    buf = io.BytesIO()
    w = dpkt.pcap.Writer(buf, linktype=101)
    for n, f in enumerate(frames):
        w.writepkt(f, ts=1000.0 + n * 0.001)
    return buf.getvalue()


def test_ipv4_fragmented_ike_is_reassembled_even_out_of_order(tmp_path: Path) -> None:
    pcap, log, _, _ = negotiate(tmp_path)
    whole = read_capture(pcap.read_bytes())
    frames: list[bytes] = []
    for n, d in enumerate(whole.datagrams):
        frags = _fragments_v4(ipv4_udp(d.src, d.dst, d.data, ident=n + 1), 64)
        frames += frags[::-1] if n % 2 else frags[:1] + frags  # odd: backwards; even: first one twice
    assert len(frames) > 2 * len(whole.datagrams)
    got = read_capture(_pcap(frames))
    assert [d.data for d in got.datagrams] == [d.data for d in whole.datagrams]
    assert got.reassembled == len(whole.datagrams) and not got.skipped
    r = analyze(_pcap(frames), PSK.encode(), parse_dh_secrets(log))
    assert [m.label for m in r.messages][:9] == FLOW and r.problems == []


def test_ipv6_fragments_and_the_ones_refused() -> None:
    data = bytes(range(256)) * 3
    udp = struct.pack("!HHHH", 500, 500, 8 + len(data), 0) + data
    frames = _fragments_v6("fd00::1", "fd00::2", udp, 256, 7)
    got = read_capture(_pcap(frames))
    assert [d.data for d in got.datagrams] == [data] and got.datagrams[0].src == ("fd00::1", 500)
    # a fragment missing: never completed; conflicting overlap: refused
    lost = read_capture(_pcap(frames[:-1]))
    assert not lost.datagrams and lost.skipped["IP datagram never completed (fragments missing)"] == 1
    clash = bytearray(frames[1])
    clash[-1] ^= 0xFF
    bad = read_capture(_pcap([frames[0], frames[1], bytes(clash), *frames[2:]]))
    assert bad.skipped["IP fragments dropped: overlapping fragments with different bytes"] == 1


def test_reassembler_limits() -> None:
    r = Reassembler(timeout=30.0, max_pending=2)
    key = ("a", "b", 17, 1)
    assert r.add(key, 0, True, b"x" * 8, 0.0, 1) is None
    assert r.add(("a", "b", 17, 2), 0, True, b"y" * 8, 0.0, 2) is None
    assert r.add(("a", "b", 17, 3), 0, True, b"z" * 8, 0.0, 3) is None  # the oldest is given up
    assert r.refused["too many incomplete fragmented datagrams"] == 1
    assert r.add(key, 8, False, b"x", 1.0, 4) is None  # its first part is gone
    assert r.add(("a", "b", 17, 4), 65528, False, b"q" * 16, 2.0, 5) is None
    assert r.refused["fragmented datagram over 65,535 bytes"] == 1
    assert r.add(("a", "b", 17, 5), 0, True, b"odd", 3.0, 6) is None
    assert r.refused["fragment with more to come not a multiple of 8 bytes"] == 1
    assert r.add(("c", "d", 17, 9), 8, False, b"!", 100.0, 7) is None  # everything older expires
    assert r.refused["fragments never completed within the reassembly timeout"] >= 2
    assert r.add(("c", "d", 17, 9), 0, True, b"01234567", 101.0, 8) == (b"01234567!", [7, 8])
