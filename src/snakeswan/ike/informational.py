"""Informational exchange (RFC 2408 4.8, RFC 2409 5.7): Notify and Delete, one message each way.

Once phase 1 has keys, informational messages are encrypted and start with
HASH(1) = prf(SKEYID_a, M-ID | N/D). Before that, only error notifies travel, in plaintext.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from snakeswan.crypto import keymat
from snakeswan.ike import crypt
from snakeswan.ike.context import Context
from snakeswan.ike.sa import IkeSa, IkeState
from snakeswan.wire.enums import ExchangeType, NotifyType, name_of
from snakeswan.wire.message import Message, encode_payloads, summary
from snakeswan.wire.payloads import DeletePayload, HashPayload, NotifyPayload, Payload

SEEN_MIDS = 256  # message IDs remembered per ISAKMP SA (bounded: a long-lived SA must not grow)


def new_message_id(sa: IkeSa, ctx: Context) -> int:
    """A fresh random message ID, none of the exchanges under way nor of the last few we used."""
    while True:
        mid = int.from_bytes(ctx.rng(4), "big")
        if mid and mid not in sa.exchanges and mid not in sa.seen_mids:
            sa.seen_mids[mid] = None
            if len(sa.seen_mids) > SEEN_MIDS:
                del sa.seen_mids[next(iter(sa.seen_mids))]  # the oldest
            return mid


def send(sa: IkeSa, ctx: Context, payloads: list[Payload], message_id: int | None = None) -> bytes:
    """Send an informational message: protected with HASH(1) when phase 1 keys exist. With
    ``message_id`` (the CONNECTED notify of a Quick Mode, ike/commit.py) under that ID, its IV
    continuing that exchange's chain. Returns the datagram."""
    mid = new_message_id(sa, ctx) if message_id is None else message_id
    protected = sa.crypto is not None and (sa.state is IkeState.ESTABLISHED or _phase1_authenticated(sa))
    rehash = None
    if protected:
        c = sa.crypto
        assert c is not None

        def rehash(rest: list[Payload]) -> bytes:  # prf(SKEYID_a, M-ID | N/D)
            return keymat.informational_hash(c.hash, c.keys.skeyid_a, mid, encode_payloads(rest)[1])

        payloads = [HashPayload(rehash(payloads)), *payloads]
    data = crypt.build(
        sa, ExchangeType.INFORMATIONAL, mid, payloads, encrypt=protected, hook=ctx.payload_hook, rehash=rehash
    )
    if protected:
        assert sa.crypto is not None
        sa.crypto.iv.forget(mid)
    ctx.send(data, sa.local, sa.remote)
    ctx.tracer.emit(
        "ike",
        "informational_sent",
        sa=sa.unique_id,
        protected=protected,
        payloads=[_describe(p) for p in payloads if not isinstance(p, HashPayload)],
        summary=summary(payloads),
    )
    return data


def _phase1_authenticated(sa: IkeSa) -> bool:
    return sa.phase1 is not None and sa.phase1.done


@dataclass(frozen=True, slots=True)
class InfoContent:
    authenticated: bool
    notifies: tuple[NotifyPayload, ...]
    deletes: tuple[DeletePayload, ...]


def parse(sa: IkeSa, msg: Message, ciphertext: bytes | None) -> InfoContent | None:
    """The notifies and deletes of a received informational message; None if it fails HASH(1)."""
    if ciphertext is not None:
        c = sa.crypto
        assert c is not None
        if not msg.payloads or not isinstance(msg.payloads[0].payload, HashPayload):
            return None
        rest = b"".join(rp.raw for rp in msg.payloads[1:])
        expected = keymat.informational_hash(c.hash, c.keys.skeyid_a, msg.header.message_id, rest)
        if not hmac.compare_digest(expected, msg.payloads[0].payload.data):
            return None
        c.iv.forget(msg.header.message_id)
    notifies = tuple(msg.all(NotifyPayload))
    deletes = tuple(msg.all(DeletePayload))
    return InfoContent(ciphertext is not None, notifies, deletes)


def _describe(p: Payload) -> str:
    if isinstance(p, NotifyPayload):
        return f"N({name_of(NotifyType, p.notify_type)})"
    if isinstance(p, DeletePayload):
        return f"D(protocol={p.protocol},spis={','.join(s.hex() for s in p.spis)})"
    return type(p).__name__
