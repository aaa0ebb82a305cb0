"""IKE Main Mode (identity protection exchange, RFC 2409 section 5), both roles, six messages:

I -> R  MM1  HDR, SA, VID*
R -> I  MM2  HDR, SA, VID*
I -> R  MM3  HDR, KE, Ni, NAT-D, NAT-D [, CERTREQ*]
R -> I  MM4  HDR, KE, Nr, NAT-D, NAT-D [, CERTREQ*]
I -> R  MM5  HDR*, IDii, HASH_I [, N(INITIAL-CONTACT)]   (encrypted; port 4500 if NAT)
R -> I  MM6  HDR*, IDir, HASH_R

With signatures (RFC 2409 5.1) MM5/MM6 carry ``[CERT,] SIG_I`` / ``[CERT,] SIG_R`` instead of the
HASH; CERTREQs go in MM3/MM4 (``ike.pubkey`` says when CERTs are sent). With public key encryption
(5.2, 5.3) the IDs travel encrypted in MM3/MM4 and MM5/MM6 carry only the HASH (``ike.pubkey_enc``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from snakeswan.config.model import ConnectionConfig
from snakeswan.errors import AuthenticationError, DecodeError, PeerError
from snakeswan.ike import crypt, pubkey_enc
from snakeswan.ike.context import Context
from snakeswan.ike.exchange import Exchange
from snakeswan.ike.phase1 import Phase1
from snakeswan.ike.proposals import IkeChoice, check_ike_reply
from snakeswan.ike.sa import IkeSa
from snakeswan.wire.enums import ExchangeType, NotifyType, PayloadType
from snakeswan.wire.message import Message, Rule, check_payloads, summary
from snakeswan.wire.payloads import IdPayload, NoncePayload, NotifyPayload, Payload, Proposal, SaPayload

P = PayloadType


class MmState(enum.Enum):
    START = 0
    SENT_MM1 = 1
    SENT_MM2 = 2
    SENT_MM3 = 3
    SENT_MM4 = 4
    SENT_MM5 = 5
    DONE = 6


_OTHERS = (P.VENDOR_ID, P.NOTIFICATION, P.CR, P.CERT)
# Which payloads each received message must carry (min, max), by the state we are in when it comes.
RULES: dict[MmState, dict[int, Rule]] = {
    MmState.START: {P.SA: Rule(1, 1)},  # MM1
    MmState.SENT_MM1: {P.SA: Rule(1, 1)},  # MM2
    MmState.SENT_MM2: {P.KE: Rule(1, 1), P.NONCE: Rule(1, 1), P.NAT_D: Rule(0, 9), P.NAT_D_DRAFT: Rule(0, 9)},
    MmState.SENT_MM3: {P.KE: Rule(1, 1), P.NONCE: Rule(1, 1), P.NAT_D: Rule(0, 9), P.NAT_D_DRAFT: Rule(0, 9)},
    # MM5, MM6: HASH (pre-shared key) or SIG (signatures); Phase1.verify_auth wants the right one
    MmState.SENT_MM4: {P.ID: Rule(1, 1), P.HASH: Rule(0, 1), P.SIG: Rule(0, 1)},
    MmState.SENT_MM5: {P.ID: Rule(1, 1), P.HASH: Rule(0, 1), P.SIG: Rule(0, 1)},
}

# With public key encryption (RFC 2409 5.2, 5.3), the same for MM3..MM6 once decrypted
PKE_RULES: dict[MmState, dict[int, Rule]] = {
    state: pubkey_enc.MM_RULES[n]
    for state, n in (
        (MmState.SENT_MM2, 3),
        (MmState.SENT_MM3, 4),
        (MmState.SENT_MM4, 5),
        (MmState.SENT_MM5, 6),
    )
}


class MainMode(Exchange):
    name = "main_mode"

    def __init__(self, sa: IkeSa, ctx: Context) -> None:
        super().__init__(sa, ctx, 0)
        self.p1 = Phase1(sa, ctx)
        self.state = MmState.START
        self._mm6: list[Payload] = []  # responder: what MM6 carried (sent again by late())
        self._mm6_in: tuple[bytes, bytes] | None = None  # initiator: MM6's IV and payload bytes
        self._offered: SaPayload | None = None  # responder: MM1's offer and the connections it
        self._candidates: list[ConnectionConfig] = []  # could be for (pubkey-enc: HASH(1) picks)
        self._handlers: dict[tuple[bool, MmState], Callable[[Message, bytes | None, float], None]] = {
            (True, MmState.SENT_MM1): self._i_mm2,
            (True, MmState.SENT_MM3): self._i_mm4,
            (True, MmState.SENT_MM5): self._i_mm6,
            (False, MmState.SENT_MM2): self._r_mm3,
            (False, MmState.SENT_MM4): self._r_mm5,
        }

    def _send(
        self, payloads: list[Payload], now: float, *, encrypt: bool = False, expect_reply: bool = True
    ) -> None:
        data = crypt.build(
            self.sa,
            ExchangeType.IDENTITY_PROTECTION,
            0,
            payloads,
            encrypt=encrypt,
            hook=self.ctx.payload_hook,
        )
        self.send(data, now, expect_reply=expect_reply)
        label = "MM6" if self.state is MmState.DONE else self.state.name.removeprefix("SENT_")
        self.trace("sent", msg=label, payloads=summary(payloads), encrypted=encrypt)

    def start(self, now: float) -> None:
        """Initiator: MM1."""
        assert self.sa.conn is not None
        offer = self.p1.make_offer(self.sa.conn)
        self.state = MmState.SENT_MM1
        self._send([offer, *self.p1.our_vids()], now)

    @property
    def answered(self) -> bool:
        return self.state not in (MmState.START, MmState.SENT_MM1, MmState.SENT_MM2)

    def expected(self) -> str:
        n = {MmState.START: 1, MmState.SENT_MM1: 2, MmState.SENT_MM2: 3, MmState.SENT_MM3: 4}.get(self.state)
        return f"MM{n}" if n else {MmState.SENT_MM4: "MM5", MmState.SENT_MM5: "MM6"}.get(self.state, "MM?")

    def handle(self, msg: Message, ciphertext: bytes | None, data: bytes, now: float) -> None:
        handler = self._handlers.get((self.sa.initiator, self.state))
        if handler is None:
            self.trace("unexpected_message", state=self.state.name)
            return
        rules = RULES[self.state]
        before = (self.sa.conn, self.sa.choice)
        try:
            if self.p1.pke.method is not None:
                if self.state is MmState.SENT_MM2 and self._offered is not None:
                    self.p1.pke.reselect(msg, self._candidates, self._choose)  # the key HASH(1) names
                if self.state in (MmState.SENT_MM2, MmState.SENT_MM3):
                    msg = self.p1.pke.unwrap(msg)  # MM3/MM4: nonce, ID (revised: all after the nonce)
                rules = PKE_RULES.get(self.state, rules)
            check_payloads(msg.types(), rules, f"Main Mode in state {self.state.name}", allow_others=_OTHERS)
            handler(msg, ciphertext, now)
        except (DecodeError, PeerError):
            if self.state is MmState.SENT_MM2:  # a refused MM3 leaves the connection as it was
                self.sa.conn, self.sa.choice = before
            raise
        self.retx.processed(data)

    # ---- initiator ----------------------------------------------------------------------------

    def _i_mm2(self, msg: Message, ciphertext: bytes | None, now: float) -> None:
        sa_payload = msg.first(SaPayload)
        assert sa_payload is not None and self.p1.offer is not None and self.sa.conn is not None
        self.sa.choice = check_ike_reply(
            sa_payload, self.p1.offer, int(self.sa.conn.ike_lifetime), self.sa.conn.ike_life_kilobytes
        )
        self.p1.sai_b = self.p1.offer.encode_body()
        self.p1.note_vids(msg)
        self.p1.note_certreqs(msg)
        self.state = MmState.SENT_MM3
        self._send(self._first([], [*self.p1.natd(), *self.p1.certreqs()]), now)

    def _first(self, pre: list[Payload], rest: list[Payload]) -> list[Payload]:
        """MM3/MM4: KE, nonce and the rest; with public key encryption also our ID, encrypted."""
        ke, nonce = self.p1.ke_nonce()
        if self.p1.pke.method is None:
            return [*pre, ke, nonce, *rest]
        assert isinstance(nonce, NoncePayload)
        return self.p1.pke.wrap(pre, ke, nonce, self.p1.our_id(), rest)

    def _final(self) -> list[Payload]:
        """MM5/MM6: our ID and HASH/SIG; with public key encryption the HASH over the ID sent before."""
        if self.p1.pke.method is not None:
            return self.p1.our_auth(self.p1.pke.our_id_body)
        our_id = self.p1.our_id()
        return [our_id, *self.p1.our_auth(our_id.encode_body())]

    def _take_id(self, msg: Message) -> None:
        id_p = msg.first(IdPayload)
        assert id_p is not None
        self.p1.take_peer_id(id_p)

    def _i_mm4(self, msg: Message, ciphertext: bytes | None, now: float) -> None:
        self.p1.take_ke_nonce(msg)
        if self.p1.pke.method is not None:
            self._take_id(msg)
        self.p1.check_natd(msg)
        self.p1.note_certreqs(msg)
        self.p1.derive_keys()
        self.p1.float_to_nat_port()
        payloads = self._final()
        if self.p1.initial_contact:
            payloads.append(NotifyPayload(NotifyType.INITIAL_CONTACT, spi=self.sa.icookie + self.sa.rcookie))
        self.state = MmState.SENT_MM5
        self._send(payloads, now, encrypt=True)

    def _i_mm6(self, msg: Message, ciphertext: bytes | None, now: float) -> None:
        self._require_encrypted(ciphertext)
        assert self.sa.crypto is not None and ciphertext is not None
        if self.p1.pke.method is None:
            self._take_id(msg)
        self.p1.verify_auth(msg, now)
        self._mm6_in = (self.sa.crypto.iv.iv_for(0), b"".join(rp.raw for rp in msg.payloads))
        self.sa.crypto.iv.confirm(0, ciphertext)
        self.state = MmState.DONE
        self.done = True
        self.retx.stop()
        self.p1.established(now)

    # ---- responder ----------------------------------------------------------------------------

    def respond(self, msg: Message, data: bytes, candidates: list[ConnectionConfig], now: float) -> None:
        """Responder: MM1 -> MM2 (the engine made this exchange for a new SA)."""
        check_payloads(msg.types(), RULES[MmState.START], "Main Mode MM1", allow_others=_OTHERS)
        offered = msg.first(SaPayload)
        sa_raw = msg.raw_of(SaPayload)
        assert offered is not None and sa_raw is not None
        choice = self.p1.choose(offered, candidates)
        self._offered, self._candidates = offered, candidates
        self.p1.sai_b = sa_raw.body
        self.p1.note_vids(msg)
        self.p1.note_certreqs(msg)
        reply = SaPayload((Proposal(1, offered.proposals[0].protocol, b"", (choice.transform,)),))
        self.state = MmState.SENT_MM2
        # not retransmitted: the initiator has not shown its address is real (a spoofed MM1 must
        # not make us a reflector); a lost MM2 is resent when MM1 is
        self._send([reply, *self.p1.our_vids(mutual=True)], now, expect_reply=False)
        self.retx.processed(data)

    def _r_mm3(self, msg: Message, ciphertext: bytes | None, now: float) -> None:
        self.p1.take_ke_nonce(msg)
        if self.p1.pke.method is not None:
            self._take_id(msg)  # and the initiator's key we encrypt Nr to
        self.p1.check_natd(msg)
        self.p1.note_certreqs(msg)
        payloads = self._first([], [*self.p1.natd(), *self.p1.certreqs()])
        self.p1.derive_keys()
        self.state = MmState.SENT_MM4
        self._send(payloads, now)

    def _r_mm5(self, msg: Message, ciphertext: bytes | None, now: float) -> None:
        self._require_encrypted(ciphertext)
        assert self.sa.crypto is not None and ciphertext is not None
        if self.p1.pke.method is None:
            self._take_id(msg)
        self.p1.verify_auth(msg, now)
        self.p1.keep_final(ciphertext)
        self.sa.crypto.iv.confirm(0, ciphertext)
        self.p1.note_certreqs(msg)
        for n in msg.all(NotifyPayload):
            if n.notify_type == NotifyType.INITIAL_CONTACT:
                self.p1.initial_contact = True
        self.state = MmState.DONE
        self._mm6 = self._final()
        self._send(self._mm6, now, encrypt=True, expect_reply=False)
        self.done = True
        self.p1.established(now)

    def late(self, data: bytes, now: float) -> bool:
        """Responder: another authenticated form of MM5 (Phase1.final_variant). Our MM6, chained
        from the first form, may not decrypt at the initiator: it goes again, chained from this
        one, and its last block is offered to the IV chain as an alternative end of phase 1.
        Initiator: another form of MM6 (:meth:`_late_mm6`)."""
        if self.sa.initiator:
            return self._late_mm6(now, data)
        c = self.sa.crypto
        variant = self.p1.final_variant(data, RULES[MmState.SENT_MM4], "Main Mode MM5", now)
        if variant is None or c is None or not self._mm6:
            return False
        bs = c.cipher.block_size
        mm6 = crypt.build(
            self.sa, ExchangeType.IDENTITY_PROTECTION, 0, self._mm6, encrypt=True, iv=variant[-bs:]
        )
        c.iv.add_phase1_alternative(mm6[-bs:])
        self.ctx.send(mm6, self.sa.local, self.sa.remote)
        self.trace("sent", msg="MM6", payloads=summary(self._mm6), encrypted=True, again=True)
        return True

    def _late_mm6(self, now: float, data: bytes) -> bool:
        """Initiator: a message that decrypts with MM6's IV into exactly the MM6 we accepted is
        that MM6 in another form (a forged copy, altered in its unauthenticated padding, may have
        come first and set our chain). Its last block becomes an alternative end of phase 1 (the
        responder's next exchanges decrypt under it), and our unanswered first phase 2 messages
        go again chained from it; the responder's answer settles which end is right."""
        c = self.sa.crypto
        if self._mm6_in is None or c is None:
            return False
        iv, plain = self._mm6_in
        try:
            msg, ciphertext = crypt.decrypt_with(self.sa, data, iv)
        except DecodeError:
            return False
        bs = c.cipher.block_size
        base = ciphertext[-bs:]
        if b"".join(rp.raw for rp in msg.payloads) != plain or base == c.iv.iv_for(0):
            return False
        c.iv.add_phase1_alternative(base)
        self.trace("final_message_variant", msg="MM6")
        for ex in list(self.sa.exchanges.values()):
            ex.rechain(base, now)
        return True

    def _choose(self, conn: ConnectionConfig) -> IkeChoice | None:
        """MM1's offer chosen again for ``conn`` (it becomes the SA's), or None if it refuses it."""
        assert self._offered is not None
        try:
            return self.p1.choose(self._offered, [conn])
        except PeerError:
            return None

    @staticmethod
    def _require_encrypted(ciphertext: bytes | None) -> None:
        if ciphertext is None:
            raise AuthenticationError(NotifyType.PAYLOAD_MALFORMED, "MM5/MM6 must be encrypted")
