"""Known answers: ESP AES-GCM packets of draft-mcgrew-gcm-test-01 section 4, ESP AES-CBC packets of
RFC 3602 section 4 (cases 5 to 8), HMAC-SHA2 truncations of RFC 4868 2.7.2 and HMAC-MD5/SHA1
(RFC 2202 test case 1, truncated to 96 bits as RFC 2403/2404)."""

from __future__ import annotations

import pytest

from snakeswan.ipsec.algorithms import Integrity
from snakeswan.ipsec.esp import EspCodec, decapsulate, encapsulate, open_esp
from snakeswan.ipsec.packet import Drop
from snakeswan.wire.enums import AuthAlgorithm, EspTransformId

# draft-mcgrew-gcm-test-01, section 4. Keying material = key | salt; ESP packet = SPI | seq | IV |
# ciphertext | ICV; plaintext = payload | padding | pad length | next header (1 in these cases).
GCM_CASES = [
    pytest.param(
        "feffe9928665731c6d6a8f9467308308",
        "cafebabe",
        0x0000A5F8,
        0x0000000A,
        "facedbaddecaf888",
        "4500003e698f000080114dccc0a80102c0a801010a980035002a2343b2d001000001000000000000037369700963"
        "796265726369747902646b0000010001",
        "0001",
        "deb22cd9b07c72c16e3a65beeb8df304a5a5897d33ae530f1ba76d5d114d2a5c3de81827c10e9a4f51330d0eec41"
        "6642cfbb85a5b47e48a4ec3b9ba95d918bd1",
        "83b70d3aa8bc6ee4c309e9d85a41ad4a",
        id="case2-aes128-dns",
    ),
    pytest.param(
        "abbccddef00112233445566778899aababbccddef00112233445566778899aab",
        "11223344",
        0x4A2CBFE3,
        0x00000002,
        "0102030405060708",
        "4500003069a6400080062690c0a801029389155e0a9e008b2dc57ee0000000007002400020bf0000020405b401010402",
        "01020201",
        "ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763748a637985771d347f0545659f14"
        "e99def842d8e",
        "b335f4eecfdbf831824b4c4915956c96",
        id="case3-aes256-tcp-syn",
    ),
    pytest.param(
        "00000000000000000000000000000000",
        "00000000",
        0x00000000,
        0x00000001,
        "0000000000000000",
        "4500003c99c500008001cb7a40679318010101010800075c020044006162636465666768696a6b6c6d6e6f7071"
        "727374757677616263646566676869",
        "01020201",
        "4688daf2f973a392732909c331d56d60f694abaa414b5e7ff5fdcdfff5e9a284456476492719ffb64de7d9dca1"
        "e1d894bc3bd57873ed4d181d19d4d5c8c18af3",
        "f821d496eeb096e98ad2b69e4799c71d",
        id="case4-zero-key-icmp",
    ),
]


def _gcm(key: str, salt: str, spi: int) -> EspCodec:
    bits = len(key) * 4
    return EspCodec(spi, EspTransformId.AES_GCM_16, bits, None, bytes.fromhex(key + salt), b"")


@pytest.mark.parametrize(("key", "salt", "spi", "seq", "iv", "payload", "trailer", "ct", "icv"), GCM_CASES)
def test_gcm_decapsulate_known_answer(
    key: str, salt: str, spi: int, seq: int, iv: str, payload: str, trailer: str, ct: str, icv: str
) -> None:
    packet = spi.to_bytes(4, "big") + seq.to_bytes(4, "big") + bytes.fromhex(iv + ct + icv)
    next_header, data = decapsulate(_gcm(key, salt, spi), packet)
    assert next_header == 1
    assert data == bytes.fromhex(payload)
    assert open_esp(_gcm(key, salt, spi), packet) == bytes.fromhex(payload + trailer)


@pytest.mark.parametrize(("key", "salt", "spi", "seq", "iv", "payload", "trailer", "ct", "icv"), GCM_CASES)
def test_gcm_encapsulate_known_answer(
    key: str, salt: str, spi: int, seq: int, iv: str, payload: str, trailer: str, ct: str, icv: str
) -> None:
    packet = encapsulate(_gcm(key, salt, spi), bytes.fromhex(payload), 1, seq, lambda n: bytes.fromhex(iv))
    assert packet == spi.to_bytes(4, "big") + seq.to_bytes(4, "big") + bytes.fromhex(iv + ct + icv)


def test_gcm_wrong_salt_or_aad_fails() -> None:
    key, salt, spi, seq, iv, _payload, _trailer, ct, icv = GCM_CASES[0].values
    assert isinstance(spi, int) and isinstance(seq, int) and isinstance(key, str)
    assert isinstance(salt, str) and isinstance(iv, str) and isinstance(ct, str) and isinstance(icv, str)
    packet = spi.to_bytes(4, "big") + seq.to_bytes(4, "big") + bytes.fromhex(iv + ct + icv)
    with pytest.raises(Drop) as exc:
        decapsulate(_gcm(key, "cafebabf", spi), packet)
    assert exc.value.reason == "icv"
    # the sequence number is in the AAD: changing it breaks the ICV
    with pytest.raises(Drop):
        decapsulate(_gcm(key, salt, spi), packet[:7] + b"\x0b" + packet[8:])


