"""Phase 1 authentication with public key encryption (RFC 2409 5.2, auth method 4) and its revised
mode (5.3, method 5), for Main and Aggressive Mode, both roles. A helper the Phase 1 state holds
(DESIGN.md principle 4): it turns our KE/nonce/ID message into its encrypted form and a received
one back into a plaintext :class:`Message`, so the exchanges compute HASH_I/HASH_R over the
plaintext bodies (IDii_b, Ni_b) as usual. SKEYID = prf(hash(Ni_b | Nr_b), CKY-I | CKY-R).

    5.2 MM3/MM4:  KE, [HASH(1),] <IDii_b>PubKey_r, <Ni_b>PubKey_r [, NAT-D...]
        AM1/AM2:  SA, [HASH(1),] KE, <IDii_b>PubKey_r, <Ni_b>PubKey_r, ...   (AM2: HASH_R in clear)
    5.3 MM3/MM4:  [HASH(1),] <Ni_b>PubKey_r, <KE_b>Ke_i, <IDii_b>Ke_i [, <NAT-D>Ke_i...]
        AM1/AM2:  SA, [HASH(1),] <Ni_b>PubKey_r, <KE_b>Ke_i, <IDii_b>Ke_i, ...
    MM5/MM6: HDR*, HASH_I / HASH_R (no ID: it went encrypted before); AM3: HASH_I.

Only payload bodies are encrypted; the generic headers stay in the clear with the lengths of
the encrypted bodies. In revised mode every payload after the nonce is encrypted with Ke (5.3:
"All payloads-- in whatever order-- following the encrypted nonce MUST be encrypted"): NAT-D,
vendor IDs and AM2's HASH_R too. The initiator always sends HASH(1), the hash of the certificate
(or, for a raw key, of its SubjectPublicKeyInfo) it encrypted to; a responder checks it against
its own. The keys are pinned (``remote.certs`` / ``remote.pubkeys``): the peer's ID must be in the
certificate we encrypt to (a raw key binds no ID: ``remote.id`` or the address decides).
In Aggressive Mode the initiator offers one transform (revised mode needs the cipher and hash
before the responder chose) and the responder decrypts AM1 with the key HASH(1) names.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from snakeswan.config.credentials import Credentials, cert_contains, spki_der
from snakeswan.config.identity import Identity
from snakeswan.config.model import ConnectionConfig, IkeProposal
from snakeswan.crypto import pke
from snakeswan.crypto.algorithms import CbcCipher, HashAlg, ike_cipher, ike_hash
from snakeswan.errors import AuthenticationError, CryptoError, DecodeError, PeerError
from snakeswan.ike.context import Context
from snakeswan.ike.proposals import IkeChoice, parse_ike_transform
from snakeswan.ike.sa import IkeSa
from snakeswan.wire.buffer import Reader
from snakeswan.wire.enums import AuthMethod, NotifyType, PayloadType, name_of
from snakeswan.wire.message import Message, RawPayload, Rule
from snakeswan.wire.payloads import (
    HashPayload,
    IdPayload,
    NoncePayload,
    Payload,
    SaPayload,
    UnknownPayload,
    decode_payload,
)

P = PayloadType
N = NotifyType
PKE_AUTH: dict[str, int] = {
    "pubkey-enc": AuthMethod.RSA_ENCRYPTION,
    "pubkey-enc-revised": AuthMethod.RSA_REVISED_ENCRYPTION,
}
PKE_METHODS = frozenset(PKE_AUTH.values())

_NATD: dict[int, Rule] = {P.NAT_D: Rule(0, 9), P.NAT_D_DRAFT: Rule(0, 9)}
_FIRST: dict[int, Rule] = {P.KE: Rule(1, 1), P.NONCE: Rule(1, 1), P.ID: Rule(1, 1), **_NATD}
# Main Mode, by the message received: MM3 (may carry HASH(1)), MM4, MM5, MM6
MM_RULES: dict[int, dict[int, Rule]] = {
    3: {**_FIRST, P.HASH: Rule(0, 1)},
    4: _FIRST,
    5: {P.HASH: Rule(1, 1)},
    6: {P.HASH: Rule(1, 1)},
}
AM1_EXTRA: dict[int, Rule] = {P.HASH: Rule(0, 1)}


def is_pke(auth: str) -> bool:
    return auth in PKE_AUTH


def conn_method(conn: ConnectionConfig | None) -> int | None:
    """The method number a connection authenticates with, if it is one of these two."""
    return PKE_AUTH.get(conn.local.auth) if conn is not None else None


def garbled_hint(exchange: object) -> str:
    """Why a phase 1 body may not decrypt under public key encryption (else "")."""
    p1 = getattr(exchange, "p1", None)
    pke_auth = getattr(p1, "pke", None)
    if not isinstance(pke_auth, PkeAuth) or pke_auth.method is None:
        return ""
    return (
        "the two ends derived different keys: a nonce that did not reach the peer intact (tampered "
        "with) or was encrypted to a key the peer does not hold"
    )


@dataclass(frozen=True)
class KeyRef:
    """One RSA public key, the bytes HASH(1) hashes (certificate or SubjectPublicKeyInfo, DER)
    and the certificate, if it came in one."""

    public: rsa.RSAPublicKey
    der: bytes
    cert: x509.Certificate | None
    name: str


def _ref(creds: Credentials, name: str, *, cert: bool) -> KeyRef:
    if cert:
        c = creds.cert(name)
        public = c.public_key()
        der = c.public_bytes(serialization.Encoding.DER)
    else:
        c, public = None, creds.pubkey(name)
        der = spki_der(public)
    if not isinstance(public, rsa.RSAPublicKey):  # the loader refuses these; a Config built in code may not
        raise PeerError(N.NO_PROPOSAL_CHOSEN, f"{name!r}: public key encryption needs an RSA key")
    return KeyRef(public, der, c, name)


def our_key(conn: ConnectionConfig, creds: Credentials) -> tuple[KeyRef, rsa.RSAPrivateKey]:
    """Our key (``local.certs[0]`` or ``local.pubkeys[0]``) and its private half."""
    try:
        ref = _ref(creds, (conn.local.certs or conn.local.pubkeys)[0], cert=bool(conn.local.certs))
    except (IndexError, KeyError):
        raise PeerError(N.NO_PROPOSAL_CHOSEN, f"connection {conn.name}: no key of ours loaded") from None
    private = creds.key_for_public(ref.public)
    if private is None or not isinstance(private.key, rsa.RSAPrivateKey):
        raise PeerError(N.NO_PROPOSAL_CHOSEN, f"connection {conn.name}: no RSA private key for {ref.name!r}")
    return ref, private.key


def peer_keys(conn: ConnectionConfig, creds: Credentials) -> list[KeyRef]:
    """The keys we may encrypt to: ``remote.certs`` or ``remote.pubkeys``, in order."""
    try:
        refs = [_ref(creds, n, cert=True) for n in conn.remote.certs]
        refs += [_ref(creds, n, cert=False) for n in conn.remote.pubkeys]
    except KeyError as e:
        raise PeerError(N.NO_PROPOSAL_CHOSEN, f"connection {conn.name}: peer key {e} not loaded") from None
    if not refs:
        raise PeerError(N.NO_PROPOSAL_CHOSEN, f"connection {conn.name}: no key of the peer to encrypt to")
    return refs


def _key_for_id(keys: list[KeyRef], ident: Identity | None) -> KeyRef:
    """The first key whose certificate contains ``ident`` (a configured remote.id), else the first."""
    if ident is not None and not ident.is_any:
        fits = [k for k in keys if k.cert is not None and cert_contains(k.cert, ident)]
        if fits:
            return fits[0]
    return keys[0]


def _plain(rp: RawPayload, body: bytes, what: str) -> RawPayload:
    """A received payload as if its body had come in the clear."""
    ptype = rp.payload.payload_type
    raw = rp.raw[:2] + (4 + len(body)).to_bytes(2, "big") + body
    try:
        payload = decode_payload(ptype, Reader(body, where=name_of(PayloadType, ptype)))
    except DecodeError as e:
        raise AuthenticationError(
            N.PAYLOAD_MALFORMED,
            f"the {what} {name_of(PayloadType, ptype)} payload does not decrypt to one ({e}): "
            "encrypted to another key, or tampered with",
        ) from None
    return RawPayload(payload, raw)


class PkeAuth:
    """The encrypted half of one phase 1 exchange under method 4 or 5."""

    def __init__(self, ctx: Context, sa: IkeSa) -> None:
        self.ctx = ctx
        self.sa = sa
        self.our_id_body = b""  # IDii_b / IDir_b as sent (encrypted): HASH_I/HASH_R cover it
        self.peer_id_body = b""
        self.peer_key: KeyRef | None = None  # the key we encrypt to
        self._am1: IkeProposal | None = None  # Aggressive Mode responder: what decrypted AM1

    @property
    def am1_decrypted(self) -> bool:
        return self._am1 is not None

    @property
    def method(self) -> int | None:
        """4 or 5 when this exchange authenticates by public key encryption, else None."""
        if self.sa.choice is not None:
            m = self.sa.choice.auth_method
            return m if m in PKE_METHODS else None
        return conn_method(self.sa.conn)

    def _proposal(self) -> IkeProposal:
        if self.sa.choice is not None:
            return self.sa.choice.proposal
        if self._am1 is not None:
            return self._am1
        assert self.sa.conn is not None
        return self.sa.conn.proposals[0]  # Aggressive Mode initiator: the one transform offered

    def _algs(self) -> tuple[HashAlg, CbcCipher]:
        p = self._proposal()
        return ike_hash(p.hash), ike_cipher(p.encryption, p.key_length)

    # ---- what we send -------------------------------------------------------------------------

    def wrap(
        self, pre: list[Payload], ke: Payload, nonce: NoncePayload, our_id: IdPayload, rest: list[Payload]
    ) -> list[Payload]:
        """MM3/MM4/AM1/AM2 in the method's form: ``pre`` (AM: the SA) stays first, ``rest`` after."""
        sa, method = self.sa, self.method
        assert sa.conn is not None and method is not None
        h, cipher = self._algs()
        self.our_id_body = our_id.encode_body()
        if self.peer_key is None:  # initiator: the key of remote.id's certificate, else the first
            self.peer_key = _key_for_id(peer_keys(sa.conn, self.ctx.config.credentials), sa.conn.remote.id)
        peer = self.peer_key
        hash1: list[Payload] = [HashPayload(pke.key_hash(h, peer.der))] if sa.initiator else []
        try:
            enc_nonce = UnknownPayload(P.NONCE, pke.rsa_encrypt(peer.public, nonce.data))
            if method == AuthMethod.RSA_ENCRYPTION:
                enc_id = UnknownPayload(P.ID, pke.rsa_encrypt(peer.public, self.our_id_body))
                # MM3: KE, [HASH(1),] ...; AM1: SA, [HASH(1),] KE, ... (RFC 2409 5.2's order)
                first = [*hash1, ke] if pre else [ke, *hash1]
                return [*pre, *first, enc_id, enc_nonce, *rest]
        except CryptoError as e:
            raise PeerError(N.NO_PROPOSAL_CHOSEN, f"cannot encrypt to {peer.name!r}: {e}") from None
        cookie = sa.icookie if sa.initiator else sa.rcookie
        key = pke.ephemeral_key(h, nonce.data, cookie, cipher.key_size)  # Ke_i / Ke_r
        after = [ke, our_id, *rest]
        sealed = pke.seal_bodies(cipher, key, [p.encode_body() for p in after])
        return [
            *pre,
            *hash1,
            enc_nonce,
            *(UnknownPayload(p.payload_type, s) for p, s in zip(after, sealed, strict=True)),
        ]

    # ---- what we receive ----------------------------------------------------------------------

    def unwrap(self, msg: Message, conn: ConnectionConfig | None = None) -> Message:
        """The peer's MM3/MM4/AM1/AM2 with its bodies decrypted (``conn``: whose key, default ours)."""
        method = self.method if conn is None else conn_method(conn)
        conn = conn or self.sa.conn
        if method is None or conn is None:
            return msg
        ours, private = our_key(conn, self.ctx.config.credentials)
        h, cipher = self._algs()
        hash1 = msg.first(HashPayload)
        if (
            not self.sa.initiator
            and hash1 is not None
            and not hmac.compare_digest(hash1.data, pke.key_hash(h, ours.der))
        ):
            raise AuthenticationError(
                N.INVALID_HASH_INFORMATION,
                f"HASH(1) names a key that is not ours ({ours.name}): the peer encrypted to another "
                "certificate or key",
            )
        raws = list(msg.payloads)
        at = next((i for i, rp in enumerate(raws) if rp.payload.payload_type == P.NONCE), None)
        if at is None:
            raise PeerError(N.PAYLOAD_MALFORMED, "Nonce payload missing")
        nonce_b = self._rsa_open(private, raws[at].body, "Nonce", ours)
        raws[at] = _plain(raws[at], nonce_b, "RSA-encrypted")
        if method == AuthMethod.RSA_ENCRYPTION:
            id_at = next((i for i, rp in enumerate(raws) if rp.payload.payload_type == P.ID), None)
            if id_at is None:
                raise PeerError(N.PAYLOAD_MALFORMED, "ID payload missing")
            raws[id_at] = _plain(
                raws[id_at], self._rsa_open(private, raws[id_at].body, "ID", ours), "RSA-encrypted"
            )
        else:
            cookie = msg.header.icookie if not self.sa.initiator else msg.header.rcookie
            key = pke.ephemeral_key(h, nonce_b, cookie, cipher.key_size)  # Ke_i / Ke_r
            try:
                bodies = pke.open_bodies(cipher, key, [rp.body for rp in raws[at + 1 :]])
            except CryptoError as e:
                raise AuthenticationError(
                    N.PAYLOAD_MALFORMED, f"payloads after the nonce do not decrypt with Ke: {e}"
                ) from None
            raws[at + 1 :] = [
                _plain(rp, b, "Ke-encrypted") for rp, b in zip(raws[at + 1 :], bodies, strict=True)
            ]
        id_raw = next((rp for rp in raws if isinstance(rp.payload, IdPayload)), None)
        self.peer_id_body = id_raw.body if id_raw is not None else b""
        self.ctx.tracer.emit(
            "ike", "pke_decrypted", sa=self.sa.unique_id, method=name_of(AuthMethod, method), key=ours.name
        )
        return Message(msg.header, tuple(raws), msg.padding)

    def _rsa_open(self, private: rsa.RSAPrivateKey, body: bytes, what: str, ours: KeyRef) -> bytes:
        try:
            return pke.rsa_decrypt(private, body)
        except CryptoError as e:
            raise AuthenticationError(
                N.INVALID_KEY_INFORMATION,
                f"the {what} payload does not decrypt with our key {ours.name}: {e}",
            ) from None

    def unwrap_am1(
        self, msg: Message, offered: SaPayload, conns: list[ConnectionConfig]
    ) -> tuple[Message, list[ConnectionConfig]]:
        """Aggressive Mode responder: AM1 decrypted with the key HASH(1) names (else the first
        candidate's), and the candidates that hold that key. Unchanged for other methods."""
        transforms = offered.proposals[0].transforms if offered.proposals else ()
        parsed = parse_ike_transform(transforms[0]) if transforms else None
        if parsed is None or parsed[1] not in PKE_METHODS:
            return msg, conns
        proposal, method = parsed[0], parsed[1]
        mine = [c for c in conns if conn_method(c) == method]
        if not mine:
            raise PeerError(
                N.NO_PROPOSAL_CHOSEN, f"no connection authenticates with {name_of(AuthMethod, method)}"
            )
        self._am1 = proposal
        creds, h = self.ctx.config.credentials, ike_hash(proposal.hash)
        hash1 = msg.first(HashPayload)
        chosen = mine[0]
        if hash1 is not None:
            named = [
                c for c in mine if hmac.compare_digest(hash1.data, pke.key_hash(h, our_key(c, creds)[0].der))
            ]
            chosen = named[0] if named else chosen  # none: unwrap() says why
        der = our_key(chosen, creds)[0].der
        return self.unwrap(msg, chosen), [c for c in mine if our_key(c, creds)[0].der == der]

    def reselect(
        self,
        msg: Message,
        conns: list[ConnectionConfig],
        choose: Callable[[ConnectionConfig], IkeChoice | None],
    ) -> None:
        """Main Mode responder, MM3: HASH(1) names a key of another connection for these addresses
        (ours was chosen at MM1 by addresses): answer as that one if it accepts the transform MM2
        already echoed (``choose`` sets it and returns its choice, or None)."""
        sa, hash1 = self.sa, msg.first(HashPayload)
        if hash1 is None or sa.conn is None or sa.choice is None:
            return
        creds, h, method = (
            self.ctx.config.credentials,
            ike_hash(sa.choice.proposal.hash),
            sa.choice.auth_method,
        )
        if hmac.compare_digest(hash1.data, pke.key_hash(h, our_key(sa.conn, creds)[0].der)):
            return
        old = (sa.conn, sa.choice)
        for conn in conns:
            if conn is old[0] or conn_method(conn) != method:
                continue
            if not hmac.compare_digest(hash1.data, pke.key_hash(h, our_key(conn, creds)[0].der)):
                continue
            choice = choose(conn)
            if choice is not None and choice.transform == old[1].transform:
                self.ctx.tracer.emit(
                    "ike", "pke_connection", sa=sa.unique_id, conn=conn.name, was=old[0].name
                )
                return
            sa.conn, sa.choice = old  # unwrap() then refuses HASH(1) with its reason

    def check_am_choice(self, choice: IkeChoice) -> None:
        """AM responder: the transform chosen must have the cipher and hash AM1 was decrypted with."""
        if self._am1 is None:
            return
        a, b = self._am1, choice.proposal
        if (ike_cipher(a.encryption, a.key_length), a.hash) != (
            ike_cipher(b.encryption, b.key_length),
            b.hash,
        ):
            raise PeerError(
                N.NO_PROPOSAL_CHOSEN,
                "public key encryption in Aggressive Mode: the first transform offered (whose cipher "
                "and hash encrypted AM1) is not acceptable",
            )

    def check_peer(self, ident: Identity) -> None:
        """The peer's identity against the key we encrypt to (responder: find that key by it)."""
        sa = self.sa
        assert sa.conn is not None
        if not sa.initiator:
            self.peer_key = None  # found by the ID each time: an MM3 refused before decides nothing
        if self.peer_key is None:
            keys = peer_keys(sa.conn, self.ctx.config.credentials)
            with_cert = [k for k in keys if k.cert is not None]
            fits = [k for k in with_cert if k.cert is not None and cert_contains(k.cert, ident)]
            if with_cert and not fits:
                raise AuthenticationError(
                    N.INVALID_ID_INFORMATION,
                    f"peer identity {ident} is in none of remote.certs (the keys we encrypt to)",
                )
            self.peer_key = fits[0] if fits else keys[0]
        elif self.peer_key.cert is not None and not cert_contains(self.peer_key.cert, ident):
            subject = self.peer_key.cert.subject.rfc4514_string()
            raise AuthenticationError(
                N.INVALID_ID_INFORMATION,
                f'peer identity {ident} is not in the certificate we encrypted to "{subject}"',
            )
