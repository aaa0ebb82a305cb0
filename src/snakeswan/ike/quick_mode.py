"""IKE Quick Mode (RFC 2409 section 5.5), both roles, three encrypted messages:

    I -> R  QM1  HDR*, HASH(1), SA, Ni [, KE] [, IDci, IDcr] [, NAT-OAi, NAT-OAr]
    R -> I  QM2  HDR*, HASH(2), SA, Nr [, KE] [, IDci, IDcr] [, N(RESPONDER-LIFETIME)] [, NAT-OA..]
    I -> R  QM3  HDR*, HASH(3)

Each side picks the SPI of its inbound SA. The initiator installs its SAs when it sends QM3, the
responder when QM3 arrives; with the commit bit (ike/commit.py) the initiator waits for the
responder's CONNECTED notify.
"""

from __future__ import annotations

import enum
import hmac
import ipaddress
from collections.abc import Sequence
from dataclasses import replace

from snakeswan.config.model import ChildConfig, ChildProposal, ConnectionConfig
from snakeswan.config.traffic import TrafficSelector
from snakeswan.crypto import keymat
from snakeswan.crypto.algorithms import ah_auth_algorithm, auth_key_size, esp_encryption_key_size
from snakeswan.crypto.dh import DhKeyPair
from snakeswan.errors import AuthenticationError, CryptoError, LocalError, PeerError
from snakeswan.ike import commit, crypt, mismatch, natt, peers, selectors
from snakeswan.ike.bundle import (
    BundleChoice,
    bundle_reply,
    bundle_sa_payload,
    check_bundle_reply,
    select_bundle,
)
from snakeswan.ike.context import Context
from snakeswan.ike.events import AhBundle, ChildSaEstablished, ChildSaInfo, SaKeys
from snakeswan.ike.exchange import Exchange
from snakeswan.ike.proposals import (
    ChildChoice,
    apply_responder_lifetime,
    check_child_reply,
    child_sa_payload,
    responder_lifetime,
    select_child,
)
from snakeswan.ike.qm_forms import QmForms
from snakeswan.ike.remote_access import dynamic_address, family_of
from snakeswan.ike.sa import IkeSa
from snakeswan.wire.enums import ExchangeType, NotifyType, PayloadType, ProtocolId
from snakeswan.wire.message import Message, Rule, check_payloads, encode_payloads, summary
from snakeswan.wire.payloads import (
    HashPayload,
    IdPayload,
    KePayload,
    NatOaPayload,
    NoncePayload,
    NotifyPayload,
    Payload,
    Proposal,
    SaPayload,
)

P = PayloadType
# 160 bits, as Cisco's own: vpnc (the open Cisco VPN client), answering a gateway's rekey, writes its
# 20-byte nonce over the start of the initiator's and sends that payload back at the initiator's
# length, keying with its 20 bytes only; any longer Ni and the keys differ (the ICV fails)
NONCE_SIZE = 20
_COMMON: dict[int, Rule] = {
    P.HASH: Rule(1, 1),
    P.SA: Rule(1, 1),
    P.NONCE: Rule(1, 1),
    P.KE: Rule(0, 1),
    P.ID: Rule(0, 2),
}
QM_RULES: dict[int, Rule] = {**_COMMON, P.NAT_OA: Rule(0, 2), P.NAT_OA_DRAFT: Rule(0, 2)}
QM3_RULES: dict[int, Rule] = {P.HASH: Rule(1, 1)}
_OTHERS = (P.NOTIFICATION, P.VENDOR_ID)


class QmState(enum.Enum):
    START = 0
    SENT_QM1 = 1
    SENT_QM2 = 2
    DONE = 3
    WAIT_CONNECTED = 4  # initiator: QM3 sent, the commit bit set, CONNECTED not yet received


