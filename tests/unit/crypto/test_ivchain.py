from __future__ import annotations

import hashlib

import pytest

from snakeswan.crypto.algorithms import hash_by_name
from snakeswan.crypto.ivchain import IvChain
from snakeswan.crypto.keymat import phase1_iv, phase2_iv
from snakeswan.errors import CryptoError

SHA1 = hash_by_name("sha1")
BLOCK = 16
INITIAL = phase1_iv(SHA1, b"gxi" * 30, b"gxr" * 30, BLOCK)


def blocks(*fill: int) -> bytes:
    return b"".join(bytes([f]) * BLOCK for f in fill)


def test_phase1_chaining() -> None:
    chain = IvChain(SHA1, BLOCK, INITIAL)
    assert chain.iv_for(0) == INITIAL
    chain.confirm(0, blocks(1, 2, 3))  # MM5 sent
    assert chain.iv_for(0) == blocks(3)
    chain.confirm(0, blocks(4, 5))  # MM6 received and authenticated
    assert chain.iv_for(0) == blocks(5)


def test_new_message_id_derives_from_last_phase1_block() -> None:
    chain = IvChain(SHA1, BLOCK, INITIAL)
    chain.confirm(0, blocks(7, 9))
    mid = 0x12345678
    want = hashlib.sha1(blocks(9) + mid.to_bytes(4, "big")).digest()[:BLOCK]
    assert chain.iv_for(mid) == want == phase2_iv(SHA1, blocks(9), mid, BLOCK)


def test_unconfirmed_iv_for_changes_nothing() -> None:
    chain = IvChain(SHA1, BLOCK, INITIAL)
    chain.confirm(0, blocks(9))
    first = chain.iv_for(5)
    assert chain.known_message_ids() == ()
    assert chain.iv_for(5) == first
    assert chain.iv_for(0) == blocks(9)
    # a message that failed to authenticate is simply never confirmed: the IV stays
    assert chain.iv_for(5) == first


def test_confirm_moves_a_phase2_chain_only() -> None:
    chain = IvChain(SHA1, BLOCK, INITIAL)
    chain.confirm(0, blocks(9))
    other_before = chain.iv_for(6)
    chain.confirm(5, blocks(1, 2, 0xAA))  # QM1 sent
    assert chain.iv_for(5) == blocks(0xAA)
    chain.confirm(5, blocks(0xBB))  # QM2 received
    assert chain.iv_for(5) == blocks(0xBB)
    assert chain.iv_for(0) == blocks(9)  # phase 1 untouched
    assert chain.iv_for(6) == other_before  # other exchanges untouched


def test_new_exchange_after_phase1_moved_uses_new_phase1_block() -> None:
    chain = IvChain(SHA1, BLOCK, INITIAL)
    chain.confirm(0, blocks(1))
    chain.confirm(0, blocks(2))
    assert chain.iv_for(3) == phase2_iv(SHA1, blocks(2), 3, BLOCK)


def test_forget() -> None:
    chain = IvChain(SHA1, BLOCK, INITIAL)
    chain.confirm(5, blocks(0xAA))
    chain.forget(5)
    assert chain.iv_for(5) == phase2_iv(SHA1, INITIAL, 5, BLOCK)
    chain.forget(5)  # unknown: no error
    chain.forget(0)  # phase 1 is not forgotten
    assert chain.iv_for(0) == INITIAL


def test_eviction_bound() -> None:
    chain = IvChain(SHA1, BLOCK, INITIAL, max_exchanges=3)
    for mid in (1, 2, 3):
        chain.confirm(mid, blocks(mid))
    chain.confirm(1, blocks(0x11))  # 1 is now the most recently confirmed
    chain.confirm(4, blocks(4))  # evicts 2, the least recently confirmed
    assert chain.known_message_ids() == (3, 1, 4)
    assert chain.iv_for(2) == phase2_iv(SHA1, INITIAL, 2, BLOCK)
    assert chain.iv_for(1) == blocks(0x11)
    for mid in range(10, 30):
        chain.confirm(mid, blocks(mid))
    assert len(chain.known_message_ids()) == 3


def test_default_bound_is_eight() -> None:
    chain = IvChain(SHA1, BLOCK, INITIAL)
    for mid in range(1, 20):
        chain.confirm(mid, blocks(mid))
    assert chain.known_message_ids() == tuple(range(12, 20))


def test_des_block_size() -> None:
    md5 = hash_by_name("md5")
    initial = phase1_iv(md5, b"a", b"b", 8)
    chain = IvChain(md5, 8, initial)
    chain.confirm(0, bytes(range(24)))
    assert chain.iv_for(0) == bytes(range(16, 24))
    assert len(chain.iv_for(7)) == 8


def test_errors() -> None:
    with pytest.raises(CryptoError, match="initial IV"):
        IvChain(SHA1, BLOCK, INITIAL[:8])
    with pytest.raises(CryptoError, match="max_exchanges"):
        IvChain(SHA1, BLOCK, INITIAL, max_exchanges=0)
    chain = IvChain(SHA1, BLOCK, INITIAL)
    for bad in (b"", bytes(BLOCK - 1), bytes(BLOCK + 1)):
        with pytest.raises(CryptoError, match="multiple"):
            chain.confirm(0, bad)
    assert chain.iv_for(0) == INITIAL  # a refused confirm changes nothing


def test_alternative_end_of_phase1_is_adopted_when_a_phase2_message_confirms() -> None:
    chain = IvChain(SHA1, BLOCK, INITIAL)
    chain.confirm(0, blocks(1, 2))  # the first form of the final message
    chain.add_phase1_alternative(blocks(3))  # a second authenticated form
    mid = 0x0A0B0C0D
    cands = chain.candidates(mid)
    assert cands == [
        (phase2_iv(SHA1, blocks(2), mid, BLOCK), None),
        (phase2_iv(SHA1, blocks(3), mid, BLOCK), blocks(3)),
    ]
    assert chain.candidates(0) == [(blocks(2), None)]  # phase 1 itself: one chain
    chain.decrypted_with(mid, blocks(3))
    chain.confirm(mid, blocks(8))  # it authenticated: blocks(3) was the end of phase 1
    assert chain.iv_for(0) == blocks(3) and chain.iv_for(mid) == blocks(8)
    other = 0x01020304
    assert chain.candidates(other) == [(phase2_iv(SHA1, blocks(3), other, BLOCK), None)]


def test_alternatives_are_bounded_and_never_the_chain_itself() -> None:
    chain = IvChain(SHA1, BLOCK, INITIAL)
    chain.confirm(0, blocks(1))
    chain.add_phase1_alternative(blocks(1))  # the chain's own block: nothing new
    for f in range(2, 9):
        chain.add_phase1_alternative(blocks(f))
    assert [base for _, base in chain.candidates(5)][1:] == [blocks(f) for f in (5, 6, 7, 8)]
    with pytest.raises(CryptoError):
        chain.add_phase1_alternative(b"short")


def test_forgotten_exchange_adopts_nothing() -> None:
    chain = IvChain(SHA1, BLOCK, INITIAL)
    chain.confirm(0, blocks(1))
    chain.add_phase1_alternative(blocks(2))
    chain.decrypted_with(9, blocks(2))
    chain.forget(9)  # an informational: verified, then forgotten
    chain.confirm(9, blocks(4))
    assert chain.iv_for(0) == blocks(1)
