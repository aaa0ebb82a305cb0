"""IKE fragmentation (Cisco/strongSwan vendor-ID style, payload 132): cutting, reassembly and its
limits, and certificate Main/Aggressive Mode over a path that drops datagrams larger than 576 bytes
(as a path that drops IP fragments would), both roles."""

from __future__ import annotations

import random
import time

import pytest

from snakeswan.config.loader import parse_config
from snakeswan.errors import ConfigError, DecodeError
from snakeswan.ike import fragments, vendor
from snakeswan.ike.events import ChildSaEstablished, Datagram, IkeSaEstablished
from snakeswan.ike.fragments import MAX_FRAGMENTS, MAX_PER_SOURCE, Reassembler, split
from snakeswan.ike.impair import Impairer
from snakeswan.wire.enums import ExchangeType, PayloadType
from snakeswan.wire.message import HEADER_SIZE, Header, decode_header, decode_message, encode_datagram
from snakeswan.wire.payloads import FragmentPayload
from tests.pair import A_ADDR, B_ADDR, Pair, site_config
from tests.pki import TestPki
from tests.unit.ike.test_pair_pubkey import EAST, LAN_A, LAN_B, WEST, cert_config

SRC = ("10.231.0.1", 500)
IC, RC = bytes(range(1, 9)), bytes(range(9, 17))


def message(size: int, *, encrypted: bool = True, mid: int = 0) -> bytes:
    body = random.Random(size).randbytes(size - HEADER_SIZE)
    return encode_datagram(
        Header(IC, RC, PayloadType.ID, ExchangeType.IDENTITY_PROTECTION, int(encrypted), mid), body
    )


def fragment(number: int, last: bool, data: bytes, *, fid: int = 1, rc: bytes = RC) -> bytes:
    header = Header(IC, rc, PayloadType.FRAGMENT, ExchangeType.IDENTITY_PROTECTION, 0, 0)
    body = FragmentPayload(fid, number, last, data).encode_body()
    return encode_datagram(header, bytes((0, 0)) + (4 + len(body)).to_bytes(2, "big") + body)


# ---- cutting -------------------------------------------------------------------------------------


def test_split_keeps_the_header_clears_the_e_flag_and_numbers_from_one() -> None:
    data = message(1500, mid=0x1234)
    pieces = split(data, 500, 7)
    assert len(pieces) == 3
    for n, piece in enumerate(pieces, 1):
        h = decode_header(piece)  # the header's length is the datagram's
        assert (h.icookie, h.rcookie, h.exchange, h.message_id) == (
            IC,
            RC,
            ExchangeType.IDENTITY_PROTECTION,
            0x1234,
        )
        assert h.next_payload == PayloadType.FRAGMENT and not h.encrypted
        frag = decode_message(piece).first(FragmentPayload)
        assert frag is not None and (frag.fragment_id, frag.number, frag.last) == (7, n, n == 3)
    assert b"".join(decode_message(p).first(FragmentPayload).data for p in pieces) == data  # type: ignore[union-attr]
    assert all(len(p) <= 500 + fragments.FRAGMENT_OVERHEAD for p in pieces)


def test_split_refuses_more_than_sixteen_fragments() -> None:
    with pytest.raises(ValueError, match="fragments"):
        split(message(100 * (MAX_FRAGMENTS + 1)), 100, 1)


def test_data_per_fragment_fits_the_ip_datagram() -> None:
    # 576-byte IPv4 datagram: IP 20, UDP 8, ISAKMP 28, fragment payload header 8
    assert fragments.data_per_fragment(576, False, False) == 576 - 20 - 8 - 28 - 8
    assert fragments.data_per_fragment(1280, True, True) == 1280 - 40 - 8 - 4 - 36


# ---- reassembly ----------------------------------------------------------------------------------


def test_reassembly_returns_the_message_once_complete() -> None:
    data = message(1000)
    pieces = split(data, 300, 5)
    r = Reassembler()
    for p in reversed(pieces[1:]):
        assert r.add(p, SRC, 0.0) is None
    assert r.add(pieces[1], SRC, 0.0) is None  # a duplicate
    assert r.add(pieces[0], SRC, 0.0) == data
    assert len(r) == 0  # nothing kept afterwards


def test_a_newer_fragment_id_replaces_an_older_message_and_old_ones_are_refused() -> None:
    r = Reassembler()
    old, new = split(message(900), 400, 1), split(message(800), 400, 2)
    assert r.add(old[0], SRC, 0.0) is None
    assert r.add(new[1], SRC, 0.0) is None
    with pytest.raises(DecodeError, match="old fragment ID"):
        r.add(old[1], SRC, 0.0)
    assert r.add(new[0], SRC, 0.0) == message(800)