# RFC 3602 section 4, cases 5-8: ESP with AES-CBC, no integrity (the RFC shows no ICV).
CBC_CASES = [
    pytest.param(
        "90d382b410eeba7ad938c46cec1a82bf",
        0x4321,
        1,
        "e96e8c08ab465763fd098d45dd3ff893",
        1,
        "08000ebda70a00008e9c083db95b070008090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425"
        "262728292a2b2c2d2e2f3031323334353637",
        "f663c25d325c18c6a9453e194e120849a4870b66cc6b9965330013b4898dc856a4699e523a55db080b59ec3a8e4b"
        "7e52775b07d1db34ed9c538ab50c551b874aa269add047ad2d5913ac19b7cfbad4a6",
        id="case5-transport-icmp",
    ),
    pytest.param(
        "90d382b410eeba7ad938c46cec1a82bf",
        0x4321,
        8,
        "69d08df7d203329db093fc4924e5bd80",
        1,
        "0800b5e8a80a0500a69c083d0b660e00777777777777777777777777",
        "f51995881ec4e0c4488987ce742e8109689bb379d2d750c0d915dca346a89f75",
        id="case6-transport-icmp",
    ),
    pytest.param(
        "0123456789abcdef0123456789abcdef",
        0x8765,
        2,
        "f4e765244f6407adf13dc1380f673f37",
        4,
        "45000054090400004001f988c0a87b03c0a87bc808009f76a90a0100b49c083d02a2040008090a0b0c0d0e0f1011"
        "12131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637",
        "773b5241a4c449225e4f3ce5ed611b0c237ca96cf74a93013c1b0ea1a0cf70f8e4ecaec78ac53aad7a0f022b8592"
        "43c647752e94a859352b8a4d4d2decd136e5c177f132ad3fbfb2201ac9904c74ee0a109e0ca1e4dfe9d5a100b842"
        "f1c22f0d",
        id="case7-tunnel-icmp",
    ),
    pytest.param(
        "0123456789abcdef0123456789abcdef",
        0x8765,
        5,
        "85d47224b5f3dd5d2101d4ea8dffab22",
        4,
        "45000044090c00004001f990c0a87b03c0a87bc80800d63caa0a0200c69c083da3de0300ffffffffffffffffffff"
        "ffffffffffffffffffffffffffffffffffffffffffff",
        "15b92683819596a8047232cc00f7048fe45318e11f8a0f62ede3c3fc61203bb50f980a08c9843fd3a1b06d5c07ff"
        "9639b7eb7dfb3512e5de435e7207ed971ef3d2726d9b5ef6affc6d17a0decbb13892",
        id="case8-tunnel-icmp",
    ),
]


@pytest.mark.parametrize(("key", "spi", "seq", "iv", "nh", "payload", "ct"), CBC_CASES)
def test_cbc_known_answer(key: str, spi: int, seq: int, iv: str, nh: int, payload: str, ct: str) -> None:
    codec = EspCodec(spi, EspTransformId.AES_CBC, 128, None, bytes.fromhex(key), b"")
    expected = spi.to_bytes(4, "big") + seq.to_bytes(4, "big") + bytes.fromhex(iv + ct)
    assert encapsulate(codec, bytes.fromhex(payload), nh, seq, lambda n: bytes.fromhex(iv)) == expected
    assert decapsulate(codec, expected) == (nh, bytes.fromhex(payload))


HI_THERE = b"Hi There"


@pytest.mark.parametrize(
    ("auth", "key_len", "icv"),
    [
        # RFC 4868 2.7.2.1-3, test case AUTH*-1 (key 0x0b repeated), truncated per 2.3
        (AuthAlgorithm.HMAC_SHA2_256, 32, "198a607eb44bfbc69903a0f1cf2bbdc5"),
        (AuthAlgorithm.HMAC_SHA2_384, 48, "b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee973"),
        (
            AuthAlgorithm.HMAC_SHA2_512,
            64,
            "637edc6e01dce7e6742a99451aae82df23da3e92439e590e43e761b33e910fb8",
        ),
        # RFC 2202 test case 1, truncated to 96 bits (RFC 2403, RFC 2404)
        (AuthAlgorithm.HMAC_MD5, 16, "9294727a3638bb1c13f48ef8"),
        (AuthAlgorithm.HMAC_SHA, 20, "b617318655057264e28bc0b6"),
    ],
)
def test_integrity_known_answer(auth: int, key_len: int, icv: str) -> None:
    integrity = Integrity(auth, b"\x0b" * key_len)
    assert integrity.mac(HI_THERE) == bytes.fromhex(icv)
    assert integrity.mac(b"Hi ", b"There") == bytes.fromhex(icv)
    assert integrity.verify(bytes.fromhex(icv), HI_THERE)
    assert not integrity.verify(bytes.fromhex(icv), b"Hi there")


def test_rfc4868_auth256_2_jefe() -> None:
    # RFC 4868 2.7.2.1 AUTH256-2: key "JefeJefe..." (32 bytes), "what do ya want for nothing?"
    integrity = Integrity(AuthAlgorithm.HMAC_SHA2_256, b"Jefe" * 8)
    assert integrity.mac(b"what do ya want for nothing?") == bytes.fromhex("167f928588c5cc2eef8e3093caa0e87c")
