from __future__ import annotations

import os
from collections.abc import Callable

import gmpy2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from snakeswan.crypto.algorithms import UnsupportedAlgorithm
from snakeswan.crypto.dh import SUPPORTED_GROUPS, EcpGroup, ModpGroup, dh_group
from snakeswan.errors import CryptoError

MODP_IDS = [1, 2, 5, 14, 15, 16, 17, 18]
ECP_IDS = [19, 20, 21]


def fixed_rng(*chunks: bytes) -> Callable[[int], bytes]:
    """An rng that hands out the given byte strings in order, checking the requested size."""
    queue = list(chunks)

    def rng(n: int) -> bytes:
        chunk = queue.pop(0)
        assert len(chunk) == n, f"asked for {n} bytes, test prepared {len(chunk)}"
        return chunk

    return rng


def modp(group_id: int) -> ModpGroup:
    group = dh_group(group_id)
    assert isinstance(group, ModpGroup)
    return group


# --- the primes --------------------------------------------------------------------------------

# RFC 2409 section 6 and RFC 3526: p = 2^n - 2^(n-64) - 1 + 2^64 * ( [2^(n-130) pi] + k )
PRIME_FORMULA = {
    1: (768, 149686),
    2: (1024, 129093),
    5: (1536, 741804),
    14: (2048, 124476),
    15: (3072, 1690314),
    16: (4096, 240904),
    17: (6144, 929484),
    18: (8192, 4743158),
}


def prime_from_formula(n: int, k: int) -> int:
    with gmpy2.context(gmpy2.get_context(), precision=n + 64):
        pi = gmpy2.const_pi()
        floor_term = int(gmpy2.floor(pi * gmpy2.exp2(n - 130)))
    result: int = 2**n - 2 ** (n - 64) - 1 + 2**64 * (floor_term + k)
    return result


@pytest.mark.parametrize("group_id", MODP_IDS)
def test_prime_matches_rfc_formula(group_id: int) -> None:
    n, k = PRIME_FORMULA[group_id]
    group = modp(group_id)
    assert group.prime == prime_from_formula(n, k)
    assert group.prime.bit_length() == n
    assert group.public_size == n // 8
    assert group.generator == 2


def test_group14_prime_literal() -> None:
    # RFC 3526 section 3, first and last lines of the printed prime
    text = f"{modp(14).prime:X}"
    assert text.startswith("FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1")
    assert text.endswith("15728E5A8AACAA68FFFFFFFFFFFFFFFF")


