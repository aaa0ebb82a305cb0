"""TUN offloads (ipsec/offload.py): virtio_net_hdr framing, TSO segmentation, checksum completion and
GRO-style coalescing, with every checksum checked against a slow reference sum written here."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snakeswan.ipsec import offload
from snakeswan.ipsec.offload import (
    GSO_NONE,
    GSO_TCPV4,
    GSO_TCPV6,
    MAX_IP_LEN,
    NEEDS_CSUM,
    VNET_HDR_LEN,
    ZERO_HEADER,
    VnetHeader,
    coalesce,
    complete_checksum,
    internet_checksum,
    ones_sum,
    segment,
    split_frame,
)
from snakeswan.ipsec.packet import Drop

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
SRC = {4: bytes([10, 231, 1, 1]), 6: bytes.fromhex("fd00000000000001" + "0000000000000001")}
DST = {4: bytes([10, 231, 2, 1]), 6: bytes.fromhex("fd00000000000002" + "0000000000000001")}
TIMESTAMPS = bytes([1, 1, 8, 10]) + struct.pack("!II", 123456, 654321)


# ---- a slow reference -----------------------------------------------------------------------------


def ref_sum(data: bytes) -> int:
    """Ones' complement sum, word by word with end-around carry (RFC 1071 as written)."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


def pseudo(version: int, src: bytes, dst: bytes, length: int) -> bytes:
    if version == 4:
        return src + dst + struct.pack("!BBH", 0, 6, length)
    return src + dst + struct.pack("!IHBB", length, 0, 0, 6)


def ip_header_valid(p: bytes) -> bool:
    return p[0] >> 4 == 6 or ref_sum(p[: (p[0] & 15) * 4]) == 0xFFFF


def tcp_valid(p: bytes, t: int | None = None) -> bool:
    version = p[0] >> 4
    t = t if t is not None else (20 if version == 4 else 40)
    src, dst = (p[12:16], p[16:20]) if version == 4 else (p[8:24], p[24:40])
    return ref_sum(pseudo(version, src, dst, len(p) - t) + p[t:]) == 0xFFFF


def set_tcp_checksum(p: bytearray, t: int) -> None:
    version = p[0] >> 4
    src, dst = (bytes(p[12:16]), bytes(p[16:20])) if version == 4 else (bytes(p[8:24]), bytes(p[24:40]))
    p[t + 16 : t + 18] = b"\0\0"
    p[t + 16 : t + 18] = struct.pack(
        "!H", 0xFFFF - ref_sum(pseudo(version, src, dst, len(p) - t) + bytes(p[t:]))
    )


