"""ESP data plane throughput: 1400-byte IPv4 packets through Processor.outbound (encapsulate) and
Processor.inbound (decapsulate), tunnel mode, per algorithm; raw AESGCM as the baseline.

Run: python bench/esp.py [--quick]

Prints packets/s, Mbit/s (of inner packets) and the ratio to raw AES-128-GCM encryption of the same
payload (the floor set by the cipher plus one Python call). Asserts nothing.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from snakeswan.config.traffic import TrafficSelector
from snakeswan.ipsec import Policy, Processor, SaParams, SendIp
from snakeswan.ipsec.packet import build_ipv4_header
from snakeswan.wire.enums import AuthAlgorithm, EspTransformId

SIZE = 1400
KEY = ("bench", "net")
# name: (transform, key bits, auth, encryption key bytes, integrity key bytes)
SUITES: dict[str, tuple[int, int | None, int | None, int, int]] = {
    "aes128gcm16": (EspTransformId.AES_GCM_16, 128, None, 20, 0),
    "aes256gcm16": (EspTransformId.AES_GCM_16, 256, None, 36, 0),
    "aes128-sha256": (EspTransformId.AES_CBC, 128, AuthAlgorithm.HMAC_SHA2_256, 16, 32),
    "aes256-sha256": (EspTransformId.AES_CBC, 256, AuthAlgorithm.HMAC_SHA2_256, 32, 32),
    "3des-sha1": (EspTransformId.TRIPLE_DES, None, AuthAlgorithm.HMAC_SHA, 24, 20),
}


def params(suite: str, spi: int, local: str, remote: str, lts: str, rts: str) -> SaParams:
    tid, bits, auth, enc, integ = SUITES[suite]
    return SaParams(
        spi=spi,
        protocol=50,
        transform_id=tid,
        key_length=bits,
        auth=auth,
        encryption_key=bytes(range(enc)),
        integrity_key=bytes(range(50, 50 + integ)),
        local=(local, 500),
        remote=(remote, 500),
        local_ts=(TrafficSelector.from_text(lts),),
        remote_ts=(TrafficSelector.from_text(rts),),
        replay_window=1024,
    )


def endpoints(suite: str) -> tuple[Processor, Processor]:
    a, b = Processor(os.urandom), Processor(os.urandom)
    a.add_policy(
        Policy(TrafficSelector.from_text("10.1.0.0/24"), TrafficSelector.from_text("10.2.0.0/24"), key=KEY)
    )
    out = params(suite, 0x1001, "192.0.2.1", "192.0.2.2", "10.1.0.0/24", "10.2.0.0/24")
    back = params(suite, 0x2002, "192.0.2.1", "192.0.2.2", "10.1.0.0/24", "10.2.0.0/24")
    a.install(back, out, KEY, now=0.0)
    b_in = params(suite, 0x1001, "192.0.2.2", "192.0.2.1", "10.2.0.0/24", "10.1.0.0/24")
    b_out = params(suite, 0x2002, "192.0.2.2", "192.0.2.1", "10.2.0.0/24", "10.1.0.0/24")
    b.install(b_in, b_out, KEY, now=0.0)
    return a, b


def packet() -> bytes:
    body = b"\x04\xd2\x00\x50" + (SIZE - 28).to_bytes(2, "big") + b"\0\0" + bytes(SIZE - 28)
    return build_ipv4_header(bytes((10, 1, 0, 5)), bytes((10, 2, 0, 7)), 17, len(body), 0) + body


def rate(fn: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        fn()
    return count / (time.perf_counter() - start)


def bench_suite(suite: str, count: int) -> tuple[float, float]:
    a, b = endpoints(suite)
    pkt = packet()
    enc = rate(lambda: a.outbound(pkt, 1.0), count)
    wire = []
    for _ in range(count):
        (out,) = a.outbound(pkt, 1.0)
        assert isinstance(out, SendIp)
        wire.append(out.payload)
    it = iter(wire)
    dec = rate(lambda: b.inbound(next(it), 50, "192.0.2.1", "192.0.2.2", 1.0), count)
    assert b.counters(0x1001)["packets"] == count, b.drops
    return enc, dec


def baseline(count: int) -> float:
    aead = AESGCM(bytes(16))
    data, nonce, aad = bytes(SIZE + 2), bytes(12), bytes(8)
    return rate(lambda: aead.encrypt(nonce, data, aad), count)


def main() -> None:
    quick = "--quick" in sys.argv
    count = 5000 if quick else 40000
    base = baseline(count * 2)
    mbit = SIZE * 8 / 1e6
    print(f"{SIZE}-byte IPv4 packets, tunnel mode, Python {sys.version.split()[0]}")
    print(f"{'suite':<16}{'encap pkt/s':>13}{'Mbit/s':>9}{'decap pkt/s':>13}{'Mbit/s':>9}{'enc/raw':>9}")
    print(f"{'raw AESGCM-128':<16}{base:>13,.0f}{base * mbit:>9,.0f}{'':>13}{'':>9}{1.0:>9.2f}")
    for suite in SUITES:
        n = count // 8 if suite.startswith("3des") else count
        enc, dec = bench_suite(suite, n)
        print(
            f"{suite:<16}{enc:>13,.0f}{enc * mbit:>9,.0f}{dec:>13,.0f}{dec * mbit:>9,.0f}{enc / base:>9.2f}"
        )


if __name__ == "__main__":
    main()