@pytest.mark.parametrize("group_id", [1, 2, 5, 14])
def test_primes_are_safe(group_id: int) -> None:
    p = modp(group_id).prime
    assert gmpy2.is_prime(p) and gmpy2.is_prime((p - 1) // 2)


# --- key agreement -----------------------------------------------------------------------------


def test_supported_groups() -> None:
    assert set(SUPPORTED_GROUPS) == {*MODP_IDS, *ECP_IDS, 31}
    for group_id in SUPPORTED_GROUPS:
        assert dh_group(group_id).group_id == group_id


@pytest.mark.parametrize("group_id", SUPPORTED_GROUPS)
def test_two_key_pairs_agree(group_id: int) -> None:
    group = dh_group(group_id)
    a, b = group.generate(os.urandom), group.generate(os.urandom)
    assert len(a.public) == len(b.public) == group.public_size
    assert a.public != b.public
    assert a.group_id == group_id
    secret = a.shared_secret(b.public)
    assert secret == b.shared_secret(a.public)
    assert any(secret)


@pytest.mark.parametrize("group_id", MODP_IDS)
def test_backends_agree_with_python_pow(group_id: int) -> None:
    group = modp(group_id)
    nbytes = group.exponent_bits // 8
    xa, xb = os.urandom(nbytes), os.urandom(nbytes)
    p = group.prime
    ya = pow(2, int.from_bytes(xa, "big"), p)
    yb = pow(2, int.from_bytes(xb, "big"), p)
    want = pow(ya, int.from_bytes(xb, "big"), p).to_bytes(group.public_size, "big")
    for backend in ("gmpy2", "openssl"):
        impl = group.with_backend(backend)
        a = impl.generate(fixed_rng(xa))
        b = impl.generate(fixed_rng(xb))
        assert a.public == ya.to_bytes(group.public_size, "big"), backend
        assert b.public == yb.to_bytes(group.public_size, "big"), backend
        assert a.shared_secret(b.public) == want == b.shared_secret(a.public), backend


@pytest.mark.parametrize("group_id", MODP_IDS)
@pytest.mark.parametrize("backend", ["gmpy2", "openssl"])
def test_modp_values_are_left_padded(group_id: int, backend: str) -> None:
    group = modp(group_id).with_backend(backend)
    nbytes = group.exponent_bits // 8
    pair = group.generate(fixed_rng((5).to_bytes(nbytes, "big")))  # x = 5: g^x = 32
    assert pair.public == (32).to_bytes(group.public_size, "big")
    peer = (3).to_bytes(group.public_size, "big")
    assert pair.shared_secret(peer) == (3**5).to_bytes(group.public_size, "big")


@pytest.mark.parametrize("group_id", MODP_IDS)
def test_modp_exponent_size(group_id: int) -> None:
    group = modp(group_id)
    assert group.exponent_bits % 8 == 0
    assert group.exponent_bits >= 256
    assert group.exponent_bits < group.prime.bit_length()


def test_modp_exponent_redrawn_when_too_small() -> None:
    group = modp(14)
    nbytes = group.exponent_bits // 8
    pair = group.generate(fixed_rng(bytes(nbytes), (1).to_bytes(nbytes, "big"), (2).to_bytes(nbytes, "big")))
    assert pair.public == (4).to_bytes(group.public_size, "big")


def test_rng_that_never_gives_a_usable_value() -> None:
    with pytest.raises(CryptoError, match="rng"):
        modp(2).generate(bytes)


def test_rng_returning_wrong_size() -> None:
    for group_id in (2, 14, 19, 31):
        with pytest.raises(CryptoError, match="rng returned"):
            dh_group(group_id).generate(lambda n: bytes(n - 1))


@pytest.mark.parametrize("group_id", MODP_IDS)
def test_modp_rejects_invalid_peer_values(group_id: int) -> None:
    group = modp(group_id)
    pair = group.generate(os.urandom)
    size, p = group.public_size, group.prime
    for value in (0, 1, p - 1, p, p + 1, 2 ** (8 * size) - 1):
        with pytest.raises(CryptoError, match="range"):
            pair.shared_secret(value.to_bytes(size, "big"))
    for bad in (b"", pair.public[1:], b"\0" + pair.public, pair.public + b"\0"):
        with pytest.raises(CryptoError, match="bytes, expected"):
            pair.shared_secret(bad)
    # the edges of the valid range are accepted
    pair.shared_secret((2).to_bytes(size, "big"))
    pair.shared_secret((p - 2).to_bytes(size, "big"))


def test_repr_hides_private_values() -> None:
    group = modp(14)
    x = bytes.fromhex("a5" * (group.exponent_bits // 8))
    pair = group.generate(fixed_rng(x))
    text = repr(pair)
    assert "a5a5a5" not in text and str(int.from_bytes(x, "big")) not in text
    scalar = bytes.fromhex("5a" * 32)
    assert "5a5a5a" not in repr(dh_group(19).generate(fixed_rng(scalar)))
    assert "5a5a5a" not in repr(dh_group(31).generate(fixed_rng(scalar)))


@pytest.mark.parametrize("group_id", [0, 3, 4, 22, 23, 24, 25, 26, 32, 1000])
def test_unsupported_groups(group_id: int) -> None:
    with pytest.raises(UnsupportedAlgorithm, match="Diffie-Hellman group"):
        dh_group(group_id)


# --- ECP: RFC 5903 section 8 -------------------------------------------------------------------

RFC5903 = {
    19: dict(
        i="C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433",
        gix="DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180",
        giy="5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3",
        r="C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53",
        grx="D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63",
        gry="56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB",
        girx="D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE",
    ),
    20: dict(
        i="099F3C7034D4A2C699884D73A375A67F7624EF7C6B3C0F160647B67414DCE655E35B538041E649EE3FAEF896783AB194",
        gix="667842D7D180AC2CDE6F74F37551F55755C7645C20EF73E31634FE72B4C55EE6DE3AC808ACB4BDB4C88732AEE95F41AA",
        giy="9482ED1FC0EEB9CAFC4984625CCFC23F65032149E0E144ADA024181535A0F38EEB9FCFF3C2C947DAE69B4C634573A81C",
        r="41CB0779B4BDB85D47846725FBEC3C9430FAB46CC8DC5060855CC9BDA0AA2942E0308312916B8ED2960E4BD55A7448FC",
        grx="E558DBEF53EECDE3D3FCCFC1AEA08A89A987475D12FD950D83CFA41732BC509D0D1AC43A0336DEF96FDA41D0774A3571",
        gry="DCFBEC7AACF3196472169E838430367F66EEBE3C6E70C416DD5F0C68759DD1FFF83FA40142209DFF5EAAD96DB9E6386C",
        girx="11187331C279962D93D604243FD592CB9D0A926F422E47187521287E7156C5C4D603135569B9E9D09CF5D4A270F59746",
    ),
    21: dict(
        i="0037ADE9319A89F4DABDB3EF411AACCCA5123C61ACAB57B5393DCE47608172A0"
        "95AA85A30FE1C2952C6771D937BA9777F5957B2639BAB072462F68C27A57382D4A52",
        gix="0015417E84DBF28C0AD3C278713349DC7DF153C897A1891BD98BAB4357C9ECBE"
        "E1E3BF42E00B8E380AEAE57C2D107564941885942AF5A7F4601723C4195D176CED3E",
        giy="017CAE20B6641D2EEB695786D8C946146239D099E18E1D5A514C739D7CB4A10A"
        "D8A788015AC405D7799DC75E7B7D5B6CF2261A6A7F1507438BF01BEB6CA3926F9582",
        r="0145BA99A847AF43793FDD0E872E7CDFA16BE30FDC780F97BCCC3F078380201E"
        "9C677D600B343757A3BDBF2A3163E4C2F869CCA7458AA4A4EFFC311F5CB151685EB9",
        grx="00D0B3975AC4B799F5BEA16D5E13E9AF971D5E9B984C9F39728B5E5739735A21"
        "9B97C356436ADC6E95BB0352F6BE64A6C2912D4EF2D0433CED2B6171640012D9460F",
        gry="015C68226383956E3BD066E797B623C27CE0EAC2F551A10C2C724D9852077B87"
        "220B6536C5C408A1D2AEBB8E86D678AE49CB57091F4732296579AB44FCD17F0FC56A",
        girx="01144C7D79AE6956BC8EDB8E7C787C4521CB086FA64407F97894E5E6B2D79B04"
        "D1427E73CA4BAA240A34786859810C06B3C715A3A8CC3151F2BEE417996D19F3DDEA",
    ),
}


@pytest.mark.parametrize("group_id", ECP_IDS)
def test_ecp_rfc5903_vectors(group_id: int) -> None:
    v = {k: bytes.fromhex(s) for k, s in RFC5903[group_id].items()}
    group = dh_group(group_id)
    initiator = group.generate(fixed_rng(v["i"]))
    responder = group.generate(fixed_rng(v["r"]))
    assert initiator.public == v["gix"] + v["giy"]  # x | y, no 0x04 (RFC 5903 section 7)
    assert responder.public == v["grx"] + v["gry"]
    assert initiator.shared_secret(responder.public) == v["girx"]  # x coordinate only
    assert responder.shared_secret(initiator.public) == v["girx"]


@pytest.mark.parametrize("group_id", ECP_IDS)
def test_ecp_order(group_id: int) -> None:
    # (n-1)*G = -G: same x as G, y = p - y(G). Checks the hard-coded order n.
    group = dh_group(group_id)
    assert isinstance(group, EcpGroup)
    g = ec.derive_private_key(1, group.curve).public_key().public_numbers()
    minus_g = ec.derive_private_key(group.order - 1, group.curve).public_key().public_numbers()
    assert minus_g.x == g.x and minus_g.y != g.y
    with pytest.raises(ValueError):
        ec.derive_private_key(group.order, group.curve)


@pytest.mark.parametrize("group_id", ECP_IDS)
def test_ecp_scalar_out_of_range_is_redrawn(group_id: int) -> None:
    group = dh_group(group_id)
    assert isinstance(group, EcpGroup)
    size = (group.order.bit_length() + 7) // 8
    one = (1).to_bytes(size, "big")
    pair = group.generate(fixed_rng(bytes(size), group.order.to_bytes(size, "big"), one))
    g = ec.derive_private_key(1, group.curve).public_key().public_numbers()
    c = group.coordinate_size
    assert pair.public == g.x.to_bytes(c, "big") + g.y.to_bytes(c, "big")


@pytest.mark.parametrize("group_id", ECP_IDS)
def test_ecp_rejects_invalid_peer_values(group_id: int) -> None:
    group = dh_group(group_id)
    pair = group.generate(os.urandom)
    peer = group.generate(os.urandom).public
    size = group.public_size
    off_curve = peer[:-1] + bytes([peer[-1] ^ 1])
    for bad in (off_curve, bytes(size), b"\xff" * size):
        with pytest.raises(CryptoError, match="not a point on the curve"):
            pair.shared_secret(bad)
    for bad in (b"", peer[:-1], peer + b"\0", b"\x04" + peer, peer[: size // 2]):
        with pytest.raises(CryptoError, match="bytes, expected"):
            pair.shared_secret(bad)


# --- Curve25519: RFC 7748 section 6.1 ----------------------------------------------------------

X25519_ALICE = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
X25519_ALICE_PUB = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
X25519_BOB = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
X25519_BOB_PUB = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
X25519_SHARED = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"


def test_x25519_rfc7748_vector() -> None:
    group = dh_group(31)
    alice = group.generate(fixed_rng(bytes.fromhex(X25519_ALICE)))
    bob = group.generate(fixed_rng(bytes.fromhex(X25519_BOB)))
    assert alice.public.hex() == X25519_ALICE_PUB
    assert bob.public.hex() == X25519_BOB_PUB
    assert alice.shared_secret(bob.public).hex() == X25519_SHARED
    assert bob.shared_secret(alice.public).hex() == X25519_SHARED


def test_x25519_rejects_low_order_and_bad_length() -> None:
    pair = dh_group(31).generate(os.urandom)
    for low_order in (bytes(32), (1).to_bytes(32, "little")):
        with pytest.raises(CryptoError, match="all zero"):
            pair.shared_secret(low_order)
    for bad in (b"", bytes(31), bytes(33)):
        with pytest.raises(CryptoError, match="bytes, expected 32"):
            pair.shared_secret(bad)