@pytest.mark.parametrize(
    ("pieces", "reason", "kept"),
    [
        ([(0, True, b"x")], "outside 1..16", 0),
        ([(MAX_FRAGMENTS + 1, True, b"x")], "outside 1..16", 0),
        ([(n, False, bytes(2000)) for n in range(1, 14)], "larger than", 0),
        # a conflict with what we hold: the older pieces go, the newer fragment starts again
        ([(2, True, b"x"), (3, False, b"y")], "after the last", 1),
        ([(3, True, b"x"), (2, True, b"y")], "inconsistent last", 1),
        ([(1, False, b"x"), (1, False, b"y")], "twice with other data", 1),
    ],
)
def test_unusable_fragments_are_refused(
    pieces: list[tuple[int, bool, bytes]], reason: str, kept: int
) -> None:
    r = Reassembler()
    with pytest.raises(DecodeError, match=reason):
        for number, last, data in pieces:
            r.add(fragment(number, last, data), SRC, 0.0)
    assert len(r) == kept


def test_a_stale_piece_with_the_same_fragment_id_does_not_block_the_next_message() -> None:
    """Libreswan numbers every message's fragments with ID 1: a late duplicate of an earlier
    message's fragment must not keep the next message from being joined."""
    first, second = split(message(900), 400, 1), split(message(1000), 400, 1)
    r = Reassembler()
    assert [r.add(p, SRC, 0.0) for p in first][-1] == message(900)
    assert r.add(first[0], SRC, 0.0) is None  # a late duplicate starts a stale partial message
    with pytest.raises(DecodeError, match="earlier fragments of this message were dropped"):
        r.add(second[0], SRC, 0.0)
    assert r.add(second[1], SRC, 0.0) is None
    assert r.add(second[2], SRC, 0.0) == message(1000)


def test_reassembled_message_must_have_the_fragments_cookies_and_not_be_a_fragment() -> None:
    r = Reassembler()
    other = fragment(1, True, bytes(8) + message(200)[8:])  # another initiator cookie inside
    with pytest.raises(DecodeError, match="other cookies"):
        r.add(other, SRC, 0.0)
    nested = fragment(1, True, fragment(1, True, b"abc"))
    with pytest.raises(DecodeError, match="fragment itself"):
        r.add(nested, SRC, 0.0)


def test_limits_per_source_in_all_and_in_time() -> None:
    r = Reassembler()
    for i in range(MAX_PER_SOURCE):
        assert r.add(fragment(1, False, b"x", rc=bytes([i + 1]) * 8), SRC, 0.0) is None
    with pytest.raises(DecodeError, match="under reassembly from this address"):
        r.add(fragment(1, False, b"x", rc=bytes([99]) * 8), SRC, 0.0)
    # another address is not blocked; after the timeout the first ones are gone
    assert r.add(fragment(1, False, b"x"), ("10.231.0.9", 500), 0.0) is None
    assert r.add(fragment(1, False, b"x", rc=bytes([99]) * 8), SRC, fragments.TIMEOUT + 1) is None
    assert len(r) == 1
    for n in range(fragments.MAX_PENDING + 10):  # the oldest make room
        r.add(fragment(1, False, b"x"), (f"10.231.{n // 200}.{n % 200 + 1}", 500), 100.0)
    assert len(r) == fragments.MAX_PENDING


def test_fragment_vendor_id_with_capability_bits() -> None:
    assert vendor.fragmentation(vendor.CISCO_FRAGMENTATION)
    assert vendor.fragmentation(vendor.CISCO_FRAGMENTATION + bytes.fromhex("80000000"))  # racoon
    assert not vendor.fragmentation(vendor.DPD)
    assert vendor.describe(vendor.CISCO_FRAGMENTATION + b"\x80\0\0\0") == "FRAGMENTATION"


# ---- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["yes", "no", "accept", "force"])
def test_fragmentation_values_load(value: str) -> None:
    conf = site_config(A_ADDR, B_ADDR, LAN_A, LAN_B).replace(
        "[connections.site]\n", f'[connections.site]\nfragmentation = "{value}"\n'
    )
    assert parse_config(conf, "a.toml").connection("site").fragmentation == value


def test_fragmentation_defaults_to_yes_and_bad_values_are_refused() -> None:
    conf = site_config(A_ADDR, B_ADDR, LAN_A, LAN_B)
    cfg = parse_config(conf, "a.toml")
    assert cfg.connection("site").fragmentation == "yes" and cfg.daemon.fragment_size == 1280
    with pytest.raises(ConfigError, match="fragmentation"):
        parse_config(
            conf.replace("[connections.site]\n", '[connections.site]\nfragmentation = "sometimes"\n'),
            "a.toml",
        )
    with pytest.raises(ConfigError, match="fragment_size"):
        parse_config("[daemon]\nfragment_size = 500\n" + conf, "a.toml")


# ---- two engines over a path that drops what does not fit in 576 bytes -----------------------------

MTU = 576