def tcp_packet(
    version: int,
    payload: bytes,
    *,
    seq: int = 1000,
    ack: int = 777,
    flags: int = ACK,
    ident: int = 7,
    tos: int = 0,
    ttl: int = 64,
    options: bytes = TIMESTAMPS,
    window: int = 512,
    sport: int = 40000,
    dport: int = 5201,
    ext: bytes = b"",
    df: bool = True,
    valid: bool = True,
) -> bytes:
    """A TCP/IPv4 or TCP/IPv6 packet (``ext``: IPv6 extension headers, next header TCP) with
    correct checksums (``valid=False``: a wrong TCP checksum)."""
    thl = 20 + len(options)
    assert thl % 4 == 0
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack, (thl // 4) << 4, flags, window, 0, 0)
    tcp += options + payload
    if version == 4:
        ip = bytearray(
            struct.pack(
                "!BBHHHBBH4s4s",
                0x45,
                tos,
                20 + len(tcp),
                ident,
                0x4000 if df else 0,
                ttl,
                6,
                0,
                SRC[4],
                DST[4],
            )
        )
        ip[10:12] = struct.pack("!H", 0xFFFF - ref_sum(bytes(ip)))
    else:
        nh = 60 if ext else 6
        ip = bytearray(
            struct.pack("!IHBB16s16s", (6 << 28) | (tos << 20), len(ext) + len(tcp), nh, ttl, SRC[6], DST[6])
        )
        ip += ext
    p = bytearray(ip + tcp)
    set_tcp_checksum(p, len(ip))
    if not valid:
        p[len(ip) + 16] ^= 0x5A
    return bytes(p)


def super_packet(version: int, payload: bytes, mss: int, **kw: object) -> tuple[VnetHeader, bytes]:
    """What the kernel hands a TUN device with TSO: one big packet, the pseudo-header sum (with the
    super-packet's length) in the TCP checksum field, and its GSO header."""
    p = bytearray(tcp_packet(version, payload, **kw))  # type: ignore[arg-type]
    t = 20 if version == 4 else 40 + len(kw.get("ext", b""))  # type: ignore[arg-type]
    src, dst = (bytes(p[12:16]), bytes(p[16:20])) if version == 4 else (bytes(p[8:24]), bytes(p[24:40]))
    p[t + 16 : t + 18] = struct.pack("!H", ref_sum(pseudo(version, src, dst, len(p) - t)))
    thl = (p[t + 12] >> 4) * 4
    gso = GSO_TCPV4 if version == 4 else GSO_TCPV6
    return VnetHeader(NEEDS_CSUM, gso, t + thl, mss, t, 16), bytes(p)


def segments_of(
    version: int,
    payload: bytes,
    mss: int,
    *,
    seq: int = 1000,
    ident: int = 7,
    last_flags: int = ACK | PSH,
    **kw: object,
) -> list[bytes]:
    """The packets a peer would have sent for ``payload``: mss-sized, IDs counting up."""
    out = []
    chunks = [payload[i : i + mss] for i in range(0, len(payload), mss)]
    for i, chunk in enumerate(chunks):
        flags = last_flags if i == len(chunks) - 1 else ACK
        out.append(tcp_packet(version, chunk, seq=seq + i * mss, ident=ident + i, flags=flags, **kw))  # type: ignore[arg-type]
    return out


def tcp_payload(p: bytes) -> bytes:
    t = 20 if p[0] >> 4 == 4 else 40
    return p[t + (p[t + 12] >> 4) * 4 :]


def kernel_receive(frame: bytes) -> list[bytes]:
    """What the kernel makes of a frame written to the TUN device: the packet, or (GSO) the
    segments it would cut it into; checks the NEEDS_CSUM contract on the way."""
    h = VnetHeader.unpack(frame)
    p = frame[VNET_HDR_LEN:]
    if h.gso_type == GSO_NONE:
        assert h == VnetHeader()
        return [p]
    assert h.flags == NEEDS_CSUM and h.csum_offset == 16
    t = h.csum_start
    # the field holds the (folded, not complemented) pseudo-header sum of the super-packet
    version = p[0] >> 4
    src, dst = (p[12:16], p[16:20]) if version == 4 else (p[8:24], p[24:40])
    assert struct.unpack_from("!H", p, t + 16)[0] == ref_sum(pseudo(version, src, dst, len(p) - t))
    assert h.hdr_len == t + (p[t + 12] >> 4) * 4
    assert ip_header_valid(p)
    assert len(p) <= MAX_IP_LEN
    return segment(h, p)


# ---- checksums ------------------------------------------------------------------------------------


@given(st.binary(max_size=3000), st.integers(0, 0x3FFFF))
def test_ones_sum_matches_the_reference(data: bytes, initial: int) -> None:
    folded = initial
    while folded >> 16:
        folded = (folded & 0xFFFF) + (folded >> 16)
    expected = ref_sum(data + (b"\0" if len(data) % 2 else b"") + folded.to_bytes(2, "big"))
    got = ones_sum(data, initial)
    assert got == expected or ({got, expected} == {0, 0xFFFF} and not any(data) and not initial)
    assert internet_checksum(data) == 0xFFFF - ones_sum(data)


@given(st.binary(max_size=3000), st.integers(0, 7))
def test_c_and_python_sums_agree(data: bytes, offset: int) -> None:
    """The C extension's sum (when built) and the pure-Python fallback give the same number, for
    every length and alignment, and for memoryviews as for bytes."""
    view = memoryview(bytes(offset) + data)[offset:]
    expected = offload._py_sum_mod(data)
    assert expected == (ref_sum(data) % 0xFFFF)
    assert offload._sum_mod(data) == expected
    if offload.HAVE_C_SUM:
        assert offload._sum_mod(view) == expected


def test_the_c_sum_is_built_here() -> None:
    """CI installs with a compiler: the C sum must be there (else the data plane is slower)."""
    assert offload.HAVE_C_SUM


def test_ones_sum_zero_and_all_ones() -> None:
    assert ones_sum(b"") == 0 and ones_sum(bytes(100)) == 0
    assert ones_sum(b"\xff\xff") == 0xFFFF == ref_sum(b"\xff\xff")
    assert ones_sum(b"\xff\xff" * 7) == 0xFFFF
    assert ones_sum(b"\x80\x00\x80\x00") == ref_sum(b"\x80\x00\x80\x00") == 1
    assert ones_sum(b"\x01") == 0x0100  # odd length: padded on the right
    # RFC 1071's example: 0001 f203 f4f5 f6f7 -> sum ddf2
    assert ones_sum(bytes.fromhex("0001f203f4f5f6f7")) == 0xDDF2


@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("size", [0, 1, 2, 1399])
def test_complete_checksum_tcp(version: int, size: int) -> None:
    p = tcp_packet(version, bytes(range(256)) * 6)[: (20 if version == 4 else 40) + 32 + size]
    p = bytearray(p)
    if version == 4:
        p[2:4] = struct.pack("!H", len(p))
    else:
        p[4:6] = struct.pack("!H", len(p) - 40)
    t = 20 if version == 4 else 40
    src, dst = (bytes(p[12:16]), bytes(p[16:20])) if version == 4 else (bytes(p[8:24]), bytes(p[24:40]))
    p[t + 16 : t + 18] = struct.pack("!H", ref_sum(pseudo(version, src, dst, len(p) - t)))
    done = complete_checksum(bytes(p), t, 16)
    assert tcp_valid(done)
    assert done[: t + 16] == p[: t + 16] and done[t + 18 :] == p[t + 18 :]


def test_complete_checksum_udp_zero_becomes_ffff() -> None:
    # a UDP datagram whose checksum comes out as 0 must carry 0xFFFF (0 means "none" in UDP)
    body = bytearray(struct.pack("!HHHH", 1, 2, 12, 0) + b"\0\0\0\0")
    s = ref_sum(bytes(body))
    body[8:10] = struct.pack("!H", 0xFFFF - s)  # make the whole sum 0xFFFF: checksum 0
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 32, 0, 0, 64, 17, 0, bytes(4), bytes(4))
    packet = ip + bytes(body)
    done = complete_checksum(packet, 20, 6)
    assert done[26:28] == b"\xff\xff"


