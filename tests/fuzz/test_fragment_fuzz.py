"""IKE fragment reassembly under hypothesis: any order and duplicates give back exactly the
message; junk fragments raise nothing but DecodeError and leave the reassembler within its limits;
junk fragments with an established SA's cookies cause no internal error and break nothing."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snakeswan.errors import DecodeError
from snakeswan.ike.events import IkeSaEstablished
from snakeswan.ike.fragments import MAX_PENDING, MAX_PER_SOURCE, Reassembler, split
from snakeswan.wire.enums import ExchangeType, PayloadType
from snakeswan.wire.message import HEADER_SIZE, Header, encode_datagram
from snakeswan.wire.payloads import FragmentPayload
from tests.pair import A_ADDR, B_ADDR, Pair, site_config

IC, RC = b"\x11" * 8, b"\x22" * 8
SRC = ("10.231.0.1", 500)


def fragment(number: int, last: bool, data: bytes, fid: int, ic: bytes = IC, rc: bytes = RC) -> bytes:
    header = Header(ic, rc, PayloadType.FRAGMENT, ExchangeType.IDENTITY_PROTECTION, 0, 0)
    body = FragmentPayload(fid, number, last, data).encode_body()
    return encode_datagram(header, bytes((0, 0)) + (4 + len(body)).to_bytes(2, "big") + body)


@settings(max_examples=150, deadline=None)
@given(
    body=st.binary(min_size=1, max_size=4000),
    size=st.integers(min_value=300, max_value=1500),
    order=st.randoms(use_true_random=False),
    dups=st.integers(min_value=0, max_value=5),
)
def test_any_order_and_duplicates_give_back_the_message(body: bytes, size: int, order, dups: int) -> None:  # type: ignore[no-untyped-def]
    msg = encode_datagram(Header(IC, RC, PayloadType.ID, ExchangeType.IDENTITY_PROTECTION, 1, 0), body)
    pieces = split(msg, size, 3)
    sequence = pieces + [order.choice(pieces) for _ in range(dups)]
    order.shuffle(sequence)
    r = Reassembler()
    results = [r.add(p, SRC, 0.0) for p in sequence]
    done = [x for x in results if x is not None]
    assert done and done[0] == msg
    assert all(x == msg for x in done)  # a late duplicate may start and finish nothing else


junk = st.tuples(
    st.integers(min_value=0, max_value=40),  # number
    st.booleans(),  # last
    st.binary(max_size=3000),
    st.integers(min_value=0, max_value=0xFFFF),  # fragment id
    st.sampled_from([RC, b"\x33" * 8, bytes(8)]),
    st.sampled_from([SRC, ("10.231.0.2", 500), ("10.231.0.3", 4500)]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(junk, max_size=60), st.lists(st.binary(max_size=80), max_size=10))
def test_junk_raises_only_decode_errors_and_stays_bounded(
    frags: list[tuple[int, bool, bytes, int, bytes, tuple[str, int]]], raw: list[bytes]
) -> None:
    r = Reassembler()
    for n, (number, last, data, fid, rc, src) in enumerate(frags):
        with contextlib.suppress(DecodeError):
            r.add(fragment(number, last, data, fid, rc=rc), src, float(n))
        assert len(r) <= MAX_PENDING
        per_source: dict[str, int] = {}
        for key in r._partial:
            per_source[key[2][0]] = per_source.get(key[2][0], 0) + 1
        assert all(v <= MAX_PER_SOURCE for v in per_source.values())
        assert per_source == {k: v for k, v in r._per_source.items()}
    for data in raw:
        with contextlib.suppress(DecodeError):
            r.add(IC + RC + bytes((PayloadType.FRAGMENT,)) + data, SRC, 0.0)


def _established_pair() -> Pair:
    p = Pair(
        site_config(A_ADDR, B_ADDR, "10.231.1.0/24", "10.231.2.0/24"),
        site_config(B_ADDR, A_ADDR, "10.231.2.0/24", "10.231.1.0/24"),
    )
    p.a.engine.initiate("site", now=p.now)
    p.run(30)
    assert len(p.of(p.b, IkeSaEstablished)) == 1
    return p


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, 20), st.booleans(), st.binary(max_size=600), st.integers(0, 5)), max_size=20
    )
)
def test_junk_fragments_for_an_established_sa(frags: list[tuple[int, bool, bytes, int]]) -> None:
    p = _established_pair()
    sa = p.b.engine.ike_sas[0]
    for number, last, data, fid in frags:
        dgram = fragment(number, last, data, fid, ic=sa.icookie, rc=sa.rcookie)
        p.b.engine.receive_datagram(dgram, (A_ADDR, 500), (B_ADDR, 500), p.now)
    p.b.engine.receive_datagram(IC + RC + b"\x84" + bytes(HEADER_SIZE), (A_ADDR, 500), (B_ADDR, 500), p.now)
    assert not list(p.b.engine.tracer.find("internal_error"))
    assert not list(p.b.engine.tracer.find("exchange_failed"))
    assert p.b.engine.ike_sas[0] is sa and sa.state.value == "established"
