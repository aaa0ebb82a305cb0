"""Shared builders for the data plane tests: packets, SA parameters, two processors back to back."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace

from snakeswan.config.traffic import TrafficSelector
from snakeswan.ipsec import Processor, SaParams
from snakeswan.ipsec.events import Output, SendIp, SendPacket, SendUdp
from snakeswan.ipsec.packet import address_bytes, build_ipv4_header, build_ipv6_header, checksum
from snakeswan.ipsec.spd import Policy
from snakeswan.wire.enums import AhTransformId, AuthAlgorithm, EspTransformId

# name: (protocol, transform_id, key_length, auth, encryption key bytes, integrity key bytes)
ALGORITHMS: dict[str, tuple[int, int, int | None, int | None, int, int]] = {
    "aes128gcm16": (50, EspTransformId.AES_GCM_16, 128, None, 20, 0),
    "aes256gcm16": (50, EspTransformId.AES_GCM_16, 256, None, 36, 0),
    "aes192gcm12": (50, EspTransformId.AES_GCM_12, 192, None, 28, 0),
    "aes128gcm8": (50, EspTransformId.AES_GCM_8, 128, None, 20, 0),
    "aes128-sha1": (50, EspTransformId.AES_CBC, 128, AuthAlgorithm.HMAC_SHA, 16, 20),
    "aes192-md5": (50, EspTransformId.AES_CBC, 192, AuthAlgorithm.HMAC_MD5, 24, 16),
    "aes128-sha256": (50, EspTransformId.AES_CBC, 128, AuthAlgorithm.HMAC_SHA2_256, 16, 32),
    "aes256-sha256": (50, EspTransformId.AES_CBC, 256, AuthAlgorithm.HMAC_SHA2_256, 32, 32),
    "aes256-sha384": (50, EspTransformId.AES_CBC, 256, AuthAlgorithm.HMAC_SHA2_384, 32, 48),
    "aes256-sha512": (50, EspTransformId.AES_CBC, 256, AuthAlgorithm.HMAC_SHA2_512, 32, 64),
    "3des-sha1": (50, EspTransformId.TRIPLE_DES, None, AuthAlgorithm.HMAC_SHA, 24, 20),
    "des-md5": (50, EspTransformId.DES, None, AuthAlgorithm.HMAC_MD5, 8, 16),
    "null-sha256": (50, EspTransformId.NULL, None, AuthAlgorithm.HMAC_SHA2_256, 0, 32),
    "aes128ctr-sha256": (50, EspTransformId.AES_CTR, 128, AuthAlgorithm.HMAC_SHA2_256, 20, 32),
    "aes256ctr-sha1": (50, EspTransformId.AES_CTR, 256, AuthAlgorithm.HMAC_SHA, 36, 20),
    "aes128ccm8": (50, EspTransformId.AES_CCM_8, 128, None, 19, 0),
    "aes256ccm16": (50, EspTransformId.AES_CCM_16, 256, None, 35, 0),
    "aes128gmac": (50, EspTransformId.NULL_AUTH_AES_GMAC, 128, None, 20, 0),
    "ah-md5": (51, AhTransformId.MD5, None, None, 0, 16),
    "ah-sha1": (51, AhTransformId.SHA, None, AuthAlgorithm.HMAC_SHA, 0, 20),
    "ah-sha256": (51, AhTransformId.SHA2_256, None, None, 0, 32),
    "ah-sha384": (51, AhTransformId.SHA2_384, None, None, 0, 48),
    "ah-sha512": (51, AhTransformId.SHA2_512, None, None, 0, 64),
}
ESP_ALGORITHMS = [n for n, a in ALGORITHMS.items() if a[0] == 50]
AH_ALGORITHMS = [n for n, a in ALGORITHMS.items() if a[0] == 51]

OUTER = {4: ("192.0.2.1", "192.0.2.2"), 6: ("2001:db8::1", "2001:db8::2")}
INNER = {4: ("10.1.0.5", "10.2.0.7"), 6: ("fd00:1::5", "fd00:2::7")}
NETS = {4: ("10.1.0.0/24", "10.2.0.0/24"), 6: ("fd00:1::/64", "fd00:2::/64")}
KEY = ("site", "net")


def counter_rng() -> Callable[[int], bytes]:
    """A deterministic rng: distinct bytes on every call."""
    counter = itertools.count(1)
    return lambda n: next(counter).to_bytes(8, "big")[-n:].rjust(n, b"\xa5")


def _l4(proto: int, src: bytes, dst: bytes, sport: int, dport: int, data: bytes) -> bytes:
    if proto == 17:
        seg = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
        off = 6
    elif proto == 6:
        seg = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 0x50, 0x18, 1024, 0, 0) + data
        off = 16
    else:
        return data
    pseudo = (
        src + dst + struct.pack("!HH", proto, len(seg))
        if len(src) == 4
        else (src + dst + struct.pack("!IHBB", len(seg), 0, 0, proto))
    )
    value = checksum(pseudo + seg) or 0xFFFF
    return seg[:off] + struct.pack("!H", value) + seg[off + 2 :]


def ip_packet(
    src: str,
    dst: str,
    *,
    proto: int = 17,
    sport: int = 1234,
    dport: int = 80,
    data: bytes = b"hello, world",
) -> bytes:
    """An IPv4 or IPv6 packet (header as the data plane would rebuild it: TTL 64, no DF, ID 0)
    carrying UDP or TCP with a correct checksum, or ``data`` raw for other protocols."""
    s, d = address_bytes(src), address_bytes(dst)
    body = _l4(proto, s, d, sport, dport, data)
    if len(s) == 4:
        return build_ipv4_header(s, d, proto, len(body), 0) + body
    return build_ipv6_header(s, d, proto, len(body)) + body


def selector(text: str) -> TrafficSelector:
    return TrafficSelector.from_text(text)


def sa_params(
    alg: str,
    spi: int,
    *,
    version: int = 4,
    mode: str = "tunnel",
    encap: bool = False,
    seed: int = 1,
    local_first: bool = True,
    **extra: object,
) -> SaParams:
    """Parameters of one SA; ``local_first`` False swaps the ends (the peer's view)."""
    protocol, tid, klen, auth, enc_len, int_len = ALGORITHMS[alg]
    enc_key = bytes((seed + i) & 0xFF for i in range(enc_len))
    int_key = bytes((seed * 7 + i) & 0xFF for i in range(int_len))
    port = 4500 if encap else 500
    a, b = OUTER[version]
    na, nb = NETS[version]
    if mode == "transport":
        na, nb = a, b
    local, remote = ((a, port), (b, port)) if local_first else ((b, port), (a, port))
    lts, rts = (selector(na),), (selector(nb),)
    if not local_first:
        lts, rts = rts, lts
    params = SaParams(
        spi=spi,
        protocol=protocol,
        transform_id=tid,
        key_length=klen,
        auth=auth,
        encryption_key=enc_key,
        integrity_key=int_key,
        local=local,
        remote=remote,
        mode=mode,
        encap=encap,
        local_ts=lts,
        remote_ts=rts,
    )
    return replace(params, **extra) if extra else params  # type: ignore[arg-type]


@dataclass
class Pair:
    """Processor ``a`` (the left end) and ``b`` (the right end) with one child installed."""

    a: Processor
    b: Processor
    version: int
    mode: str

    def inner(self, **kw: object) -> bytes:
        """A packet from a's side to b's side."""
        src, dst = OUTER[self.version] if self.mode == "transport" else INNER[self.version]
        return ip_packet(src, dst, **kw)  # type: ignore[arg-type]

    def inner_back(self, **kw: object) -> bytes:
        src, dst = OUTER[self.version] if self.mode == "transport" else INNER[self.version]
        return ip_packet(dst, src, **kw)  # type: ignore[arg-type]


def deliver_to(proc: Processor, out: Output, now: float = 0.0) -> list[Output]:
    """Feed an output of the other end into ``proc.inbound`` the way a driver would."""
    if isinstance(out, SendIp):
        return proc.inbound(out.payload, out.protocol, out.src, out.dst, now)
    if isinstance(out, SendUdp):
        return proc.inbound(out.payload, 50, out.src, out.dst, now, udp=(out.sport, out.dport))
    assert isinstance(out, SendPacket), out
    protocol = out.packet[9] if out.packet[0] >> 4 == 4 else out.packet[6]
    if protocol == 50:  # outer_headers=True: strip the header like a raw socket would
        hlen = (out.packet[0] & 15) * 4 if out.packet[0] >> 4 == 4 else 40
        return proc.inbound(out.packet[hlen:], 50, out.src, out.dst, now)
    return proc.inbound(out.packet, protocol, out.src, out.dst, now)


def make_pair(
    alg: str,
    *,
    version: int = 4,
    mode: str = "tunnel",
    encap: bool = False,
    now: float = 0.0,
    outer_headers: bool = False,
    **extra: object,
) -> Pair:
    a = Processor(counter_rng(), outer_headers=outer_headers)
    b = Processor(counter_rng(), outer_headers=outer_headers)
    ab = dict(version=version, mode=mode, encap=encap, **extra)
    # a -> b uses SPI 0x1001, b -> a uses SPI 0x2002
    a_out = sa_params(alg, 0x1001, **ab)  # type: ignore[arg-type]
    a_in = sa_params(alg, 0x2002, seed=2, **ab)  # type: ignore[arg-type]
    b_out = sa_params(alg, 0x2002, seed=2, local_first=False, **ab)  # type: ignore[arg-type]
    b_in = sa_params(alg, 0x1001, local_first=False, **ab)  # type: ignore[arg-type]
    for proc, params in ((a, a_out), (b, b_out)):
        lts, rts = params.local_ts[0], params.remote_ts[0]
        proc.add_policy(Policy(lts, rts, "protect", key=KEY))
    a.install(a_in, a_out, KEY, now=now)
    b.install(b_in, b_out, KEY, now=now)
    return Pair(a, b, version, mode)