def test_complete_checksum_bounds() -> None:
    p = tcp_packet(4, b"x")
    with pytest.raises(Drop, match="outside"):
        complete_checksum(p, 20, len(p))
    with pytest.raises(Drop):
        complete_checksum(p, 4, 16)


# ---- segmentation (what we read) ------------------------------------------------------------------


@pytest.mark.parametrize("version", [4, 6])
def test_segment_super_packet(version: int) -> None:
    payload = bytes((i * 7) & 0xFF for i in range(5001))  # odd: the last segment is odd too
    flags = ACK | PSH | FIN | CWR
    h, p = super_packet(version, payload, 1000, seq=0xFFFFFF00, ident=0xFFFE, flags=flags, tos=0x10)
    segs = segment(h, p)
    assert len(segs) == 6
    t = 20 if version == 4 else 40
    for i, s in enumerate(segs):
        assert s[t : t + 4] == p[t : t + 4]  # ports
        assert s[t + 8 : t + 12] == p[t + 8 : t + 12]  # ack
        assert s[t + 20 : t + 32] == TIMESTAMPS
        assert struct.unpack_from("!I", s, t + 4)[0] == (0xFFFFFF00 + 1000 * i) & 0xFFFFFFFF
        assert tcp_valid(s)
        expect = flags & ~CWR if i else flags
        if i < 5:
            expect &= ~(FIN | PSH)
        assert s[t + 13] == expect
        if version == 4:
            assert struct.unpack_from("!H", s, 2)[0] == len(s)
            assert struct.unpack_from("!H", s, 4)[0] == (0xFFFE + i) & 0xFFFF
            assert ip_header_valid(s) and s[1] == 0x10 and s[6] == 0x40
        else:
            assert struct.unpack_from("!H", s, 4)[0] == len(s) - 40
            assert s[:4] == p[:4] and s[6:40] == p[6:40]
        assert len(tcp_payload(s)) == (1000 if i < 5 else 1)
    assert b"".join(map(tcp_payload, segs)) == payload


def test_segment_ipv6_with_extension_header() -> None:
    ext = bytes([6, 0, 1, 4, 0, 0, 0, 0])  # destination options (PadN), next header TCP
    payload = bytes(range(256)) * 10
    h, p = super_packet(6, payload, 1200, ext=ext)
    segs = segment(h, p)
    assert len(segs) == 3
    for s in segs:
        assert s[6] == 60 and s[40:48] == ext
        assert struct.unpack_from("!H", s, 4)[0] == len(s) - 40
        assert tcp_valid(s, 48)
    assert b"".join(s[48 + 32 :] for s in segs) == payload


