"""IKE Aggressive Mode (RFC 2409 section 5), both roles, three messages:

    I -> R  AM1  HDR, SA, KE, Ni, IDii, VID*
    R -> I  AM2  HDR, SA, KE, Nr, IDir, HASH_R, NAT-D, NAT-D, VID*
    I -> R  AM3  HDR*, HASH_I, NAT-D, NAT-D    (from port 4500 if NAT)

Identities travel in the clear; the pre-shared key is looked up by the peer's ID. With signatures
(RFC 2409 5.1) AM2/AM3 carry ``[CERT,] SIG`` instead of the HASH; CERTREQs go in AM1/AM2. With
public key encryption (5.2, 5.3) AM1/AM2 carry nonce and ID encrypted (``ike.pubkey_enc``).

AM3 is sent encrypted (``HDR*``), as Libreswan and Cisco send it; strongSwan sends it in the
clear. Both forms are accepted. The form decides the IV Quick Mode starts from: after an
encrypted AM3 the last phase 1 CBC block is AM3's last ciphertext block, after a plaintext one it
is still the phase 1 IV hash(g^xi | g^xr); a peer that expects the other form cannot decrypt our
QM1 (Libreswan after a plaintext AM3).
"""

from __future__ import annotations

import enum

from snakeswan.config.model import ConnectionConfig
from snakeswan.crypto.dh import dh_group
from snakeswan.errors import PeerError
from snakeswan.ike import crypt, pubkey_enc
from snakeswan.ike.context import Context
from snakeswan.ike.exchange import Exchange
from snakeswan.ike.phase1 import Phase1, _identity_of, id_acceptable
from snakeswan.ike.proposals import check_ike_reply
from snakeswan.ike.sa import IkeSa
from snakeswan.wire.enums import ExchangeType, NotifyType, PayloadType
from snakeswan.wire.message import Message, Rule, check_payloads, summary
from snakeswan.wire.payloads import (
    HashPayload,
    IdPayload,
    KePayload,
    NoncePayload,
    NotifyPayload,
    Payload,
    Proposal,
    SaPayload,
)

P = PayloadType
_NATD: dict[int, Rule] = {P.NAT_D: Rule(0, 9), P.NAT_D_DRAFT: Rule(0, 9)}
_OTHERS = (P.VENDOR_ID, P.NOTIFICATION, P.CR, P.CERT)
AM1_RULES: dict[int, Rule] = {P.SA: Rule(1, 1), P.KE: Rule(1, 1), P.NONCE: Rule(1, 1), P.ID: Rule(1, 1)}
AM2_RULES: dict[int, Rule] = {
    P.SA: Rule(1, 1),
    P.KE: Rule(1, 1),
    P.NONCE: Rule(1, 1),
    P.ID: Rule(1, 1),
    P.HASH: Rule(0, 1),  # HASH (pre-shared key) or SIG (signatures): Phase1.verify_auth checks
    P.SIG: Rule(0, 1),
    **_NATD,
}
AM3_RULES: dict[int, Rule] = {P.HASH: Rule(0, 1), P.SIG: Rule(0, 1), **_NATD}


class AmState(enum.Enum):
    START = 0
    SENT_AM1 = 1
    SENT_AM2 = 2
    DONE = 3


