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