def test_segment_one_segment_and_exact_multiple() -> None:
    h, p = super_packet(4, b"a" * 500, 1000)
    (only,) = segment(h, p)
    assert tcp_valid(only) and only == tcp_packet(4, b"a" * 500)  # identical to a plain packet
    h, p = super_packet(4, b"b" * 3000, 1000)
    assert [len(tcp_payload(s)) for s in segment(h, p)] == [1000, 1000, 1000]


def test_segment_refuses() -> None:
    h, p = super_packet(4, b"x" * 3000, 1000)
    for bad, what in [
        (VnetHeader(NEEDS_CSUM, 3, 40, 1000, 20, 6), "not TCP"),  # UFO
        (VnetHeader(NEEDS_CSUM, GSO_TCPV6, 52, 1000, 20, 16), "version"),
        (VnetHeader(NEEDS_CSUM, GSO_TCPV4, 52, 1000, 24, 16), "csum_start"),
        (VnetHeader(NEEDS_CSUM, GSO_TCPV4, 52, 0, 20, 16), "segment size"),
    ]:
        with pytest.raises(Drop, match=what):
            segment(bad, p)
    with pytest.raises(Drop):
        segment(h, p[:30])
    _, p6 = super_packet(6, b"x" * 3000, 1000)
    with pytest.raises(Drop):
        segment(VnetHeader(NEEDS_CSUM, GSO_TCPV6, 0, 1000, 30, 16), p6)


def test_segment_ecn_bit_is_tcp_too() -> None:
    h, p = super_packet(4, b"y" * 2500, 1000, flags=ACK | CWR)
    ecn = VnetHeader(h.flags, h.gso_type | 0x80, h.hdr_len, h.gso_size, h.csum_start, h.csum_offset)
    segs = segment(ecn, p)
    assert [s[33] for s in segs] == [ACK | CWR, ACK, ACK]


def test_split_frame() -> None:
    plain = tcp_packet(4, b"hello")
    assert split_frame(ZERO_HEADER + plain) == [plain]
    # NEEDS_CSUM without GSO (what TUN_F_CSUM gives for an ACK or a UDP datagram)
    partial = bytearray(plain)
    partial[36:38] = struct.pack("!H", ref_sum(pseudo(4, SRC[4], DST[4], len(plain) - 20)))
    frame = VnetHeader(NEEDS_CSUM, GSO_NONE, 0, 0, 20, 16).pack() + bytes(partial)
    assert split_frame(frame) == [plain]
    h, p = super_packet(6, b"z" * 4000, 1300)
    assert split_frame(h.pack() + p) == segment(h, p)
    for short in (b"", ZERO_HEADER):
        with pytest.raises(Drop):
            split_frame(short)
    assert VnetHeader.unpack(h.pack() + p) == h
    with pytest.raises(Drop):
        VnetHeader.unpack(b"\x01\x02")


# ---- coalescing (what we write) -------------------------------------------------------------------


@pytest.mark.parametrize("version", [4, 6])
def test_coalesce_in_order_segments(version: int) -> None:
    payload = bytes((i * 13) & 0xFF for i in range(10 * 1348 + 77))
    segs = segments_of(version, payload, 1348)
    (frame,) = coalesce(segs)
    h = VnetHeader.unpack(frame)
    t = 20 if version == 4 else 40
    assert h == VnetHeader(NEEDS_CSUM, GSO_TCPV4 if version == 4 else GSO_TCPV6, t + 32, 1348, t, 16)
    p = frame[VNET_HDR_LEN:]
    assert tcp_payload(p) == payload
    assert p[t + 13] == ACK | PSH  # the last segment's PSH
    # the kernel's view: the checksum contract holds, and segmenting it again gives the originals
    assert kernel_receive(frame) == segs


def test_coalesce_single_and_non_tcp_pass_unchanged() -> None:
    one = tcp_packet(4, b"solo")
    udp = bytes.fromhex("4500001c000000004011") + bytes(18)
    junk = b"\x00" * 3
    assert coalesce([one, udp, junk]) == [ZERO_HEADER + one, ZERO_HEADER + udp, ZERO_HEADER + junk]
    assert coalesce([]) == []