@pytest.fixture(scope="module", params=["rsa"])
def pki(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki(tmp_path_factory.mktemp("pki-frag"), request.param)


def _configs(pki: TestPki, frag_a: str, frag_b: str, *, aggressive: bool = False) -> tuple[str, str]:
    west, east = pki.host(WEST), pki.host(EAST, key_index=1)
    kw = {"aggressive": aggressive, "ike": "aes128-sha256-modp2048"}
    a = cert_config(A_ADDR, B_ADDR, LAN_A, LAN_B, west, pki.ca_path, remote_dn=east.dn, **kw)  # type: ignore[arg-type]
    b = cert_config(B_ADDR, A_ADDR, LAN_B, LAN_A, east, pki.ca_path, remote_dn=west.dn, **kw)  # type: ignore[arg-type]

    def tune(conf: str, frag: str) -> str:
        conf = conf.replace("[connections.site]\n", f'[connections.site]\nfragmentation = "{frag}"\n')
        return f"[daemon]\nfragment_size = {MTU}\n" + conf

    return tune(a, frag_a), tune(b, frag_b)


def _small_path(p: Pair) -> list[int]:
    """Datagrams whose IPv4 packet exceeds the MTU are lost (a path dropping IP fragments)."""
    lost: list[int] = []

    def drop(d: Datagram, n: int) -> bool:
        if len(d.data) + 28 > MTU:
            lost.append(n)
            return True
        return False

    p.drop = drop
    return lost


def _run(a: str, b: str) -> tuple[Pair, list[int]]:
    p = Pair(a, b)
    offset = time.time() - p.now
    p.a.engine.ctx.wall_offset = p.b.engine.ctx.wall_offset = offset
    lost = _small_path(p)
    p.a.engine.initiate("site", now=p.now)
    p.run(max_time=120.0)
    return p, lost


@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
def test_certificates_over_a_small_mtu_path(pki: TestPki, aggressive: bool) -> None:
    # AM1 (KE of MODP 2048, CERTREQ) is larger than 576 bytes and goes before any vendor ID came
    # back: `force` cuts even that first message (and the responder joins a new SA's fragments)
    a, b = _configs(pki, "force" if aggressive else "yes", "yes", aggressive=aggressive)
    p, lost = _run(a, b)
    assert not lost  # nothing too large was ever sent
    assert len(p.of(p.a, IkeSaEstablished)) == 1 and len(p.of(p.b, IkeSaEstablished)) == 1
    assert len(p.of(p.a, ChildSaEstablished)) == 1
    for side in (p.a, p.b):  # both ends cut their certificate message and joined the peer's
        assert list(side.engine.tracer.find("fragmented")), side
        assert list(side.engine.tracer.find("reassembled")), side
    frags = [d for _, d in p.wire if decode_header(d.data).next_payload == PayloadType.FRAGMENT]
    assert frags and all(len(d.data) + 28 <= MTU for d in frags)


def test_without_fragmentation_the_same_path_fails(pki: TestPki) -> None:
    """The control: one side says `no`, so nobody fragments and the certificate messages are lost."""
    a, b = _configs(pki, "yes", "no")
    p, lost = _run(a, b)
    assert lost and not p.of(p.a, IkeSaEstablished)
    assert not list(p.a.engine.tracer.find("fragmented"))  # B did not announce it: A does not cut


def test_accept_announces_but_does_not_send_fragments(pki: TestPki) -> None:
    a, b = _configs(pki, "yes", "accept")
    p, lost = _run(a, b)
    assert list(p.a.engine.tracer.find("fragmented"))  # A was told B takes fragments
    assert list(p.b.engine.tracer.find("reassembled"))
    assert not list(p.b.engine.tracer.find("fragmented"))
    assert lost and not p.of(p.a, IkeSaEstablished)  # B's own MM6 was too large


def test_force_sends_fragments_to_a_peer_that_did_not_announce_them(pki: TestPki) -> None:
    """`no` only stops announcing: received fragments are joined anyway (as swanctl)."""
    a, b = _configs(pki, "force", "no")
    p, lost = _run(a, b)
    assert list(p.a.engine.tracer.find("fragmented"))
    assert list(p.b.engine.tracer.find("reassembled"))
    assert not p.of(p.a, IkeSaEstablished) and lost  # B's MM6 is too large and not cut


def test_fragments_for_unknown_cookies_are_dropped_with_a_reason() -> None:
    p = Pair(site_config(A_ADDR, B_ADDR, LAN_A, LAN_B), site_config(B_ADDR, A_ADDR, LAN_B, LAN_A))
    p.b.engine.receive_datagram(fragment(1, False, b"x"), (A_ADDR, 500), (B_ADDR, 500), p.now)
    drops = [r.fields for r in p.b.engine.tracer.find("drop")]
    assert drops and "unknown cookies" in str(drops[-1]["reason"]) and len(p.b.engine.reassembler) == 0


def test_impairments_name_whole_messages_not_fragments() -> None:
    """An IKE fragment is never named nor impaired (it would shift the names of later messages)."""
    imp = Impairer.from_texts(["drop:MM5"])
    d = Datagram(fragment(1, False, b"x"), SRC, ("10.231.0.2", 500))
    assert imp.outbound(d) == [d] and not imp.names
