"""A Quick Mode message seen in two forms (the padding of an encrypted ISAKMP message is not
covered by its HASH).

CBC chains each message's IV from the last ciphertext block of the message before it, and that
block may hold nothing but padding. A copy of QM1 whose last block was altered (on the path, or by
a fuzzer) still authenticates; a responder that answers it first chains QM2 from the altered
block, so the real initiator cannot decrypt QM2 and, its own retransmissions of QM1 being neither
byte-for-byte duplicates nor QM3, the exchange stalls until it gives up. (The same can happen to
the last phase 1 message: ``crypto/ivchain.py`` keeps alternative ends of phase 1 for it, and
``main_mode.py`` sends an unanswered QM1 again from the other end.)

Here: once QM2 has gone, a message that decrypts with the IV QM1 was decrypted with, into exactly
the payloads of the QM1 we accepted (so its HASH(1) is the authentic one), is that QM1 in another
form. It is answered with the same QM2 payloads encrypted from its own last block; the IV QM3 was
expected under before stays a candidate, so whichever form the initiator really sent, its QM3 is
accepted. Each form is answered at most once. The initiator does the same for QM2 once it has
sent QM3 (a copy of QM2 it took first made it chain QM3 wrongly; the responder, unable to decrypt
QM3, sends QM2 again): QM3 goes again, chained from the genuine QM2. The initiator never answers
a byte-for-byte repeat of QM2 (QM3 is a final message).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from snakeswan.errors import DecodeError
from snakeswan.ike import crypt
from snakeswan.wire.enums import ExchangeType
from snakeswan.wire.message import HEADER_SIZE
from snakeswan.wire.payloads import Payload

if TYPE_CHECKING:
    from snakeswan.ike.quick_mode import QuickMode

__all__ = ["QmForms"]

MAX_FORMS = 4  # other forms of one QM1 answered at most


class QmForms:
    """What one end needs to answer another form of the message its last answer chained from."""

    __slots__ = ("_answered", "_flags", "_iv", "_plain", "_reply")

    def __init__(self) -> None:
        self._iv: bytes | None = None  # the IV QM1 was decrypted with
        self._plain = b""  # the payloads of the QM1 we accepted, as received
        self._reply: list[Payload] = []  # the QM2 we sent (HASH first)
        self._flags = 0
        self._answered: set[bytes] = set()

    def accepted(self, iv: bytes, payload_bytes: bytes) -> None:
        self._iv, self._plain = iv, payload_bytes

    def replied(self, payloads: list[Payload], flags: int) -> None:
        self._reply, self._flags = list(payloads), flags

    def answer(self, qm: QuickMode, data: bytes, now: float) -> bool:
        """True when ``data`` was another form of the message we answered and has been answered
        (the caller checks that ``qm`` is waiting: a responder for QM3, an initiator after QM3)."""
        sa = qm.sa
        if self._iv is None or not self._reply or sa.crypto is None:
            return False
        digest = hashlib.sha256(data).digest()
        if digest in self._answered or len(self._answered) >= MAX_FORMS:
            return False
        try:
            msg, ciphertext = crypt.decrypt_with(sa, data, self._iv)
        except DecodeError:
            return False
        if b"".join(rp.raw for rp in msg.payloads) != self._plain:
            return False
        self._answered.add(digest)
        chain = sa.crypto.iv
        expected = chain.iv_for(qm.message_id)  # QM3 under the first form stays acceptable
        bs = sa.crypto.cipher.block_size
        reply = crypt.build(
            sa, ExchangeType.QUICK_MODE, qm.message_id, self._reply, encrypt=True,
            iv=ciphertext[-bs:], flags=self._flags,
        )  # fmt: skip
        chain.confirm(qm.message_id, reply[HEADER_SIZE:])
        chain.add_alternative(qm.message_id, expected)
        which = "QM2" if qm.initiator else "QM1"
        answer = "QM3" if qm.initiator else "QM2"
        qm.trace("other_form", msg=which, mid=qm.message_id, answered=f"{answer} chained from this form")
        qm.send(reply, now, expect_reply=not qm.initiator)
        if not qm.initiator:  # a repeat of this form gets this QM2 (never QM3 again, a final message)
            qm.retx.processed(data)
        return True
