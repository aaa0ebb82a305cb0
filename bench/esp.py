"""ESP data plane throughput: 1400-byte IPv4 packets through Processor.outbound (encapsulate) and
Processor.inbound (decapsulate), tunnel mode, per algorithm; raw AESGCM as the baseline.

Run: python bench/esp.py [--quick]

Prints packets/s, Mbit/s (of inner packets) and the ratio to raw AES-128-GCM encryption of the same
payload (the floor set by the cipher plus one Python call). A second table compares, per suite and
at the ESP codec level, the per-SA cipher contexts (esp.encapsulate with chained_iv, open_esp) with
a baseline implemented here as the data plane worked before: key objects and AESGCM per SA, but a
CBC cipher context built for every packet and a keyed HMAC copied per packet. Asserts nothing.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from snakeswan.config.traffic import TrafficSelector
from snakeswan.ipsec import Policy, Processor, SaParams, SendIp
from snakeswan.ipsec.esp import PADDING, EspCodec, encapsulate, open_esp
from snakeswan.ipsec.packet import build_ipv4_header
from snakeswan.wire.enums import AuthAlgorithm, EspTransformId

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # cryptography 42
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES  # type: ignore[attr-defined,no-redef]

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


def naive(suite: str) -> tuple[Callable[[bytes, int], bytes], Callable[[bytes], bytes]]:
    """ESP encapsulation and decryption as before per-SA CBC contexts (module docstring)."""
    tid, _bits, auth, enc_len, int_len = SUITES[suite]
    key, mac_key = bytes(range(enc_len)), bytes(range(50, 50 + int_len))
    if tid == EspTransformId.AES_GCM_16:
        aes_key, salt = key[:-4], key[-4:]
        aead = AESGCM(aes_key)

        def seal_gcm(payload: bytes, seq: int) -> bytes:
            header, iv = (0x1001).to_bytes(4, "big") + seq.to_bytes(4, "big"), os.urandom(8)
            pad = -(len(payload) + 2) % 4
            plain = payload + PADDING[pad] + bytes((pad, 4))
            return header + iv + aead.encrypt(salt + iv, plain, header)

        def open_gcm(packet: bytes) -> bytes:
            return aead.decrypt(salt + packet[8:16], packet[16:], packet[:8])

        return seal_gcm, open_gcm
    hash_alg = {AuthAlgorithm.HMAC_SHA2_256: hashes.SHA256, AuthAlgorithm.HMAC_SHA: hashes.SHA1}[auth or 0]
    icv = 16 if auth == AuthAlgorithm.HMAC_SHA2_256 else 12
    algorithm = algorithms.AES(key) if tid == EspTransformId.AES_CBC else TripleDES(key)
    keyed = hmac.HMAC(mac_key, hash_alg())
    bs = 16 if tid == EspTransformId.AES_CBC else 8

    def seal_cbc(payload: bytes, seq: int) -> bytes:
        header, iv = (0x1001).to_bytes(4, "big") + seq.to_bytes(4, "big"), os.urandom(bs)
        pad = -(len(payload) + 2) % bs
        enc = Cipher(algorithm, modes.CBC(iv)).encryptor()
        body = header + iv + enc.update(payload + PADDING[pad] + bytes((pad, 4))) + enc.finalize()
        mac = keyed.copy()
        mac.update(body)
        return body + mac.finalize()[:icv]

    def open_cbc(packet: bytes) -> bytes:
        mac = keyed.copy()
        mac.update(packet[:-icv])
        if mac.finalize()[:icv] != packet[-icv:]:
            raise ValueError("ICV")
        dec = Cipher(algorithm, modes.CBC(packet[8 : 8 + bs])).decryptor()
        return dec.update(packet[8 + bs : -icv]) + dec.finalize()

    return seal_cbc, open_cbc


def codec_vs_naive(suite: str, count: int) -> tuple[float, float, float, float]:
    """(encap, decap) packets/s of the per-SA codec and of the per-packet baseline, 1400 bytes."""
    tid, bits, auth, enc_len, int_len = SUITES[suite]
    codec = EspCodec(0x1001, tid, bits, auth, bytes(range(enc_len)), bytes(range(50, 50 + int_len)))
    peer = EspCodec(0x1001, tid, bits, auth, bytes(range(enc_len)), bytes(range(50, 50 + int_len)))
    seal, unseal = naive(suite)
    pkt = packet()
    wire = encapsulate(codec, pkt, 4, 1, os.urandom, chained_iv=True)
    assert unseal(wire)[: len(pkt)] == pkt and open_esp(peer, seal(pkt, 1)) is not None
    enc = rate(lambda: encapsulate(codec, pkt, 4, 1, os.urandom, chained_iv=True), count)
    dec = rate(lambda: open_esp(peer, wire), count)
    naive_enc = rate(lambda: seal(pkt, 1), count)
    naive_dec = rate(lambda: unseal(wire), count)
    return enc, dec, naive_enc, naive_dec


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
    print("\nESP codec: per-SA contexts vs the previous per-packet CBC contexts (baseline), same run")
    print(
        f"{'suite':<16}{'encap pkt/s':>13}{'baseline':>11}{'ratio':>7}"
        f"{'decap pkt/s':>13}{'baseline':>11}{'ratio':>7}"
    )
    for suite in SUITES:
        n = count // 8 if suite.startswith("3des") else count
        enc, dec, nenc, ndec = codec_vs_naive(suite, n)
        print(
            f"{suite:<16}{enc:>13,.0f}{nenc:>11,.0f}{enc / nenc:>7.2f}"
            f"{dec:>13,.0f}{ndec:>11,.0f}{dec / ndec:>7.2f}"
        )


if __name__ == "__main__":
    main()
