"""The commit bit (RFC 2408 section 4.6) in Quick Mode, and the CONNECTED notify.

A side that sets the commit bit asks that no IPsec SA be used before the other is known to have
installed its own. strongSwan and Libreswan ignore it, racoon and some Cisco gateways use it; we
honour it in both roles and set it ourselves as initiator when the connection asks
(``commit_bit = true``):

- responder: a QM1 with the bit gets a QM2 with the bit; once QM3 is verified and our SAs are
  installed we send an Informational exchange with N(CONNECTED) (protocol and our inbound SPI)
  under the Quick Mode's message ID, its IV continuing that exchange's chain (as racoon),
  HASH(1) = prf(SKEYID_a, M-ID | N); a repeated QM3 gets it again. We never set the bit in QM2 on
  our own: an initiator that did not set it does not wait for CONNECTED, and strongSwan takes a
  message under its Quick Mode's ID for an unexpected response and silently drops its ISAKMP SA
  (tests/interop/test_commit_bit.py).
- initiator: a QM2 with the bit means the responder will send CONNECTED: QM3 goes out and is
  retransmitted until CONNECTED comes (matched by message ID, or by the SPI it names); only then
  are our SAs reported established. If it never comes the Quick Mode fails like any other.
  A QM2 without the bit (a responder that ignores it) completes the exchange at once.
"""

from __future__ import annotations

from snakeswan.ike import informational
from snakeswan.ike.exchange import Exchange
from snakeswan.wire.enums import Flag, NotifyType
from snakeswan.wire.message import Header
from snakeswan.wire.payloads import NotifyPayload

FLAGS = Flag.COMMIT


def requested(header: Header) -> bool:
    return bool(header.flags & Flag.COMMIT)


def responder_sets(qm: Exchange, qm1: Header) -> bool:
    """Whether our QM2 carries the bit: only when the initiator's QM1 did (see above)."""
    if requested(qm1):
        return True
    conn = getattr(qm, "conn", None)
    if conn is not None and conn.commit_bit:
        qm.trace("commit_bit_not_set", reason="the initiator did not set it: it would not wait for CONNECTED")
    return False


def connected_notify(protocol: int, spi_in: int) -> NotifyPayload:
    return NotifyPayload(NotifyType.CONNECTED, protocol, spi_in.to_bytes(4, "big"))


def send_connected(qm: Exchange, protocol: int, spi_in: int, now: float) -> None:
    """The responder's CONNECTED, recorded as the Quick Mode's answer to QM3 (for duplicates)."""
    data = informational.send(qm.sa, qm.ctx, [connected_notify(protocol, spi_in)], message_id=qm.message_id)
    qm.retx.sent(data, now, expect_reply=False)
    qm.ctx.tracer.emit("ike", "connected_sent", sa=qm.sa.unique_id, mid=qm.message_id, spi=f"{spi_in:08x}")
