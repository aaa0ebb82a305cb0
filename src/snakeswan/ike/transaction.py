"""The Transaction exchange (ISAKMP exchange type 6, draft-dukes-ike-mode-cfg-02 3.2): one
request and its reply under one message ID, encrypted under the ISAKMP SA:

    HDR*, HASH, ATTR(REQUEST | SET)      ->
                                         <-  HDR*, HASH, ATTR(REPLY | ACK)

    HASH = prf(SKEYID_a, M-ID | ATTR)

XAUTH and Mode Config both ride on it; what a request means and what to answer is decided by
:mod:`snakeswan.ike.remote_access` (through the callbacks given here), not by this module.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from snakeswan.crypto import keymat
from snakeswan.errors import AuthenticationError, PeerError
from snakeswan.ike import crypt
from snakeswan.ike.context import Context
from snakeswan.ike.exchange import Exchange
from snakeswan.ike.sa import IkeSa
from snakeswan.wire.enums import ExchangeType, NotifyType, PayloadType
from snakeswan.wire.message import Message, Rule, check_payloads, encode_payloads, summary
from snakeswan.wire.payloads import AttributePayload, HashPayload, Payload

P = PayloadType
REQUEST, REPLY, SET, ACK = 1, 2, 3, 4
CFG_NAMES = {REQUEST: "REQUEST", REPLY: "REPLY", SET: "SET", ACK: "ACK"}
_ANSWER = {REQUEST: REPLY, SET: ACK}
RULES: dict[int, Rule] = {P.HASH: Rule(1, 1), P.ATTRIBUTE: Rule(1, 1)}


class Deferred(Exception):
    """Raised by an :data:`Answerer` that cannot answer *yet* (a Mode Config request before XAUTH
    is over): the message is dropped without a Notify and its IV forgotten, so the peer's
    retransmission is processed afresh once we can answer it."""


# What we answer a peer's REQUEST/SET with (None: nothing, the request is refused).
Answerer = Callable[[AttributePayload, float], AttributePayload | None]
# What happens with the peer's REPLY/ACK to ours.
OnReply = Callable[[AttributePayload, float], None]


class Transaction(Exchange):
    name = "transaction"

    def __init__(self, sa: IkeSa, ctx: Context, message_id: int, label: str) -> None:
        super().__init__(sa, ctx, message_id)
        self.label = label  # "XAUTH", "ModeCfg": what the trace calls it
        self.request: AttributePayload | None = None
        self.on_reply: OnReply | None = None

    def expected(self) -> str:
        if self.request is None:
            return f"{self.label} request"
        return f"{self.label} {CFG_NAMES.get(_ANSWER.get(self.request.message_type, 0), '?')}"

    def _hash(self, attr_bytes: bytes) -> bytes:
        c = self.sa.crypto
        assert c is not None
        return keymat.transaction_hash(c.hash, c.keys.skeyid_a, self.message_id, attr_bytes)

    def _send(self, attr: AttributePayload, now: float, *, expect_reply: bool) -> None:
        payloads: list[Payload] = [HashPayload(self._hash(encode_payloads([attr])[1])), attr]
        data = crypt.build(
            self.sa,
            ExchangeType.TRANSACTION,
            self.message_id,
            payloads,
            encrypt=True,
            hook=self.ctx.payload_hook,
            rehash=lambda r: self._hash(encode_payloads(r)[1]),
        )
        self.send(data, now, expect_reply=expect_reply)
        self.trace(
            "sent",
            msg=f"{self.label} {CFG_NAMES.get(attr.message_type, attr.message_type)}",
            mid=self.message_id,
            payloads=summary(payloads),
            attributes=[a.type for a in attr.attributes],
        )

    def _open(self, msg: Message, ciphertext: bytes | None) -> AttributePayload:
        """Check HASH over the Attribute payload as it came; only then does the IV chain move."""
        if ciphertext is None:
            raise AuthenticationError(NotifyType.PAYLOAD_MALFORMED, "Transaction message not encrypted")
        check_payloads(msg.types(), RULES, f"{self.label} Transaction", allow_others=())
        first = msg.payloads[0].payload
        if not isinstance(first, HashPayload):
            raise AuthenticationError(NotifyType.INVALID_HASH_INFORMATION, "Transaction must start with HASH")
        rest = b"".join(rp.raw for rp in msg.payloads[1:])
        if not hmac.compare_digest(self._hash(rest), first.data):
            raise AuthenticationError(NotifyType.INVALID_HASH_INFORMATION, "Transaction HASH mismatch")
        assert self.sa.crypto is not None
        self.sa.crypto.iv.confirm(self.message_id, ciphertext)
        attr = msg.first(AttributePayload)
        assert attr is not None
        return attr

    # ---- we ask -------------------------------------------------------------------------------

    def start(self, attr: AttributePayload, on_reply: OnReply, now: float) -> None:
        self.request, self.on_reply = attr, on_reply
        self._send(attr, now, expect_reply=True)

    def handle(self, msg: Message, ciphertext: bytes | None, data: bytes, now: float) -> None:
        """The peer's REPLY/ACK to our REQUEST/SET."""
        attr = self._open(msg, ciphertext)
        assert self.request is not None and self.on_reply is not None
        want = _ANSWER.get(self.request.message_type)
        if attr.message_type != want:
            raise PeerError(
                NotifyType.INVALID_PAYLOAD_TYPE,
                f"{self.label}: expected {CFG_NAMES.get(want or 0)}, got "
                f"{CFG_NAMES.get(attr.message_type, attr.message_type)}",
            )
        if attr.identifier != self.request.identifier:
            # strongSwan's XAUTH REPLY carries identifier 0; the message ID and HASH bind the answer
            self.trace("identifier_mismatch", sent=self.request.identifier, got=attr.identifier)
        self._received(attr)
        self.done = True
        self.retx.stop()
        self.retx.processed(data)
        self.on_reply(attr, now)
        self._forget_iv()

    # ---- the peer asks ------------------------------------------------------------------------

    def respond(
        self, msg: Message, ciphertext: bytes | None, data: bytes, answer: Answerer, now: float
    ) -> None:
        """The peer's REQUEST/SET: our REPLY/ACK, as ``answer`` decides."""
        attr = self._open(msg, ciphertext)
        if attr.message_type not in _ANSWER:
            raise PeerError(
                NotifyType.INVALID_PAYLOAD_TYPE,
                f"{self.label}: a new Transaction must be REQUEST or SET, got "
                f"{CFG_NAMES.get(attr.message_type, attr.message_type)}",
            )
        self.request = attr
        self._received(attr)
        try:
            reply = answer(attr, now)
        except Deferred:
            self._forget_iv()
            raise
        if reply is None:
            raise PeerError(NotifyType.ATTRIBUTES_NOT_SUPPORTED, f"{self.label}: request refused")
        self.done = True
        self._send(reply, now, expect_reply=False)
        self.retx.processed(data)

    def _received(self, attr: AttributePayload) -> None:
        self.trace(
            "attributes",
            msg=f"{self.label} {CFG_NAMES.get(attr.message_type, attr.message_type)}",
            identifier=attr.identifier,
            attributes=[a.type for a in attr.attributes],  # types only: values may be passwords
        )

    def _forget_iv(self) -> None:
        if self.sa.crypto is not None:
            self.sa.crypto.iv.forget(self.message_id)
