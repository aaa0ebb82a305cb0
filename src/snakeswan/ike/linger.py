"""Completed Quick Mode and Transaction exchanges: kept while the peer may still need our last
answer, then forgotten but for their message ID (issue 15: memory per SA).

A finished exchange costs ~6 KiB (its messages, proposals, the forms of ike/qm_forms.py). It is
only needed to answer a retransmission of the peer's last message: when our last message was an
answer (an initiator's QM3 after QM2, an XAUTH SET after the REPLY...) it stays for the peer's
retransmission budget (:data:`LINGER`, strongSwan's default budget), so that a lost answer is
sent again; when the peer's message ended it (a responder's QM3), it goes at once. Its message ID
stays in :attr:`IkeSa.done_mids` (the last :data:`DONE_MIDS`), so that a late copy of its first
message is dropped as "exchange already complete", not taken for a new exchange.
"""

from __future__ import annotations

from snakeswan.ike.exchange import Exchange
from snakeswan.ike.quick_mode import QuickMode
from snakeswan.ike.sa import IkeSa
from snakeswan.ike.transaction import Transaction

LINGER = 165.0  # seconds: 4 s doubling by 1.8, five retransmissions (strongSwan's default budget)
DONE_MIDS = 64  # message IDs of forgotten exchanges remembered per ISAKMP SA


def _ends(ex: Exchange) -> bool:
    return ex.done and isinstance(ex, QuickMode | Transaction)


def settle(sa: IkeSa, now: float) -> None:
    """After the engine worked on ``sa``: exchanges that just completed are forgotten now or
    scheduled to be (:attr:`IkeSa.prune_at`)."""
    for mid, ex in list(sa.exchanges.items()):
        if not _ends(ex) or ex.done_at is not None:
            continue
        ex.done_at = now
        if ex.retx.has_reply:  # our answer may be lost: the peer's copy gets it again meanwhile
            due = now + LINGER
            sa.prune_at = due if sa.prune_at is None else min(sa.prune_at, due)
        else:
            forget(sa, mid)


def prune(sa: IkeSa, now: float) -> None:
    """The exchanges whose time is up are forgotten (the SA's timer, at :attr:`IkeSa.prune_at`)."""
    later: float | None = None
    for mid, ex in list(sa.exchanges.items()):
        if not _ends(ex) or ex.done_at is None:
            continue
        due = ex.done_at + LINGER
        if due <= now:
            forget(sa, mid)
        else:
            later = due if later is None else min(later, due)
    sa.prune_at = later


def forget(sa: IkeSa, mid: int) -> None:
    del sa.exchanges[mid]
    sa.done_mids[mid] = None
    if len(sa.done_mids) > DONE_MIDS:
        del sa.done_mids[next(iter(sa.done_mids))]  # the oldest