class AggressiveMode(Exchange):
    name = "aggressive_mode"
    encrypt_am3 = True  # the initiator's AM3 goes encrypted (tests set False for the other form)

    def __init__(self, sa: IkeSa, ctx: Context) -> None:
        super().__init__(sa, ctx, 0)
        sa.aggressive = True
        self.p1 = Phase1(sa, ctx)
        self.state = AmState.START
        self._idii_b = b""
        self._candidates: list[ConnectionConfig] = []  # responder: for an AM1 that comes again

    def _send(
        self, payloads: list[Payload], now: float, *, expect_reply: bool, encrypt: bool = False
    ) -> None:
        data = crypt.build(
            self.sa, ExchangeType.AGGRESSIVE, 0, payloads, encrypt=encrypt, hook=self.ctx.payload_hook
        )
        self.send(data, now, expect_reply=expect_reply)
        label = "AM3" if self.state is AmState.DONE else self.state.name.removeprefix("SENT_")
        self.trace("sent", msg=label, payloads=summary(payloads), encrypted=encrypt)

    def start(self, now: float) -> None:
        """Initiator: AM1. Only transforms of the first proposal's DH group are offered (KE is sent now)."""
        assert self.sa.conn is not None
        offer = self.p1.make_offer(self.sa.conn, single_group=True)
        group = self.sa.conn.proposals[0].group
        our_id = self.p1.our_id()
        self._idii_b = our_id.encode_body()
        self.state = AmState.SENT_AM1
        ke, nonce = self.p1.ke_nonce(group)
        payloads = self._first([offer], ke, nonce, our_id, [*self.p1.certreqs(), *self.p1.our_vids()])
        self._send(payloads, now, expect_reply=True)

    def _first(
        self, pre: list[Payload], ke: Payload, nonce: Payload, our_id: IdPayload, rest: list[Payload]
    ) -> list[Payload]:
        """AM1/AM2 in the clear, or with nonce and ID encrypted (public key encryption)."""
        if self.p1.pke.method is None:
            return [*pre, ke, nonce, our_id, *rest]
        assert isinstance(nonce, NoncePayload)
        return self.p1.pke.wrap(pre, ke, nonce, our_id, rest)

    @property
    def answered(self) -> bool:
        return self.state not in (AmState.START, AmState.SENT_AM1, AmState.SENT_AM2)

    def expected(self) -> str:
        return {AmState.START: "AM1", AmState.SENT_AM1: "AM2", AmState.SENT_AM2: "AM3"}.get(self.state, "AM?")

    def handle(self, msg: Message, ciphertext: bytes | None, data: bytes, now: float) -> None:
        if self.sa.initiator and self.state is AmState.SENT_AM1:
            msg = self.p1.pke.unwrap(msg)  # unchanged unless public key encryption
            check_payloads(msg.types(), AM2_RULES, "Aggressive Mode AM2", allow_others=_OTHERS)
            self._i_am2(msg, now)
        elif not self.sa.initiator and self.state is AmState.SENT_AM2:
            check_payloads(msg.types(), AM3_RULES, "Aggressive Mode AM3", allow_others=_OTHERS)
            self._r_am3(msg, ciphertext, now)
        elif not self.sa.initiator and self.state is AmState.START and self._candidates:
            # AM1 again after we refused one that did not decrypt or authenticate (public key
            # encryption: a forgery must not keep the real AM1 out until the SA times out)
            self.p1.pke = pubkey_enc.PkeAuth(self.ctx, self.sa)
            self.respond(msg, data, self._candidates, now)
            return
        else:
            self.trace("unexpected_message", state=self.state.name)
            return
        self.retx.processed(data)

    def _i_am2(self, msg: Message, now: float) -> None:
        sa_payload, id_p = msg.first(SaPayload), msg.first(IdPayload)
        assert sa_payload is not None and id_p is not None and self.p1.offer is not None
        assert self.sa.conn is not None
        self.sa.choice = check_ike_reply(
            sa_payload, self.p1.offer, int(self.sa.conn.ike_lifetime), self.sa.conn.ike_life_kilobytes
        )
        self.p1.sai_b = self.p1.offer.encode_body()
        self.p1.note_vids(msg)
        self.p1.note_certreqs(msg)
        self.p1.take_ke_nonce(msg)
        self.p1.take_peer_id(id_p)
        self.p1.derive_keys()
        self.p1.verify_auth(msg, now)
        self.p1.check_natd(msg)
        natd = self.p1.natd()
        self.p1.float_to_nat_port()
        auth = self.p1.our_auth(self._idii_b)  # HASH_I, or [CERT,] SIG_I
        extra: list[Payload] = []
        if self.p1.initial_contact and self.encrypt_am3:  # only where it is protected, as in MM5
            extra.append(NotifyPayload(NotifyType.INITIAL_CONTACT, spi=self.sa.icookie + self.sa.rcookie))
        self.state = AmState.DONE
        self._send([*auth, *natd, *extra], now, expect_reply=False, encrypt=self.encrypt_am3)
        self.done = True
        self.p1.established(now)

    def respond(self, msg: Message, data: bytes, candidates: list[ConnectionConfig], now: float) -> None:
        """Responder: AM1 -> AM2. The connection is chosen by addresses and the peer's identity."""
        self._candidates = candidates
        rules = {**AM1_RULES, **pubkey_enc.AM1_EXTRA}  # HASH(1) only with public key encryption
        check_payloads(msg.types(), rules, "Aggressive Mode AM1", allow_others=_OTHERS)
        offered = msg.first(SaPayload)
        assert offered is not None
        msg, candidates = self.p1.pke.unwrap_am1(msg, offered, candidates)
        if not self.p1.pke.am1_decrypted and msg.first(HashPayload) is not None:
            check_payloads(msg.types(), AM1_RULES, "Aggressive Mode AM1", allow_others=_OTHERS)
        sa_raw, id_p, ke = msg.raw_of(SaPayload), msg.raw_of(IdPayload), msg.first(KePayload)
        assert offered is not None and sa_raw is not None and id_p is not None and ke is not None
        assert isinstance(id_p.payload, IdPayload)
        ident = _identity_of(id_p.payload)
        conns = [c for c in candidates if id_acceptable(c, self.sa.remote[0], ident)]
        choice = self.p1.choose(offered, conns)
        self.p1.pke.check_am_choice(choice)
        if self.p1.pke.method is not None:
            self.p1.take_peer_id(id_p.payload)  # and the initiator's key we encrypt Nr to
        self.sa.remote_id = ident
        self._idii_b = id_p.body
        self.p1.sai_b = sa_raw.body
        self.p1.note_vids(msg)
        self.p1.note_certreqs(msg)
        self.p1.take_ke_nonce(msg)
        if len(ke.data) != _public_size(choice.proposal.group):
            raise PeerError(NotifyType.INVALID_KEY_INFORMATION, "KE does not match the chosen DH group")
        our_ke, our_nonce = self.p1.ke_nonce()
        self.p1.derive_keys()
        our_id = self.p1.our_id()
        reply = SaPayload((Proposal(1, offered.proposals[0].protocol, b"", (choice.transform,)),))
        auth = self.p1.our_auth(our_id.encode_body())  # HASH_R, or [CERT,] SIG_R
        rest = [*auth, *self.p1.natd(), *self.p1.certreqs(), *self.p1.our_vids(mutual=True)]
        self.state = AmState.SENT_AM2
        # AM2 is not retransmitted to an initiator that has not answered yet (no reflector for
        # spoofed AM1s; a lost AM2 is resent when AM1 is)
        self._send(self._first([reply], our_ke, our_nonce, our_id, rest), now, expect_reply=False)
        self.retx.processed(data)

    def _r_am3(self, msg: Message, ciphertext: bytes | None, now: float) -> None:
        assert self.sa.crypto is not None
        self.p1.verify_auth(msg, now, self._idii_b)
        if ciphertext is not None:
            self.p1.keep_final(ciphertext)
            self.sa.crypto.iv.confirm(0, ciphertext)
        self.p1.check_natd(msg)
        if ciphertext is not None and any(
            n.notify_type == NotifyType.INITIAL_CONTACT for n in msg.all(NotifyPayload)
        ):
            self.p1.initial_contact = True  # the engine clears the peer's stale SAs once established
        self.state = AmState.DONE
        self.done = True
        self.retx.stop()
        self.p1.established(now)

    def late(self, data: bytes, now: float) -> bool:
        """Responder: another authenticated form of an encrypted AM3 (Phase1.final_variant)."""
        ciphertext = self.p1.final_variant(data, AM3_RULES, "Aggressive Mode AM3", now, self._idii_b)
        if ciphertext is None or self.sa.crypto is None:
            return False
        self.sa.crypto.iv.add_phase1_alternative(ciphertext[-self.sa.crypto.cipher.block_size :])
        return True


def _public_size(group: int) -> int:
    return dh_group(group).public_size
