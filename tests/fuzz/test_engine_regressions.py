"""Inputs the engine fuzzing found, kept as regression tests.

``test_mm5_with_flipped_padding_bytes``: found by test_engine_fuzz's hypothesis run (also on main
at 33691ba). A copy of MM5 with bytes of its last ciphertext block changed still decrypts to the
real payloads (IKEv1 does not authenticate the padding), so the responder accepts it as MM5 and
completes; but its phase 1 IV now follows the junk's last block, so MM6 does not decrypt at the
initiator ("HASH payload missing"), and the initiator's retransmitted, genuine MM5 is dropped as
"exchange already complete" without MM6 being sent again: the negotiation times out. An on-path
attacker can do this to every Main Mode. Expected to fail until the responder answers a genuine
MM5 retransmission after completion. Fixed: the responder keeps an alternative end of phase 1
(main_mode/engine: a second, differently padded MM5 gets MM6 chained from it, and the peer's first
Quick Mode message settles which one is right).
"""

from __future__ import annotations

from tests.fuzz.test_engine_fuzz import check, drive, reference


def test_mm5_with_flipped_padding_bytes() -> None:
    mm5 = reference("main")[4].data
    junk = bytearray(mm5)
    junk[-1] ^= 0x01  # in the last block: the padding, after the payloads
    check(drive("main", 4, lambda d: [bytes(junk)]), "main", 4)


def _with_a_block_appended(kind: str, index: int) -> bytes:
    qm1 = reference(kind)[index].data
    junk = bytearray(qm1 + bytes(16))  # one more block: it decrypts to junk taken for padding
    junk[24:28] = len(junk).to_bytes(4, "big")
    return bytes(junk)


def test_qm1_with_a_block_appended_main() -> None:
    """Found by test_engine_fuzz (this session): a QM1 copy with a block appended (header length
    fixed) still authenticates, the extra block decrypting to what looks like padding; the responder answered it, chaining QM2
    from the altered block, so the initiator could not decrypt QM2 and its genuine QM1
    retransmissions were dropped: the Quick Mode stalled. Fixed in ike/qm_forms.py: the genuine
    QM1, seen after, is answered too, and QM3 is accepted under either chain."""
    check(drive("main", 6, lambda d: [_with_a_block_appended("main", 6)]), "main", 6)


def test_qm1_with_a_block_appended_aggressive() -> None:
    check(drive("aggressive", 3, lambda d: [_with_a_block_appended("aggressive", 3)]), "aggressive", 3)


def test_qm2_with_a_block_appended_main() -> None:
    """The initiator's side of the same: a QM2 copy with a block appended is taken first, QM3
    chains from it, the responder cannot decrypt QM3 and sends QM2 again: QM3 goes again from the
    genuine QM2 (ike/qm_forms.py)."""
    check(drive("main", 7, lambda d: [_with_a_block_appended("main", 7)]), "main", 7)


def test_qm2_with_a_block_appended_aggressive() -> None:
    check(drive("aggressive", 4, lambda d: [_with_a_block_appended("aggressive", 4)]), "aggressive", 4)


def test_mm6_with_a_block_appended() -> None:
    """A copy of MM6 with a block appended, taken by the initiator before the genuine MM6, made
    the initiator chain phase 2 from the forged block: the responder could not decrypt its QM1,
    and the Quick Mode failed after its retransmissions. Fixed (main_mode._late_mm6): the genuine
    MM6, arriving after, is an alternative end of phase 1 and QM1 goes again chained from it."""
    check(drive("main", 5, lambda d: [_with_a_block_appended("main", 5)]), "main", 5)
