"""Payload impairments: a named payload of a named message omitted, duplicated or corrupted before
the message is encoded and encrypted (``omit:QM1.KE``, ``duplicate:MM3.NONCE``,
``corrupt:MM5.ID``; ``bad-hash:QM1`` and ``bad-sig:MM5`` are ``corrupt`` of the HASH and SIG).

The hook runs in :func:`snakeswan.ike.crypt.build` (``Context.payload_hook``), so the peer decrypts
the message fine and meets the damage itself: a missing or doubled payload, a KE of the wrong
size, an ID that does not match, a HASH or SIG that does not verify. Where a HASH at the head of the
message covers the others (Quick Mode, Transaction, Informational) and the damage is not to the HASH
itself, the HASH is computed again over the damaged payloads (``rehash``): the message stays
authentic and only the payload rule is tested. Phase 1's HASH_I/R and SIG cover the ID payload's
body, not the chain, so corrupting an ID there also breaks the authentication, as it would.

The damage is in the message as built: its retransmissions carry it too. Pure functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from snakeswan.wire.enums import PayloadType
from snakeswan.wire.payloads import HashPayload, Payload, UnknownPayload

#: computes the HASH payload's value again over the payloads after it
Rehash = Callable[[list[Payload]], bytes]

ACTIONS = ("omit", "duplicate", "corrupt")
SHORTCUTS = {"bad-hash": "HASH", "bad-sig": "SIG"}  # -> corrupt:MSG.<payload>

NAMES: dict[str, tuple[int, ...]] = {
    "SA": (PayloadType.SA,),
    "KE": (PayloadType.KE,),
    "ID": (PayloadType.ID,),
    "CERT": (PayloadType.CERT,),
    "CR": (PayloadType.CR,),
    "HASH": (PayloadType.HASH,),
    "SIG": (PayloadType.SIG,),
    "NONCE": (PayloadType.NONCE,),
    "N": (PayloadType.NOTIFICATION,),
    "D": (PayloadType.DELETE,),
    "VID": (PayloadType.VENDOR_ID,),
    "ATTR": (PayloadType.ATTRIBUTE,),
    "NAT-D": (PayloadType.NAT_D, PayloadType.NAT_D_DRAFT),
    "NAT-OA": (PayloadType.NAT_OA, PayloadType.NAT_OA_DRAFT),
}


class MissingPayload(LookupError):
    """The message has no payload of that name (the rule is not used up)."""


def corrupted(p: Payload) -> Payload:
    """``p`` with one byte in the middle of its body flipped (an empty body gets one byte)."""
    body = p.encode_body()
    if not body:
        return UnknownPayload(p.payload_type, b"\x5a")
    i = len(body) // 2
    return UnknownPayload(p.payload_type, body[:i] + bytes([body[i] ^ 0x5A]) + body[i + 1 :])


def impair(action: str, name: str, payloads: Sequence[Payload], rehash: Rehash | None) -> list[Payload]:
    """``payloads`` with ``action`` done to the payload(s) called ``name`` (``omit``: all of
    them; ``duplicate``/``corrupt``: the first). ``MissingPayload`` if there is none."""
    types = NAMES[name]
    at = [i for i, p in enumerate(payloads) if p.payload_type in types]
    if not at:
        raise MissingPayload(name)
    out = list(payloads)
    if action == "omit":
        out = [p for i, p in enumerate(out) if i not in at]
    elif action == "duplicate":
        out.insert(at[0] + 1, out[at[0]])
    else:
        out[at[0]] = corrupted(out[at[0]])
    if rehash is not None and name != "HASH" and out and isinstance(out[0], HashPayload):
        out[0] = HashPayload(rehash(out[1:]))  # still authentic: only the payload rule is tested
    return out
