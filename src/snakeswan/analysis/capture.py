"""Offline analysis of a capture's IKEv1 (``snakeswan analyze``).

The datagrams (:mod:`snakeswan.analysis.pcapread`) are grouped by initiator cookie into IKE SAs
and named as the engine names them (MM1..MM6, AM1..AM3, QM1..QM3 per message ID, INFO,
Transaction). Encrypted bodies are decrypted when the key log (Wireshark's IKEv1 decryption
table: ``<icookie hex>,<encryption key hex>``, as ``snakeswan daemon --keylog`` writes it) has the
SA's key: the cipher and hash come from the SA payloads in the clear, the IVs from the KE
payloads (RFC 2409 appendix B), the chain as the engine's (:class:`IvChain`). With ``--psk`` the
phase 1 HASH_I/HASH_R are checked (SKEYID = prf(PSK, Ni_b | Nr_b) needs no DH secret). The
Quick Mode, Informational and Transaction hashes need SKEYID_a, hence g^xy, which a capture never
holds: given the DH shared secrets from a gateway's debug log (``--dh-secrets``,
:mod:`snakeswan.analysis.secrets`), the keys are derived (with the PSK, or as for signatures)
and every encrypted message is decrypted and every HASH checked without a key log.

Problems found: retransmissions and unanswered messages, payloads missing or out of place, bodies
that do not decrypt with the logged key, padding longer than a block, error notifies, HASHes
that do not match the given PSK.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

from snakeswan.analysis.pcapread import IkeDatagram
from snakeswan.analysis.secrets import DerivedKeys, derive
from snakeswan.config.proposals import format_ike_proposal
from snakeswan.crypto.algorithms import HashAlg, ike_cipher, ike_hash
from snakeswan.crypto.ivchain import IvChain
from snakeswan.crypto.keymat import (
    hash_i,
    hash_r,
    informational_hash,
    phase1_iv,
    qm_hash1,
    qm_hash2,
    qm_hash3,
    skeyid_psk,
    transaction_hash,
)
from snakeswan.errors import CryptoError, DecodeError
from snakeswan.ike.fragments import Reassembler
from snakeswan.ike.phase1 import base_method
from snakeswan.ike.proposals import parse_ike_transform
from snakeswan.wire.enums import AuthMethod, ExchangeType, NotifyType, PayloadType, name_of
from snakeswan.wire.message import HEADER_SIZE, Header, RawPayload, decode_header, decode_payloads, summary
from snakeswan.wire.payloads import HashPayload, IdPayload, KePayload, NoncePayload, NotifyPayload, SaPayload

# what each message must carry (any one of a tuple will do)
_REQUIRED: dict[str, tuple[tuple[int, ...], ...]] = {
    "MM1": ((PayloadType.SA,),),
    "MM2": ((PayloadType.SA,),),
    "MM3": ((PayloadType.KE,), (PayloadType.NONCE,)),
    "MM4": ((PayloadType.KE,), (PayloadType.NONCE,)),
    "MM5": ((PayloadType.ID,), (PayloadType.HASH, PayloadType.SIG)),
    "MM6": ((PayloadType.ID,), (PayloadType.HASH, PayloadType.SIG)),
    "AM1": ((PayloadType.SA,), (PayloadType.KE,), (PayloadType.NONCE,), (PayloadType.ID,)),
    "AM2": (
        (PayloadType.SA,),
        (PayloadType.KE,),
        (PayloadType.NONCE,),
        (PayloadType.ID,),
        (PayloadType.HASH, PayloadType.SIG),
    ),
    "AM3": ((PayloadType.HASH, PayloadType.SIG),),
    "QM1": ((PayloadType.SA,), (PayloadType.NONCE,)),
    "QM2": ((PayloadType.SA,), (PayloadType.NONCE,)),
}
# public key encryption (RFC 2409 5.2, 5.3): the IDs went (encrypted) in MM3/MM4, MM5/MM6 carry a HASH
_REQUIRED_PKE = {**_REQUIRED, "MM5": ((PayloadType.HASH,),), "MM6": ((PayloadType.HASH,),)}
_REQUIRED_PKE.update({k: (*_REQUIRED[k], (PayloadType.ID,)) for k in ("MM3", "MM4")})
_PKE = (AuthMethod.RSA_ENCRYPTION, AuthMethod.RSA_REVISED_ENCRYPTION)
_HASH_FIRST = ("QM1", "QM2", "QM3", "INFO", "Transaction")
_FINAL = {"main": "MM6", "aggressive": "AM3"}


def parse_keylog(text: str) -> dict[bytes, bytes]:
    """IKEv1 lines of a key log: initiator cookie -> encryption key (other lines are ignored)."""
    out: dict[bytes, bytes] = {}
    for line in text.splitlines():
        parts = [p.strip().strip('"') for p in line.split(",")]
        if len(parts) == 2 and len(parts[0]) == 16:
            try:
                out[bytes.fromhex(parts[0])] = bytes.fromhex(parts[1].removeprefix("0x"))
            except ValueError:
                continue
    return out


@dataclass
class Analysed:
    """One ISAKMP message of the capture."""

    frame: int
    time: float
    sa: int
    label: str
    from_initiator: bool
    message_id: int
    payloads: str = ""
    encrypted: bool = False
    decrypted: bool = False
    retransmission: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass
class Problem:
    sa: int
    frame: int | None
    text: str

    def __str__(self) -> str:
        where = f" frame {self.frame}" if self.frame is not None else ""
        return f"IKE SA #{self.sa}{where}: {self.text}"


@dataclass
class _Sa:
    number: int
    icookie: bytes
    initiator: tuple[str, int]
    responder: tuple[str, int]
    rcookie: bytes = b""
    mode: str | None = None
    sai_b: bytes = b""
    choice: str = ""
    hash: HashAlg | None = None
    auth: int | None = None
    cipher_args: tuple[int, int | None] | None = None
    gxi: bytes = b""
    gxr: bytes = b""
    ni: bytes = b""
    nr: bytes = b""
    idi_b: bytes = b""
    iv: IvChain | None = None
    iv_unknown: bool = False  # revised mode: the phase 1 IV hashes KE payloads that went encrypted
    seen: dict[bytes, Analysed] = field(default_factory=dict)
    sent: Counter[tuple[bool, int]] = field(default_factory=Counter)  # (from initiator, mid) -> unique msgs
    qm_initiator: dict[int, bool] = field(default_factory=dict)
    last: dict[int, Analysed] = field(default_factory=dict)  # per message ID: the latest message
    repeats: Counter[int] = field(default_factory=Counter)  # frame of the original -> copies seen
    derived: DerivedKeys | None = None  # from a DH secret (--dh-secrets)
    qm_nonces: dict[tuple[int, bool], bytes] = field(default_factory=dict)  # (mid, from i) -> Ni_b/Nr_b


@dataclass
class Report:
    messages: list[Analysed] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    sas: list[_Sa] = field(default_factory=list)


class Analyzer:
    def __init__(
        self,
        keys: dict[bytes, bytes] | None = None,
        psk: bytes | None = None,
        dh_secrets: list[bytes] | None = None,
    ) -> None:
        self.keys = keys or {}
        self.psk = psk
        self.dh_secrets = dh_secrets or []
        self.report = Report()
        self._by_cookie: dict[bytes, _Sa] = {}
        self._fragments = Reassembler()  # IKE fragments (payload 132), joined as the engine does

    def feed(self, d: IkeDatagram) -> None:
        try:
            header = decode_header(d.data)
            if header.next_payload == PayloadType.FRAGMENT:
                whole = self._fragments.add(d.data, d.src, d.time)
                if whole is None:
                    return  # the message is analysed once its last fragment is in
                d = replace(d, data=whole)
                header = decode_header(whole)
        except DecodeError as e:
            self.report.problems.append(Problem(0, d.number, f"not an ISAKMP message: {e}"))
            return
        sa = self._sa_for(header, d)
        from_i = d.src == sa.initiator or (d.src[0] == sa.initiator[0] and d.dst != sa.initiator)
        if header.rcookie != bytes(8):
            sa.rcookie = header.rcookie
        msg = Analysed(
            d.number, d.time, sa.number, "?", from_i, header.message_id, encrypted=header.encrypted
        )
        original = sa.seen.get(d.data)
        if original is not None:  # the same bytes again: a retransmission
            msg.label, msg.payloads, msg.retransmission = original.label, original.payloads, True
            msg.decrypted = original.decrypted
            sa.repeats[original.frame] += 1
            self.report.messages.append(msg)
            answer = sa.last.get(header.message_id)
            if answer is not None and answer.from_initiator != from_i and sa.repeats[original.frame] == 1:
                side = "initiator" if from_i else "responder"
                self._problem(msg, f"{msg.label} sent again after {answer.label} (frame {answer.frame}): "
                                   f"{answer.label} did not reach the {side}?")  # fmt: skip
            return
        sa.seen[d.data] = msg
        msg.label = self._label(sa, header, from_i)
        payloads = self._payloads(sa, header, d, msg)
        if payloads is not None:
            msg.payloads = summary(rp.payload for rp in payloads)
            self._check(sa, msg, payloads)
            self._learn(sa, msg, payloads)
        sa.last[header.message_id] = msg
        self.report.messages.append(msg)

    # ---- grouping and naming ------------------------------------------------------------------

    def _sa_for(self, header: Header, d: IkeDatagram) -> _Sa:
        sa = self._by_cookie.get(header.icookie)
        if sa is None:
            sa = _Sa(len(self.report.sas) + 1, header.icookie, d.src, d.dst)
            self._by_cookie[header.icookie] = sa
            self.report.sas.append(sa)
        return sa

    def _label(self, sa: _Sa, header: Header, from_i: bool) -> str:
        ex, mid = header.exchange, header.message_id
        if ex in (ExchangeType.IDENTITY_PROTECTION, ExchangeType.AGGRESSIVE) and mid == 0:
            sa.mode = "main" if ex == ExchangeType.IDENTITY_PROTECTION else "aggressive"
            sa.sent[(from_i, 0)] += 1
            k = sa.sent[(from_i, 0)]
            if sa.mode == "main":
                return f"MM{2 * k - (1 if from_i else 0)}"
            return f"AM{2 * k - (1 if from_i else 0)}"
        if ex == ExchangeType.QUICK_MODE:
            starter = sa.qm_initiator.setdefault(mid, from_i)
            sa.sent[(from_i, mid)] += 1
            k = sa.sent[(from_i, mid)]
            return f"QM{2 * k - (1 if from_i == starter else 0)}"
        if ex == ExchangeType.INFORMATIONAL:
            return "INFO"
        if ex == ExchangeType.TRANSACTION:
            return "Transaction"
        return name_of(ExchangeType, ex)

    # ---- decryption ---------------------------------------------------------------------------

    def _payloads(
        self, sa: _Sa, header: Header, d: IkeDatagram, msg: Analysed
    ) -> tuple[RawPayload, ...] | None:
        try:
            if not header.encrypted:
                return decode_payloads(header.next_payload, d.data, HEADER_SIZE)
        except DecodeError as e:
            self._problem(msg, f"{msg.label} does not parse: {e}")
            return None
        chain = self._iv_chain(sa)
        if chain is None:
            known = sa.icookie in self.keys or self.dh_secrets
            msg.notes.append("encrypted; keys incomplete" if known else "encrypted; no key")
            return None
        body = d.data[HEADER_SIZE:]
        if sa.iv_unknown and header.message_id == 0:
            msg.notes.append("revised mode: its IV hashes the KE payloads, which went encrypted")
            chain.confirm(0, body)  # the last phase 1 block is all Quick Mode's IV needs
            return None
        key = self.keys.get(sa.icookie) or self._key_from_secrets(sa, chain, header, body, msg)
        if key is None:
            return None
        source = "the logged key" if sa.icookie in self.keys else "the key from the DH secret"
        try:
            plain, payloads = self._decrypt(sa, chain, key, header, body)
        except (CryptoError, DecodeError) as e:
            self._problem(
                msg, f"{msg.label} does not decrypt with {source} ({e}): wrong key or a lost message"
            )
            return None
        chain.confirm(header.message_id, body)
        msg.decrypted = True
        padding = len(plain) - sum(len(rp.raw) for rp in payloads)
        assert sa.cipher_args is not None
        if (
            padding > ike_cipher(*sa.cipher_args).block_size
        ):  # strongSwan pads 1..block size bytes; more is odd
            self._problem(msg, f"{msg.label}: {padding} bytes of padding, more than a cipher block")
        return payloads

    def _decrypt(
        self, sa: _Sa, chain: IvChain, key: bytes, header: Header, body: bytes
    ) -> tuple[bytes, tuple[RawPayload, ...]]:
        assert sa.cipher_args is not None
        plain = ike_cipher(*sa.cipher_args).decrypt(key, chain.iv_for(header.message_id), body)
        payloads = decode_payloads(header.next_payload, plain, 0, allow_trailing=True, where="decrypted body")
        return plain, payloads

    def _key_from_secrets(
        self, sa: _Sa, chain: IvChain, header: Header, body: bytes, msg: Analysed
    ) -> bytes | None:
        """The encryption key from the DH secret that decrypts this SA's messages (found once)."""
        if sa.derived is not None:
            return sa.derived.enc_key
        assert sa.hash is not None and sa.cipher_args is not None
        psk_auth = sa.auth is not None and base_method(sa.auth) == AuthMethod.PRE_SHARED_KEY
        if sa.auth is None or (psk_auth and self.psk is None):
            msg.notes.append(
                "encrypted; a PSK is needed with the DH secrets" if psk_auth else "encrypted; no key"
            )
            return None
        if not (sa.ni and sa.nr and sa.rcookie):
            msg.notes.append("encrypted; nonces missing from the capture")
            return None
        key_size = ike_cipher(*sa.cipher_args).key_size
        for gxy in self.dh_secrets:
            cand = derive(
                sa.hash, gxy, self.psk if psk_auth else None, sa.ni, sa.nr, sa.icookie, sa.rcookie, key_size
            )
            try:
                self._decrypt(sa, chain, cand.enc_key, header, body)
            except (CryptoError, DecodeError):
                continue
            sa.derived = cand
            msg.notes.append("keys derived from a given DH secret")
            return cand.enc_key
        msg.notes.append("encrypted; none of the DH secrets decrypts it")
        return None

    def _iv_chain(self, sa: _Sa) -> IvChain | None:
        have_key = sa.icookie in self.keys or bool(self.dh_secrets)
        revised = sa.auth == AuthMethod.RSA_REVISED_ENCRYPTION
        if sa.iv is None and revised and sa.icookie in self.keys and sa.hash and sa.cipher_args:
            bs = ike_cipher(*sa.cipher_args).block_size
            sa.iv, sa.iv_unknown = IvChain(sa.hash, bs, bytes(bs), max_exchanges=1 << 16), True
        if sa.iv is None and have_key and sa.hash and sa.cipher_args and sa.gxi and sa.gxr:
            try:
                bs = ike_cipher(*sa.cipher_args).block_size
                sa.iv = IvChain(sa.hash, bs, phase1_iv(sa.hash, sa.gxi, sa.gxr, bs), max_exchanges=1 << 16)
            except CryptoError:
                return None
        return sa.iv

    # ---- checks -------------------------------------------------------------------------------

    def _problem(self, msg: Analysed, text: str) -> None:
        self.report.problems.append(Problem(msg.sa, msg.frame, text))

    def _check(self, sa: _Sa, msg: Analysed, payloads: tuple[RawPayload, ...]) -> None:
        types = [rp.payload.payload_type for rp in payloads]
        for need in (_REQUIRED_PKE if sa.auth in _PKE else _REQUIRED).get(msg.label, ()):
            if not any(t in types for t in need):
                names = " or ".join(name_of(PayloadType, t) for t in need)
                self._problem(msg, f"payload out of place: {msg.label} lacks {names}")
        if msg.label in _HASH_FIRST and msg.encrypted and (not types or types[0] != PayloadType.HASH):
            self._problem(msg, f"payload out of place: {msg.label} must start with HASH")
        if msg.label.startswith("MM") and int(msg.label[2:]) >= 5 and not msg.encrypted:
            self._problem(msg, f"{msg.label} is not encrypted: its identity travels in the clear")
        for rp in payloads:
            n = rp.payload
            if isinstance(n, NotifyPayload) and n.notify_type < 16384:
                who = "initiator" if msg.from_initiator else "responder"
                self._problem(msg, f"the {who} reports {name_of(NotifyType, n.notify_type)}")

    def _learn(self, sa: _Sa, msg: Analysed, payloads: tuple[RawPayload, ...]) -> None:
        for rp in payloads:
            p = rp.payload
            if isinstance(p, SaPayload) and msg.message_id == 0:
                if msg.from_initiator:
                    sa.sai_b = rp.body
                else:
                    self._choice(sa, p)
            elif isinstance(p, KePayload) and msg.message_id == 0:
                sa.gxi, sa.gxr = (p.data, sa.gxr) if msg.from_initiator else (sa.gxi, p.data)
            elif isinstance(p, NoncePayload) and msg.message_id == 0:
                sa.ni, sa.nr = (p.data, sa.nr) if msg.from_initiator else (sa.ni, p.data)
            elif isinstance(p, IdPayload) and msg.message_id == 0 and msg.from_initiator:
                sa.idi_b = rp.body
            elif isinstance(p, NoncePayload) and msg.label in ("QM1", "QM2"):
                sa.qm_nonces[(msg.message_id, msg.label == "QM1")] = rp.body
        self._check_hash(sa, msg, payloads)
        self._check_phase2_hash(sa, msg, payloads)

    def _check_phase2_hash(self, sa: _Sa, msg: Analysed, payloads: tuple[RawPayload, ...]) -> None:
        """HASH(1..3) of Quick Mode, Informational and Transaction hashes, with SKEYID_a from a
        DH secret (RFC 2409 5.5, 5.7; draft-ietf-ipsec-isakmp-mode-cfg)."""
        if sa.derived is None or sa.hash is None or not msg.decrypted or not payloads:
            return
        first = payloads[0].payload
        if not isinstance(first, HashPayload) or msg.label not in _HASH_FIRST:
            return
        h, ska, mid = sa.hash, sa.derived.keys.skeyid_a, msg.message_id
        rest = b"".join(rp.raw for rp in payloads[1:])
        ni, nr = sa.qm_nonces.get((mid, True), b""), sa.qm_nonces.get((mid, False), b"")
        if msg.label == "QM1":
            want, which = qm_hash1(h, ska, mid, rest), "HASH(1)"
        elif msg.label == "QM2":
            want, which = qm_hash2(h, ska, mid, ni, rest), "HASH(2)"
        elif msg.label == "QM3":
            want, which = qm_hash3(h, ska, mid, ni, nr), "HASH(3)"
        elif msg.label == "INFO":
            want, which = informational_hash(h, ska, mid, rest), "HASH"
        else:
            attrs = payloads[1].raw if len(payloads) > 1 else b""
            want, which = transaction_hash(h, ska, mid, attrs), "HASH"
        if want == first.data:
            msg.notes.append(f"{which} verified with SKEYID_a")
        else:
            self._problem(msg, f"{msg.label}: {which} does not match SKEYID_a from the DH secret")

    def _choice(self, sa: _Sa, p: SaPayload) -> None:
        if not p.proposals or not p.proposals[0].transforms:
            return
        parsed = parse_ike_transform(p.proposals[0].transforms[0])
        if parsed is None:
            return
        prop, auth, seconds, _ = parsed
        sa.auth = auth
        sa.cipher_args = (prop.encryption, prop.key_length)
        try:
            sa.hash = ike_hash(prop.hash)
        except CryptoError:
            sa.hash = None
        life = f", {seconds}s" if seconds else ""
        sa.choice = f"{format_ike_proposal(prop)}, {name_of(AuthMethod, auth)}{life}"

    def _check_hash(self, sa: _Sa, msg: Analysed, payloads: tuple[RawPayload, ...]) -> None:
        """HASH_I (MM5, AM3) / HASH_R (MM6, AM2) with the given PSK."""
        if self.psk is None or msg.label not in ("MM5", "MM6", "AM2", "AM3"):
            return
        if sa.auth is None or base_method(sa.auth) != AuthMethod.PRE_SHARED_KEY or sa.hash is None:
            return
        got = next((rp.payload for rp in payloads if isinstance(rp.payload, HashPayload)), None)
        ident = next((rp for rp in payloads if isinstance(rp.payload, IdPayload)), None)
        id_body = ident.body if ident is not None else sa.idi_b  # AM3: HASH_I over AM1's ID
        if got is None or id_body is None or not (sa.ni and sa.nr and sa.gxi and sa.gxr):
            return
        skeyid = skeyid_psk(sa.hash, self.psk, sa.ni, sa.nr)  # SKEYID = prf(PSK, Ni_b | Nr_b)
        c_i, c_r = sa.icookie, sa.rcookie
        if msg.from_initiator:
            want, which = hash_i(sa.hash, skeyid, sa.gxi, sa.gxr, c_i, c_r, sa.sai_b, id_body), "HASH_I"
        else:
            want, which = hash_r(sa.hash, skeyid, sa.gxr, sa.gxi, c_r, c_i, sa.sai_b, id_body), "HASH_R"
        if want == got.data:
            msg.notes.append(f"{which} verified with the given PSK")
        else:
            self._problem(msg, f"{which} does not match the given PSK (or the ID/SA bodies were altered)")

    # ---- the end ------------------------------------------------------------------------------

    def finish(self) -> Report:
        for sa in self.report.sas:
            for mid, last in sa.last.items():
                copies = sa.repeats.get(last.frame, 0)
                again = f" (sent {copies + 1} times)" if copies else ""
                if mid == 0 and sa.mode is not None and last.label != _FINAL[sa.mode]:
                    self._problem(last, f"{last.label} unanswered{again}: phase 1 did not complete")
                elif last.label in ("QM1", "QM2"):
                    what = "unanswered" if last.label == "QM1" else "not confirmed by QM3"
                    self._problem(last, f"{last.label} {what}{again}: Quick Mode did not complete")
                elif copies and last.label == "INFO" and "R_U_THERE" in last.payloads:
                    self._problem(last, f"DPD probe unanswered{again}")
        return self.report