def frames_payloads(frames: list[bytes]) -> list[bytes]:
    return [tcp_payload(q) for f in frames for q in kernel_receive(f)]


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        ({"seq": 1000 + 2 * 1000 + 1}, [3, 1]),  # a gap
        ({"ack": 778}, [3, 1]),  # another ack
        ({"flags": ACK | URG}, [3, 1]),
        ({"flags": ACK | FIN}, [3, 1]),
        ({"flags": ACK | ECE}, [3, 1]),
        ({"flags": ACK | RST}, [3, 1]),
        ({"tos": 3}, [3, 1]),  # CE mark
        ({"ttl": 63}, [3, 1]),
        ({"window": 1}, [3, 1]),
        ({"options": bytes([1, 1, 8, 10]) + struct.pack("!II", 123457, 654321)}, [3, 1]),  # timestamp moved
        ({"df": False}, [3, 1]),
    ],
)
def test_coalesce_breaks_on(change: dict[str, object], expect: list[int]) -> None:
    payload = b"p" * 4000
    segs = segments_of(4, payload, 1000, last_flags=ACK)
    segs[3] = tcp_packet(4, payload[3000:], **{"seq": 4000, "ident": 10, **change})  # type: ignore[arg-type]
    frames = coalesce(segs)
    counts = [len(kernel_receive(f)) for f in frames]
    assert counts == expect


@pytest.mark.parametrize("mss", [1000, 999])  # an odd segment size: verified one by one
@pytest.mark.parametrize("bad", [0, 1, 3])
def test_coalesce_never_trusts_a_bad_checksum_to_the_kernel(mss: int, bad: int) -> None:
    """A group with a segment whose checksum does not verify goes out as plain packets: the
    kernel checks each one and drops that one (a NEEDS_CSUM super-packet would be believed)."""
    segs = segments_of(4, b"q" * (4 * mss), mss)
    assert [VnetHeader.unpack(f).gso_type for f in coalesce(segs)] == [GSO_TCPV4]
    segs[bad] = tcp_packet(
        4, b"q" * mss, seq=1000 + bad * mss, ident=7 + bad, flags=segs[bad][33], valid=False
    )
    frames = coalesce(segs)
    assert frames == [ZERO_HEADER + s for s in segs]
    # a payload byte changed (its checksum left as it was) is caught the same way
    segs = segments_of(6, b"r" * (4 * mss), mss)
    segs[bad] = segs[bad][:-5] + bytes([segs[bad][-5] ^ 0x40]) + segs[bad][-4:]
    assert coalesce(segs) == [ZERO_HEADER + s for s in segs]


def test_coalesce_psh_closes_and_short_segment_closes() -> None:
    payload = b"r" * 6000
    segs = segments_of(4, payload, 1000, last_flags=ACK)
    segs[1] = tcp_packet(4, payload[1000:2000], seq=2000, ident=8, flags=ACK | PSH)
    frames = coalesce(segs)
    assert [len(kernel_receive(f)) for f in frames] == [2, 4]
    # a shorter segment ends a group; a longer one after it starts a new one
    seq, parts = 1000, []
    for size in (1000, 1000, 500, 1000, 1000):
        parts.append(tcp_packet(4, b"s" * size, seq=seq))
        seq += size
    assert [len(kernel_receive(f)) for f in coalesce(parts)] == [3, 2]


def test_coalesce_control_segments_keep_their_place() -> None:
    segs = segments_of(4, b"t" * 3000, 1000, last_flags=ACK)
    pure_ack = tcp_packet(4, b"", seq=3000)
    more = segments_of(4, b"u" * 2000, 1000, seq=4000, ident=10, last_flags=ACK)
    syn = tcp_packet(4, b"", flags=SYN, sport=1)
    frames = coalesce([*segs[:2], pure_ack, segs[2], *more, syn])
    seen = [q for f in frames for q in kernel_receive(f)]
    assert seen == [*segs[:2], pure_ack, segs[2], *more, syn]  # nothing passed the pure ACK
    assert [len(kernel_receive(f)) for f in frames] == [2, 1, 3, 1]


def test_coalesce_interleaved_flows_keep_order_within_each() -> None:
    a = segments_of(4, b"a" * 5000, 1000, last_flags=ACK)
    b = segments_of(6, b"b" * 5000, 1000, last_flags=ACK)
    c = segments_of(4, b"c" * 5000, 1000, last_flags=ACK, sport=40001)
    mixed = [x for trio in zip(a, b, c, strict=True) for x in trio]
    frames = coalesce(mixed)
    assert len(frames) == 3
    assert [kernel_receive(f) for f in frames] == [a, b, c]