class QuickMode(Exchange):
    name = "quick_mode"

    def __init__(
        self,
        sa: IkeSa,
        ctx: Context,
        message_id: int,
        child: ChildConfig | None = None,
        *,
        rekey_of: int | None = None,
        fallback: int = 0,
        ts_pair: int = 0,
    ) -> None:
        super().__init__(sa, ctx, message_id)
        self.rekey_of = rekey_of  # inbound SPI of the SA this Quick Mode replaces
        # which of the child's PFS groups this offer uses (0: the first proposal's; RFC 2409 5.5:
        # one KE per offer, so a refused group is tried again with the next, "without PFS" too)
        self.fallback = fallback
        self.ts_pair = ts_pair  # which local_ts x remote_ts pair of the child (selectors.selector_pairs)
        self.child = child
        # the connection the child belongs to (the ISAKMP SA's own, or one sharing it)
        self.conn = peers.owner_of(ctx.config.connections, sa.conn, child) if child and sa.conn else sa.conn
        self.state = QmState.START
        self.ni = b""
        self.nr = b""
        self.dh: DhKeyPair | None = None
        self.gqm: bytes | None = None
        self.spi_in = 0
        self.choice: ChildChoice | None = None
        self.offered: Sequence[ChildProposal] = ()  # initiator: the proposals of our QM1
        self.ah_spi_in = 0  # an AH+ESP bundle: our inbound AH SPI (spi_in is the ESP one)
        self.ah_choice: ChildChoice | None = None
        self.local_ts: TrafficSelector | None = None
        self.remote_ts: TrafficSelector | None = None
        self.seconds: int | None = None
        self.kilobytes: int | None = None
        self.initiator = child is not None  # who started this Quick Mode (either end of the IKE SA may)
        self.nat_oa: tuple[str, str] | None = None  # (peer's original address, ours as it saw it)
        # the commit bit in QM1/QM2 (RFC 2408 4.6, ike/commit.py): ours on request, the peer's always
        self.commit = self.conn is not None and self.conn.commit_bit
        self.forms = QmForms()  # QM1 (responder) or QM2 (initiator) seen in another form: qm_forms.py
        self._qm1: tuple[list[Payload], int] | None = None  # what our QM1 held, to chain it again

    # ---- helpers ------------------------------------------------------------------------------

    def next_fallback(self) -> int | None:
        """The offer to try after the peer refused this one (the next PFS group), or None."""
        if not self.initiator or self.child is None:
            return None
        nxt = self.fallback + 1
        return nxt if nxt < len(self._offers()) else None

    def _hash(self, which: int, rest: bytes) -> bytes:
        c = self.sa.crypto
        assert c is not None
        if which == 1:  # HASH(1) = prf(SKEYID_a, M-ID | SA | Ni [ | KE ] [ | IDci | IDcr ])
            return keymat.qm_hash1(c.hash, c.keys.skeyid_a, self.message_id, rest)
        if which == 2:  # HASH(2) = prf(SKEYID_a, M-ID | Ni_b | SA | Nr [ | KE ] [ | IDci | IDcr ])
            return keymat.qm_hash2(c.hash, c.keys.skeyid_a, self.message_id, self.ni, rest)
        return keymat.qm_hash3(c.hash, c.keys.skeyid_a, self.message_id, self.ni, self.nr)

    def _send(self, rest: list[Payload], which: int, now: float, *, expect_reply: bool) -> None:
        rest_bytes = encode_payloads(rest)[1] if rest else b""
        payloads: list[Payload] = [HashPayload(self._hash(which, rest_bytes)), *rest]
        flags = commit.FLAGS if self.commit and which != 3 else 0
        data = crypt.build(
            self.sa,
            ExchangeType.QUICK_MODE,
            self.message_id,
            payloads,
            encrypt=True,
            hook=self.ctx.payload_hook,
            rehash=lambda r: self._hash(which, encode_payloads(r)[1] if r else b""),
            flags=flags,
        )
        if which in (2, 3):
            self.forms.replied(payloads, flags)
        elif which == 1:
            self._qm1 = (payloads, flags)
        self.send(data, now, expect_reply=expect_reply)
        label = f"QM{which}"
        self.trace("sent", msg=label, mid=self.message_id, payloads=summary(payloads))

    def _verify(self, msg: Message, ciphertext: bytes | None, which: int) -> None:
        """HASH must come first and match; only then does the IV chain move."""
        if ciphertext is None:
            raise AuthenticationError(NotifyType.PAYLOAD_MALFORMED, "Quick Mode message not encrypted")
        if not msg.payloads or not isinstance(msg.payloads[0].payload, HashPayload):
            raise AuthenticationError(
                NotifyType.INVALID_HASH_INFORMATION, "Quick Mode message must start with HASH"
            )
        rest = b"".join(rp.raw for rp in msg.payloads[1:])
        expected = self._hash(which, rest)
        if not hmac.compare_digest(expected, msg.payloads[0].payload.data):
            raise AuthenticationError(NotifyType.INVALID_HASH_INFORMATION, f"HASH({which}) mismatch")
        assert self.sa.crypto is not None
        if which in (1, 2):  # the message our answer chains from (QM1 for a responder, QM2 for us)
            self.forms.accepted(self.sa.crypto.iv.iv_for(self.message_id), msg.payloads[0].raw + rest)
        self.sa.crypto.iv.confirm(self.message_id, ciphertext)

    def _proposals(self) -> Sequence[ChildProposal]:
        """The child's proposals (ESP, else AH)."""
        assert self.child is not None
        return self.child.esp_proposals or self.child.ah_proposals

    def _offers(self) -> list[Sequence[ChildProposal]]:
        """The offers to try in turn (``fallback`` indexes them; RFC 2409 5.5: one KE per offer):
        the child's proposals of each PFS group. A rekey we start first offers the transform in
        use alone, while it is configured (vpnc answers a rekey of one transform only); refused,
        the full list follows. Not for AH+ESP bundles, whose AH goes by the same groups."""
        configured = self._proposals()
        offers: list[Sequence[ChildProposal]] = [
            [p for p in configured if p.pfs_group == g] for g in pfs_groups(configured)
        ]
        assert self.child is not None
        if self.rekey_of is None or is_bundle(self.child):
            return offers
        old = next((c for c in self.sa.children if c.spi_in == self.rekey_of), None)
        if old is None:
            return offers
        in_use = (old.protocol, old.transform_id, old.key_length, old.auth, old.pfs_group)
        same = [
            p for p in configured if (p.protocol, p.transform_id, p.key_length, p.auth, p.pfs_group) == in_use
        ]
        return [same[:1], *offers] if same else offers

    def _resolve(self, ts: Sequence[TrafficSelector], addr: str) -> list[TrafficSelector]:
        ip = ipaddress.ip_address(addr)
        return [t.resolve(ip) for t in ts]

    def _lifetimes(self, child: ChildConfig) -> tuple[int | None, int | None]:
        seconds = int(child.life_time) if child.life_time else None
        kilobytes = child.life_bytes // 1024 if child.life_bytes else None
        return seconds, kilobytes

    def _take_ke(self, msg: Message, group: int | None) -> None:
        ke = msg.first(KePayload)
        if group is None:
            if ke is not None:
                raise PeerError(NotifyType.INVALID_PAYLOAD_TYPE, "KE payload without PFS group")
            return
        if ke is None:
            raise PeerError(NotifyType.INVALID_KEY_INFORMATION, "PFS negotiated but KE payload missing")
        if self.dh is None:
            self.dh = self.ctx.dh_keypair(group)
        try:
            self.gqm = self.dh.shared_secret(ke.data)
        except CryptoError as e:
            raise PeerError(NotifyType.INVALID_KEY_INFORMATION, f"PFS KE rejected: {e}") from e

    # ---- initiator ----------------------------------------------------------------------------

    def start(self, now: float) -> None:
        sa, child = self.sa, self.child
        assert child is not None
        self.spi_in = self.ctx.spis.allocate()
        mode_attr = natt.encap_mode(child.mode, sa.natt_flavour, sa.encap)
        self.seconds, self.kilobytes = self._lifetimes(child)
        same_group = self.offered = self._offers()[self.fallback]
        group = same_group[0].pfs_group
        if is_bundle(child):
            self._no_nat_for_bundle()
            self.ah_spi_in = self.ctx.spis.allocate()
            ah_group = [p for p in child.ah_proposals if p.pfs_group == group]
            sa_payload = bundle_sa_payload(
                ah_group, same_group, self.ah_spi_in.to_bytes(4, "big"), self.spi_in.to_bytes(4, "big"),
                mode_attr, self.seconds, self.kilobytes,
            )  # fmt: skip
        else:
            sa_payload = child_sa_payload(
                same_group, self.spi_in.to_bytes(4, "big"), mode_attr, self.seconds, self.kilobytes
            )
        self.ni = self.ctx.rng(NONCE_SIZE)
        rest: list[Payload] = [sa_payload, NoncePayload(self.ni)]
        if group is not None:
            self.dh = self.ctx.dh_keypair(group)
            rest.append(KePayload(self.dh.public))
        self.local_ts, self.remote_ts = self._proposed(child)
        rest += [_id_payload(self.local_ts), _id_payload(self.remote_ts)]
        if sa.encap and child.mode == "transport":
            rest += [natt.nat_oa(sa.local[0], sa.natt_flavour), natt.nat_oa(sa.remote[0], sa.natt_flavour)]
        self.state = QmState.SENT_QM1
        self._send(rest, 1, now, expect_reply=True)

    def _pairs(self, child: ChildConfig) -> list[tuple[TrafficSelector, TrafficSelector]]:
        local = ipaddress.ip_address(dynamic_address(self.sa, True, family_of(child.remote_ts)))
        remote = ipaddress.ip_address(dynamic_address(self.sa, False, family_of(child.local_ts)))
        return selectors.resolved_pairs(child, local, remote)

    def _proposed(self, child: ChildConfig) -> tuple[TrafficSelector, TrafficSelector]:
        """The IDs to propose: those of the SA we rekey, else the child's pair ``ts_pair``."""
        old = next((c for c in self.sa.children if c.spi_in == self.rekey_of), None)
        if old is not None:
            self.ts_pair = old.ts_pair
            return TrafficSelector.from_text(old.local_ts), TrafficSelector.from_text(old.remote_ts)
        return self._pairs(child)[self.ts_pair]

    def rechain(self, base: bytes, now: float) -> None:
        """Our QM1, unanswered, goes again chained from another possible end of phase 1 (the
        initiator took a forged form of MM6 first: the responder cannot decrypt the first QM1)."""
        c = self.sa.crypto
        if not self.initiator or self.state is not QmState.SENT_QM1 or self._qm1 is None or c is None:
            return
        payloads, flags = self._qm1
        bs = c.cipher.block_size
        iv = keymat.phase2_iv(c.hash, base, self.message_id, bs)
        data = crypt.build(
            self.sa, ExchangeType.QUICK_MODE, self.message_id, payloads, encrypt=True, iv=iv, flags=flags
        )
        c.iv.add_alternative(self.message_id, data[-bs:], base)
        self.trace("sent", msg="QM1", mid=self.message_id, again="chained from another end of phase 1")
        self.send(data, now, expect_reply=True)

    def other_form(self, data: bytes, now: float) -> bool:
        """The peer's QM1 (we responded) or QM2 (we initiated) in another form: answered again,
        chained from it (ike/qm_forms.py)."""
        if self.initiator:
            waiting = self.state in (QmState.DONE, QmState.WAIT_CONNECTED)
        else:
            waiting = self.state is QmState.SENT_QM2
        return waiting and self.forms.answer(self, data, now)

    def expected(self) -> str:
        names = {QmState.START: "QM1", QmState.SENT_QM1: "QM2", QmState.SENT_QM2: "QM3"}
        return names.get(self.state, "CONNECTED" if self.state is QmState.WAIT_CONNECTED else "QM?")

    def handle(self, msg: Message, ciphertext: bytes | None, data: bytes, now: float) -> None:
        if self.initiator and self.state is QmState.SENT_QM1:
            check_payloads(msg.types(), QM_RULES, "Quick Mode QM2", allow_others=_OTHERS)
            self._i_qm2(msg, ciphertext, now)
        elif not self.initiator and self.state is QmState.SENT_QM2:
            check_payloads(msg.types(), QM3_RULES, "Quick Mode QM3", allow_others=_OTHERS)
            self._verify(msg, ciphertext, 3)
            self.state = QmState.DONE
            self.retx.stop()
            self._established(initiator=False)
            if self.commit and self.choice is not None:  # our SAs are in: tell the initiator
                commit.send_connected(self, self.choice.proposal.protocol, self.spi_in, now)
        else:
            self.trace("unexpected_message", state=self.state.name)
            return
        self.retx.processed(data)

    def _i_qm2(self, msg: Message, ciphertext: bytes | None, now: float) -> None:
        self._verify(msg, ciphertext, 2)
        nonce = msg.first(NoncePayload)
        assert nonce is not None
        self.nr = nonce.data
        sa_payload = msg.first(SaPayload)
        assert sa_payload is not None
        if self.ah_spi_in:
            assert self.child is not None
            pair = check_bundle_reply(
                sa_payload, self.child.ah_proposals, self.child.esp_proposals, self.seconds, self.kilobytes
            )
            self.choice, self.ah_choice = pair.esp, pair.ah
        else:
            self.choice = check_child_reply(sa_payload, self.offered, self.seconds, self.kilobytes)
        for n in msg.all(NotifyPayload):
            if n.notify_type == NotifyType.RESPONDER_LIFETIME:
                self.seconds, self.kilobytes = apply_responder_lifetime(n.data, self.seconds, self.kilobytes)
                self.trace("responder_lifetime", seconds=self.seconds, kilobytes=self.kilobytes)
        self._take_ke(msg, self.choice.proposal.pfs_group)
        self._take_nat_oa(msg, initiator_sent=False)
        self._take_reply_ids(msg)
        if commit.requested(msg.header):  # the responder will send CONNECTED: wait for it
            self.state = QmState.WAIT_CONNECTED
            self._send([], 3, now, expect_reply=True)
            self.trace("waiting_connected", mid=self.message_id)
            return
        if self.commit:
            self.trace("commit_bit_ignored", mid=self.message_id)  # the responder did not echo it
        self.state = QmState.DONE
        self._send([], 3, now, expect_reply=False)
        self._established(initiator=True)

    def connected(self, now: float) -> bool:
        """The responder's CONNECTED notify: our SAs may be used now. False if not waiting."""
        if self.state is not QmState.WAIT_CONNECTED:
            return False
        self.state = QmState.DONE
        self.retx.stop()
        self.trace("connected_received", mid=self.message_id)
        self._established(initiator=True)
        return True

    def _take_reply_ids(self, msg: Message) -> None:
        """QM2's IDci/IDcr: ours, or narrowed by the responder (strongSwan does so): accepted when
        each lies inside what we proposed, and then they are the SA's selectors."""
        ids = msg.all(IdPayload)
        if len(ids) == 1:
            raise PeerError(NotifyType.INVALID_ID_INFORMATION, "QM2 carries one ID payload, not two")
        if not ids:
            return
        assert self.local_ts is not None and self.remote_ts is not None
        got = (selectors.id_to_ts(*_id_fields(ids[0])), selectors.id_to_ts(*_id_fields(ids[1])))
        if got == (self.local_ts, self.remote_ts):
            return
        if not (self.local_ts.contains(got[0]) and self.remote_ts.contains(got[1])):
            raise PeerError(
                NotifyType.INVALID_ID_INFORMATION,
                f"responder answered {got[0]} === {got[1]}, not inside the proposed "
                f"{self.local_ts} === {self.remote_ts}",
            )
        self.trace(
            "proxy_ids_narrowed",
            proposed=f"{self.local_ts} === {self.remote_ts}",
            answered=f"{got[0]} === {got[1]}",
        )
        self.local_ts, self.remote_ts = got

    # ---- responder ----------------------------------------------------------------------------

    def respond(self, msg: Message, ciphertext: bytes | None, data: bytes, now: float) -> None:
        """QM1 -> QM2: check HASH(1), find the child whose policy covers the proxy IDs, pick a proposal."""
        sa = self.sa
        assert sa.conn is not None
        check_payloads(msg.types(), QM_RULES, "Quick Mode QM1", allow_others=_OTHERS)
        nonce, sa_payload = msg.first(NoncePayload), msg.first(SaPayload)
        assert nonce is not None and sa_payload is not None
        self._verify(msg, ciphertext, 1)
        self.ni = nonce.data
        id_raws = [rp for rp in msg.payloads if isinstance(rp.payload, IdPayload)]
        if len(id_raws) == 1:
            raise PeerError(NotifyType.INVALID_ID_INFORMATION, "Quick Mode needs both IDci and IDcr, or none")
        if id_raws:
            their_ci = selectors.id_to_ts(*_id_fields(id_raws[0].payload))  # type: ignore[arg-type]
            their_cr = selectors.id_to_ts(*_id_fields(id_raws[1].payload))  # type: ignore[arg-type]
        else:
            their_ci = TrafficSelector.host(ipaddress.ip_address(sa.remote[0]))
            their_cr = TrafficSelector.host(ipaddress.ip_address(sa.local[0]))
        their_ci, their_cr = self._natted_transport_ids(msg, their_ci, their_cr)
        self.conn, self.child, choice, self.local_ts, self.remote_ts = self._select(
            sa_payload, their_ci, their_cr
        )
        if isinstance(choice, BundleChoice):
            self._no_nat_for_bundle()
            self.choice, self.ah_choice = choice.esp, choice.ah
            self.ah_spi_in = self.ctx.spis.allocate()
        else:
            self.choice = choice
        narrowed = (self.local_ts, self.remote_ts) != (their_cr, their_ci)
        if narrowed:
            self.trace(
                "proxy_ids_narrowed",
                proposed=f"{their_ci} === {their_cr}",
                answered=f"{self.remote_ts} === {self.local_ts}",
            )
        self._take_ke(msg, self.choice.proposal.pfs_group)
        self.spi_in = self.ctx.spis.allocate()
        self.nr = self.ctx.rng(NONCE_SIZE)
        if self.ah_choice is not None:
            pair = BundleChoice(self.ah_choice, self.choice)
            reply = bundle_reply(pair, self.ah_spi_in.to_bytes(4, "big"), self.spi_in.to_bytes(4, "big"))
        else:
            reply = SaPayload(
                (
                    Proposal(
                        self.choice.number,
                        self.choice.proposal.protocol,
                        self.spi_in.to_bytes(4, "big"),
                        (self.choice.transform,),
                    ),
                )
            )
        rest: list[Payload] = [reply, NoncePayload(self.nr)]
        if self.dh is not None:
            rest.append(KePayload(self.dh.public))
        if narrowed:  # IDci, IDcr: the initiator's side, then ours, as narrowed
            rest += [_id_payload(self.remote_ts), _id_payload(self.local_ts)]
        else:
            rest += [rp.payload for rp in id_raws]
        self._take_nat_oa(msg, initiator_sent=True)
        mode, _ = natt.decode_encap_mode(self.choice.mode_attr) or (self.child.mode, False)
        if sa.encap and mode == "transport":  # RFC 3947 5.2: our original addresses, in QM2 too
            rest += [natt.nat_oa(sa.remote[0], sa.natt_flavour), natt.nat_oa(sa.local[0], sa.natt_flavour)]
        if self.choice.lowered:
            rest.append(
                responder_lifetime(
                    self.choice.proposal.protocol,
                    self.spi_in.to_bytes(4, "big"),
                    self.choice.life_seconds,
                    self.choice.life_kilobytes,
                )
            )
        self.seconds, self.kilobytes = self.choice.life_seconds, self.choice.life_kilobytes
        self.commit = commit.responder_sets(self, msg.header)
        self.state = QmState.SENT_QM2
        self._send(rest, 2, now, expect_reply=True)
        self.retx.processed(data)

    def _natted_transport_ids(
        self, msg: Message, their_ci: TrafficSelector, their_cr: TrafficSelector
    ) -> tuple[TrafficSelector, TrafficSelector]:
        """Transport mode through a NAT (the initiator sent NAT-OA, RFC 3947 5.2): its IDs name
        the addresses before the NAT; the policy is between the IKE addresses we see, so host IDs
        are replaced by those (as strongSwan does), ports and protocol kept. The IDs go back in
        QM2 as received."""
        sa = self.sa
        if not sa.encap or not msg.all(NatOaPayload):
            return their_ci, their_cr
        remote, local = ipaddress.ip_address(sa.remote[0]), ipaddress.ip_address(sa.local[0])
        ci = replace(their_ci, start=remote, end=remote) if their_ci.is_host() else their_ci
        cr = replace(their_cr, start=local, end=local) if their_cr.is_host() else their_cr
        if (ci, cr) != (their_ci, their_cr):
            self.trace("natted_transport_ids", received=f"{their_ci} === {their_cr}", using=f"{ci} === {cr}")
        return ci, cr

    def _select(
        self, offered: SaPayload, their_ci: TrafficSelector, their_cr: TrafficSelector
    ) -> tuple[ConnectionConfig, ChildConfig, ChildChoice | BundleChoice, TrafficSelector, TrafficSelector]:
        """The child, of the ISAKMP SA's connection or of one sharing it, whose policy covers the
        proxy IDs and which accepts a proposal, with the (local, remote) selectors to use. Children
        containing the proxy IDs come first (configuration order); then, as strongSwan's responder
        does, children that only overlap them: the selectors are narrowed to the intersection and
        QM2 carries those (the initiator accepts them if they lie inside what it proposed)."""
        sa = self.sa
        assert sa.conn is not None
        last: PeerError | None = None
        seen: list[mismatch.ChildSelectors] = []
        narrowed: list[tuple[ConnectionConfig, ChildConfig, TrafficSelector, TrafficSelector]] = []
        fitting: list[tuple[ConnectionConfig, ChildConfig, TrafficSelector, TrafficSelector]] = []
        conns = peers.sharing(
            sa.conn, self.ctx.config.connections, sa.local[0], sa.remote[0], sa.local_id, sa.remote_id
        )
        for conn, child in ((c, ch) for c in conns for ch in c.children):
            ours_local = self._resolve(child.local_ts, dynamic_address(sa, True, family_of(child.remote_ts)))
            ours_remote = self._resolve(
                child.remote_ts, dynamic_address(sa, False, family_of(child.local_ts))
            )
            fits = (
                selectors.ts_acceptable(ours_remote, their_ci),
                selectors.ts_acceptable(ours_local, their_cr),
            )
            seen.append((child.name, ours_remote, ours_local, *fits))
            if all(fits):
                fitting.append((conn, child, their_cr, their_ci))
                continue
            local_ts = selectors.narrow(ours_local, their_cr)
            remote_ts = selectors.narrow(ours_remote, their_ci)
            if local_ts is not None and remote_ts is not None:
                narrowed.append((conn, child, local_ts, remote_ts))
        for conn, child, local_ts, remote_ts in fitting + narrowed:
            modes = [natt.encap_mode(child.mode, None, False)]
            if sa.natt_flavour is not None:
                modes += [natt.encap_mode(child.mode, f, True) for f in ("rfc", "draft")]
            seconds, kilobytes = self._lifetimes(child)
            proposals = child.esp_proposals or child.ah_proposals
            try:
                choice: ChildChoice | BundleChoice = (
                    select_bundle(offered, child.ah_proposals, child.esp_proposals, modes, seconds, kilobytes)
                    if is_bundle(child)
                    else select_child(offered, proposals, modes, seconds, kilobytes)
                )
            except PeerError as e:
                last = e
                continue
            return conn, child, choice, local_ts, remote_ts
        if last is not None:
            raise last
        raise PeerError(
            NotifyType.INVALID_ID_INFORMATION,
            f"no child of {sa.name} covers {their_ci} === {their_cr}: "
            + mismatch.explain_selectors(their_ci, their_cr, seen),
        )

    # ---- both ---------------------------------------------------------------------------------

    def _take_nat_oa(self, msg: Message, *, initiator_sent: bool) -> None:
        """RFC 3947 5.2: NAT-OAi and NAT-OAr, the initiator's and the responder's original
        addresses as the sender saw them. In transport mode behind a NAT the peer's TCP/UDP
        checksums were computed with (its own address, ours as it saw it): the data plane fixes
        them up with that pair."""
        oas = [p for p in msg.all(NatOaPayload) if len(p.address) in (4, 16)]
        if len(oas) != 2:
            return
        oa_i, oa_r = (str(ipaddress.ip_address(p.address)) for p in oas)
        self.nat_oa = (oa_i, oa_r) if initiator_sent else (oa_r, oa_i)
        self.trace("nat_oa", peer=self.nat_oa[0], ours_as_seen=self.nat_oa[1])

    def _no_nat_for_bundle(self) -> None:
        if self.sa.encap:
            raise LocalError("an AH+ESP bundle cannot be UDP-encapsulated (AH covers the outer IP header)")

    def _keys(self, spi: int, choice: ChildChoice | None = None) -> SaKeys:
        """KEYMAT = prf(SKEYID_d, [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b), expanded; enc key first."""
        c, choice = self.sa.crypto, choice or self.choice
        assert c is not None and choice is not None
        p = choice.proposal
        if p.protocol == ProtocolId.IPSEC_ESP:
            enc_len = esp_encryption_key_size(p.transform_id, p.key_length)
            auth = p.auth
        else:
            enc_len, auth = 0, p.auth if p.auth is not None else ah_auth_algorithm(p.transform_id)
        int_len = auth_key_size(auth) if auth is not None else 0
        km = keymat.keymat(
            c.hash,
            c.keys.skeyid_d,
            p.protocol,
            spi.to_bytes(4, "big"),
            self.ni,
            self.nr,
            enc_len + int_len,
            self.gqm,
        )
        self.ctx.tracer.secret(  # only with an explicit opt-in (Tracer(log_keys=True))
            "ike", "keymat", sa=self.sa.unique_id, spi=f"{spi:08x}", gqm=self.gqm or b"", keymat=km,
            enc_key=km[:enc_len], auth_key=km[enc_len:],
        )  # fmt: skip
        return SaKeys(km[:enc_len], km[enc_len:])

    def _agreed(self) -> tuple[TrafficSelector, TrafficSelector]:
        assert self.local_ts is not None and self.remote_ts is not None
        return self.local_ts, self.remote_ts

    def _ah_bundle(self) -> AhBundle | None:
        ah = self.ah_choice
        if ah is None:
            return None
        spi_out = int.from_bytes(ah.peer_spi, "big")
        return AhBundle(
            transform_id=ah.proposal.transform_id,
            auth=ah.proposal.auth,
            spi_in=self.ah_spi_in,
            spi_out=spi_out,
            keys_in=self._keys(self.ah_spi_in, ah),
            keys_out=self._keys(spi_out, ah),
        )

    def _established(self, *, initiator: bool) -> None:
        sa, choice, child, conn = self.sa, self.choice, self.child, self.conn
        assert choice is not None and child is not None and conn is not None
        self.done = True
        spi_out = int.from_bytes(choice.peer_spi, "big")
        mode, _ = natt.decode_encap_mode(choice.mode_attr) or (child.mode, False)
        replaces = self.rekey_of
        if replaces is None:  # the peer rekeys one of our children: same child, same selectors
            ts = (str(self.local_ts), str(self.remote_ts))
            same = [
                c
                for c in sa.children
                if (c.conn, c.child) == (conn.name, child.name) and (c.local_ts, c.remote_ts) == ts
            ]
            newest = same[-1] if same else None
            replaces = newest.spi_in if newest else None
            if (
                newest
                and newest.initiator
                and newest.replaces is not None
                and any(c.spi_in == newest.replaces for c in same)
            ):
                replaces = newest.replaces  # our own rekey of that SA just finished: a collision
        info = ChildSaInfo(
            conn=conn.name,
            child=child.name,
            ike_sa=sa.unique_id,
            protocol=choice.proposal.protocol,
            transform_id=choice.proposal.transform_id,
            key_length=choice.proposal.key_length,
            auth=choice.proposal.auth,
            spi_in=self.spi_in,
            spi_out=spi_out,
            keys_in=self._keys(self.spi_in),
            keys_out=self._keys(spi_out),
            mode=mode,
            encap=sa.encap,
            local=sa.local,
            remote=sa.remote,
            local_ts=str(self.local_ts),
            remote_ts=str(self.remote_ts),
            life_seconds=self.seconds,
            life_kilobytes=self.kilobytes,
            pfs_group=choice.proposal.pfs_group,
            initiator=initiator,
            replaces=replaces,
            nat_oa=self.nat_oa if mode == "transport" and sa.encap else None,
            lowered=not initiator and choice.lowered,
            ah=self._ah_bundle(),
            ts_pair=self.ts_pair if initiator else selectors.pair_index(self._pairs(child), *self._agreed()),
        )
        self.dh = self.gqm = None  # PFS secrets are not kept once KEYMAT exists
        sa.children.append(info)
        self.ctx.emit(ChildSaEstablished(info))
        self.trace(
            "child_sa_established", child=child.name, spi_in=f"{self.spi_in:08x}", spi_out=f"{spi_out:08x}"
        )


def is_bundle(child: ChildConfig) -> bool:
    """A child with both AH and ESP proposals negotiates an AH+ESP bundle."""
    return bool(child.esp_proposals and child.ah_proposals)


def _id_payload(ts: TrafficSelector) -> IdPayload:
    id_type, protocol, port, data = selectors.ts_to_id(ts)
    return IdPayload(id_type, data, protocol, port)


def _id_fields(p: IdPayload) -> tuple[int, int, int, bytes]:
    return p.id_type, p.protocol, p.port, p.data


def pfs_groups(proposals: Sequence[ChildProposal]) -> list[int | None]:
    """The PFS groups of a child's proposals in preference order, each once (None: no PFS)."""
    return list(dict.fromkeys(p.pfs_group for p in proposals))
