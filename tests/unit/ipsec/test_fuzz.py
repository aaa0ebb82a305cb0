"""Hypothesis: inbound() never raises on random or mutated bytes, and never counts internal_error."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snakeswan.ipsec import SendIp, SendPacket
from tests.unit.ipsec.helpers import make_pair

PAIRS = {alg: make_pair(alg) for alg in ("aes128gcm16", "aes128-sha256", "ah-sha1")}
TRANSPORT = make_pair("3des-sha1", mode="transport", version=6)


def _sample(alg: str) -> bytes:
    p = PAIRS[alg]
    (out,) = p.a.outbound(p.inner(data=b"sample" * 10), 0.0)
    return out.packet if isinstance(out, SendPacket) else out.payload  # type: ignore[union-attr]


SAMPLES = {alg: _sample(alg) for alg in PAIRS}
# IPv4 header fields AH leaves out of its ICV (RFC 4302 3.3.3.1.1.1): DSCP/ECN, flags and fragment
# offset, TTL, header checksum. A packet that differs from the genuine one only there is genuine.
_MUTABLE_V4 = (1, 6, 7, 8, 10, 11)


def _genuine(alg: str, data: bytes) -> bool:
    sample = SAMPLES[alg]
    if len(data) != len(sample):
        return False
    if not alg.startswith("ah"):
        return data == sample
    return all(a == b for i, (a, b) in enumerate(zip(data, sample, strict=True)) if i not in _MUTABLE_V4)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=200), protocol=st.sampled_from([50, 51, 17]))
def test_random_bytes(data: bytes, protocol: int) -> None:
    for p in (*PAIRS.values(), TRANSPORT):
        assert p.b.inbound(data, protocol, "192.0.2.1", "192.0.2.2", 0.0) == []
        assert "internal_error" not in p.b.drops


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    alg=st.sampled_from(sorted(PAIRS)),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), min_size=1, max_size=4),
    cut=st.integers(0, 10_000),
)
def test_mutated_packets(alg: str, flips: list[tuple[int, int]], cut: int) -> None:
    p = PAIRS[alg]
    packet = bytearray(SAMPLES[alg])
    for index, xor in flips:
        packet[index % len(packet)] ^= xor
    data = bytes(packet[: max(1, cut % (len(packet) + 1))])
    protocol = 51 if alg.startswith("ah") else 50
    result = p.b.inbound(data, protocol, "192.0.2.1", "192.0.2.2", 0.0)
    assert result == [] or _genuine(alg, data)  # flips that cancel out (or only touch what AH
    # does not protect) leave the genuine packet
    assert "internal_error" not in p.b.drops


def test_sample_itself_is_accepted() -> None:
    p = PAIRS["aes128gcm16"]
    (out,) = p.a.outbound(p.inner(), 0.0)
    assert isinstance(out, SendIp)
    assert len(p.b.inbound(out.payload, 50, out.src, out.dst, 0.0)) == 1