def test_coalesce_fragments_and_ip_options_flush_groups() -> None:
    segs = segments_of(4, b"v" * 3000, 1000, last_flags=ACK)
    with_options = bytearray(segs[1])
    frag = bytearray(segs[1])
    frag[6] |= 0x20  # MF
    frames = coalesce([segs[0], bytes(frag), segs[1], segs[2]])
    assert [VnetHeader.unpack(f).gso_type for f in frames] == [GSO_NONE, GSO_NONE, GSO_TCPV4]
    # IPv4 with options (IHL 6): not coalesced, and no group passes it
    opt = bytes([0x46]) + with_options[1:20] + b"\x01\x01\x01\x00" + with_options[20:]
    frames = coalesce([segs[0], opt, segs[1], segs[2]])
    assert [VnetHeader.unpack(f).gso_type for f in frames] == [GSO_NONE, GSO_NONE, GSO_TCPV4]
    # IPv6 with extension headers likewise
    s6 = segments_of(6, b"w" * 3000, 1000, last_flags=ACK)
    e6 = tcp_packet(6, b"w" * 1000, ext=bytes([6, 0, 1, 4, 0, 0, 0, 0]))
    frames = coalesce([s6[0], e6, s6[1], s6[2]])
    assert [VnetHeader.unpack(f).gso_type for f in frames] == [GSO_NONE, GSO_NONE, GSO_TCPV6]


def test_coalesce_cap() -> None:
    mss = 1448
    segs = segments_of(4, b"x" * (mss * 100), mss, last_flags=ACK)
    frames = coalesce(segs)
    lengths = [len(f) - VNET_HDR_LEN for f in frames]
    assert max(lengths) <= MAX_IP_LEN
    assert max(lengths) + mss > MAX_IP_LEN  # as full as it may be
    assert [q for f in frames for q in kernel_receive(f)] == segs


@settings(max_examples=60, deadline=None)
@given(
    version=st.sampled_from([4, 6]),
    payload=st.binary(min_size=1, max_size=20000),
    mss=st.integers(1, 3000),
    seq=st.integers(0, 0xFFFFFFFF),
    psh=st.booleans(),
)
def test_round_trip_segment_then_coalesce(
    version: int, payload: bytes, mss: int, seq: int, psh: bool
) -> None:
    flags = ACK | PSH if psh else ACK
    h, p = super_packet(version, payload, mss, seq=seq, flags=flags)
    segs = segment(h, p)
    assert all(tcp_valid(s) and ip_header_valid(s) for s in segs)
    assert all(len(s) <= (20 if version == 4 else 40) + 32 + mss for s in segs)
    frames = coalesce(segs)
    assert b"".join(frames_payloads(frames)) == payload
    assert [q for f in frames for q in kernel_receive(f)] == segs


@given(
    version=st.sampled_from([4, 6]),
    size=st.integers(0, 9000),
    mss=st.integers(1, 1500),
    flags=st.integers(0, 255),
    seq=st.integers(0, 0xFFFFFFFF),
    ident=st.integers(0, 0xFFFF),
    options=st.sampled_from([b"", TIMESTAMPS]),
    ext=st.sampled_from([b"", bytes([6, 0, 1, 4, 0, 0, 0, 0])]),
)
def test_c_and_python_segmentation_agree(
    version: int, size: int, mss: int, flags: int, seq: int, ident: int, options: bytes, ext: bytes
) -> None:
    """The C extension's TSO (what the data plane uses where it is built) makes the very bytes the
    Python one does, for any payload length, segment size, flags and counters that wrap."""
    payload = bytes((i * 13 + size) & 0xFF for i in range(size))
    extra = {"ext": ext} if version == 6 else {}
    h, p = super_packet(version, payload, mss, seq=seq, ident=ident, flags=flags, options=options, **extra)
    t = h.csum_start
    end = t + (p[t + 12] >> 4) * 4
    expected = offload._py_segment_tcp(p, version, t, end, mss)
    assert offload._segment_tcp(p, version, t, end, mss) == expected
    assert all(tcp_valid(s, t) for s in expected)
    assert b"".join(s[end:] for s in expected) == payload


def test_the_c_segmentation_is_built_here() -> None:
    assert offload._segment_tcp is not offload._py_segment_tcp
    assert offload._offload is not None
    with pytest.raises(ValueError, match="not a checked TCP super-packet"):
        offload._offload.segment_tcp(b"\x45" + bytes(59), 4, 20, 10, 1000)
