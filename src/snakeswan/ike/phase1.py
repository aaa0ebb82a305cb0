"""What Main Mode and Aggressive Mode share: proposals, DH and nonces, keys, identities, HASH_I/R,
NAT-D, vendor IDs, and authentication (pre-shared key: HASH_I/R; signatures: CERT/SIG through
:mod:`snakeswan.ike.pubkey`; public key encryption: nonces and IDs encrypted to the peer's key
through :mod:`snakeswan.ike.pubkey_enc`, then HASH_I/R). A helper that both exchanges hold
(composition, DESIGN.md principle 3)."""

from __future__ import annotations

import hmac
import ipaddress

from snakeswan.config.credentials import Credentials
from snakeswan.config.identity import Identity
from snakeswan.config.model import ConnectionConfig
from snakeswan.config.proposals import format_ike_proposal
from snakeswan.crypto import keymat, signatures
from snakeswan.crypto.algorithms import hash_by_name, ike_cipher, ike_hash
from snakeswan.crypto.dh import DhKeyPair
from snakeswan.crypto.ivchain import IvChain
from snakeswan.errors import AuthenticationError, CryptoError, DecodeError, PeerError
from snakeswan.ike import crypt, informational, natt, peers, pubkey, pubkey_enc, vendor
from snakeswan.ike.context import Context
from snakeswan.ike.events import IkeSaEstablished, KeyLog
from snakeswan.ike.proposals import IkeChoice, ike_responder_lifetime, ike_sa_payload, select_ike
from snakeswan.ike.sa import IkeSa, IkeState, Phase1Crypto
from snakeswan.wire.enums import AuthMethod, IdType, NotifyType, PayloadType
from snakeswan.wire.message import Message, Rule, check_payloads
from snakeswan.wire.payloads import (
    CertRequestPayload,
    HashPayload,
    IdPayload,
    KePayload,
    NatDPayload,
    NoncePayload,
    Payload,
    SaPayload,
    VendorIdPayload,
)

NONCE_SIZE = 32

_FINAL_OTHERS = (PayloadType.VENDOR_ID, PayloadType.NOTIFICATION, PayloadType.CR, PayloadType.CERT)


# XAUTH in a second round changes the method number (draft-beaulieu-ike-xauth-02 appendix A):
# "INIT" when the phase 1 initiator is the one XAUTH checks, "RESP" when the responder is.
_XAUTH_METHODS: dict[int, tuple[int, int]] = {
    AuthMethod.PRE_SHARED_KEY: (AuthMethod.XAUTH_INIT_PSK, AuthMethod.XAUTH_RESP_PSK),
    AuthMethod.RSA_SIGNATURES: (AuthMethod.XAUTH_INIT_RSA, AuthMethod.XAUTH_RESP_RSA),
}
_BASE_METHOD: dict[int, int] = {xm: base for base, pair in _XAUTH_METHODS.items() for xm in pair}


_HYBRID_METHODS = (AuthMethod.HYBRID_INIT_RSA, AuthMethod.HYBRID_RESP_RSA)
_BASE_METHOD.update({m: AuthMethod.RSA_SIGNATURES for m in _HYBRID_METHODS})


def is_hybrid(conn: ConnectionConfig) -> bool:
    """Hybrid authentication (draft-ietf-ipsec-isakmp-hybrid-auth-05): one side (the gateway)
    signs with its certificate, the other proves itself with XAUTH only (its phase 1 HASH is
    computed with the signature SKEYID, no pre-shared key)."""
    return "xauth" in (conn.local.method, conn.remote.method)


def base_method(method: int) -> int:
    """The phase 1 method an XAUTH method authenticates with: 65001 -> PSK, 65005 -> RSA."""
    return _BASE_METHOD.get(method, method)


def auth_methods(conn: ConnectionConfig, creds: Credentials, *, initiator: bool = True) -> tuple[int, ...]:
    """The phase 1 authentication methods a connection offers (``initiator``) or accepts: PSK, or
    the signature method of our own key (RSA 3, ECDSA 9/10/11), as strongSwan (one method for
    both ends), or public key encryption (4, revised 5); with an XAUTH round, its XAUTH variant
    (the client is checked: ``local-xauth`` on our side, ``remote-xauth`` on the peer's)."""
    if is_hybrid(conn):
        gateway_signs = pubkey.is_pubkey(conn.local.method) or pubkey.is_pubkey(conn.remote.method)
        if not gateway_signs or (pubkey.is_pubkey(conn.local.method) and pubkey.local_method(
            conn, creds) != AuthMethod.RSA_SIGNATURES):  # fmt: skip
            raise PeerError(
                NotifyType.NO_PROPOSAL_CHOSEN,
                f"connection {conn.name}: hybrid authentication needs an RSA certificate on the gateway",
            )
        init_checked = (conn.local.method == "xauth") == initiator
        return (_HYBRID_METHODS[0 if init_checked else 1],)
    pke = pubkey_enc.conn_method(conn)
    if pke is not None:
        base: int = pke  # RSA encryption (4) or its revised mode (5); the loader refuses XAUTH
    elif conn.local.auth == "psk" or conn.remote.auth == "psk":
        base = AuthMethod.PRE_SHARED_KEY
    elif pubkey.is_pubkey(conn.local.method) and pubkey.is_pubkey(conn.remote.method):
        base = pubkey.local_method(conn, creds)
    else:
        raise PeerError(
            NotifyType.NO_PROPOSAL_CHOSEN,
            f"auth {conn.local.auth!r}/{conn.remote.auth!r} is not supported",
        )
    if conn.local_xauth is None and conn.remote_xauth is None:
        return (base,)
    if base not in _XAUTH_METHODS:
        raise PeerError(
            NotifyType.NO_PROPOSAL_CHOSEN, f"connection {conn.name}: XAUTH works with PSK or RSA keys only"
        )
    init_checked = (conn.local_xauth is not None) == initiator  # is the phase 1 initiator the client?
    return (_XAUTH_METHODS[base][0 if init_checked else 1],)


def id_acceptable(conn: ConnectionConfig, remote_addr: str, ident: Identity) -> bool:
    """Is ``ident`` the peer we expect? With signatures and no ``remote.id``: anybody (``%any``, as
    swanctl), since the certificate must then contain the identity."""
    if conn.remote.id is None and pubkey.is_pubkey(conn.remote.method):
        return True
    if conn.remote.id is None and pubkey_enc.is_pke(conn.remote.auth) and conn.remote.certs:
        return True  # the certificate we encrypt to must contain it (PkeAuth.check_peer)
    return peers.id_acceptable(conn, remote_addr, ident)


class Phase1:
    """The state one Main or Aggressive Mode exchange builds up, and the computations on it."""

    def __init__(self, sa: IkeSa, ctx: Context) -> None:
        self.sa = sa
        self.ctx = ctx
        self.offer: SaPayload | None = None
        self.sai_b = b""  # body of the initiator's SA payload as sent (for HASH_I/HASH_R)
        self.dh: DhKeyPair | None = None
        self.ni = b""
        self.nr = b""
        self.gxi = b""
        self.gxr = b""
        self.psk: bytes | None = None
        self.psk_ids = ""  # which identities the PSK was looked up by (for explanations)
        self.initial_contact = False  # sent (initiator) or received (responder)
        self.final: tuple[bytes, bytes] | None = None  # responder: (IV, ciphertext) of MM5/AM3
        self.unique_checked = False  # the engine applied INITIAL-CONTACT / unique once established
        self.pubkey = pubkey.PubkeyAuth(ctx, sa.unique_id)
        self.pke = pubkey_enc.PkeAuth(ctx, sa)
        self.peer_vids: set[bytes] = set()

    # ---- proposals --------------------------------------------------------------------------

    def make_offer(self, conn: ConnectionConfig, *, single_group: bool = False) -> SaPayload:
        """Initiator's SA payload; Aggressive Mode offers only transforms of the first DH group."""
        proposals = conn.proposals
        if single_group:
            proposals = tuple(p for p in proposals if p.group == proposals[0].group)
            if pubkey_enc.conn_method(conn) is not None:
                proposals = proposals[:1]  # AM1 is encrypted with the cipher and hash of this one
        self.offer = ike_sa_payload(
            proposals,
            auth_methods(conn, self.ctx.config.credentials)[0],
            int(conn.ike_lifetime),
            conn.ike_life_kilobytes,
        )
        return self.offer

    def choose(self, offered: SaPayload, conns: list[ConnectionConfig]) -> IkeChoice:
        """Responder: the first connection (best address match first) that accepts a transform."""
        last: PeerError | None = None
        for conn in conns:
            try:
                choice = select_ike(
                    offered,
                    conn.proposals,
                    auth_methods(conn, self.ctx.config.credentials, initiator=False),
                    int(conn.ike_lifetime),
                    conn.ike_life_kilobytes,
                    strict=conn.ike_lifetime_check == "strict",
                )
            except PeerError as e:
                last = e
                continue
            self.sa.conn = conn
            self.sa.choice = choice
            return choice
        raise last or PeerError(NotifyType.NO_PROPOSAL_CHOSEN, "no connection matches these addresses")

    # ---- vendor IDs -------------------------------------------------------------------------

    def our_vids(self, *, mutual: bool = False) -> list[VendorIdPayload]:
        """Our vendor IDs; ``mutual`` (a responder's first answer): only those the peer sent too,
        since a capability needs both ends, and an answer to an address that has not proved itself
        must not be larger than what came from it (anti-reflection, RFC 2408 2.5.3)."""
        conn = self.sa.conn
        ra = conn is not None and bool(
            conn.local_xauth or conn.remote_xauth or conn.pools or conn.vips
        )  # fmt: skip
        frag = conn is not None and conn.fragmentation != "no"
        vids = (*vendor.OURS, *(vendor.REMOTE_ACCESS if ra else ()))
        out = [VendorIdPayload(v) for v in vids if not mutual or v in self.peer_vids]
        if frag and (not mutual or self.sa.peer_fragmentation):
            out.append(VendorIdPayload(vendor.CISCO_FRAGMENTATION))
        return out

    def note_vids(self, msg: Message) -> None:
        vids = [p.data for p in msg.all(VendorIdPayload)]
        self.peer_vids.update(vids)
        if vids:
            self.sa.natt_flavour = (
                vendor.natt_flavour(vids) if self.sa.natt_flavour is None else self.sa.natt_flavour
            )
            self.sa.dpd_supported = self.sa.dpd_supported or vendor.DPD in vids
            self.sa.unity = self.sa.unity or vendor.CISCO_UNITY in vids
            self.sa.peer_fragmentation = self.sa.peer_fragmentation or any(map(vendor.fragmentation, vids))
            self.ctx.tracer.emit(
                "ike", "vendor_ids", sa=self.sa.unique_id, vids=[vendor.describe(v) for v in vids]
            )

    # ---- DH and nonces ----------------------------------------------------------------------

    def ke_nonce(self, group: int | None = None) -> list[KePayload | NoncePayload]:
        """Our KE and nonce; the DH group is the chosen one (or ``group`` before a choice exists)."""
        if group is None:
            assert self.sa.choice is not None
            group = self.sa.choice.proposal.group
        self.dh = self.ctx.dh_keypair(group)
        nonce = self.ctx.rng(NONCE_SIZE)
        if self.sa.initiator:
            self.ni, self.gxi = nonce, self.dh.public
        else:
            self.nr, self.gxr = nonce, self.dh.public
        return [KePayload(self.dh.public), NoncePayload(nonce)]

    def take_ke_nonce(self, msg: Message) -> None:
        ke, nonce = msg.first(KePayload), msg.first(NoncePayload)
        if ke is None or nonce is None:
            raise PeerError(NotifyType.PAYLOAD_MALFORMED, "KE or Nonce payload missing")
        if not 8 <= len(nonce.data) <= 256:
            raise PeerError(
                NotifyType.PAYLOAD_MALFORMED, f"nonce of {len(nonce.data)} bytes (8..256 allowed)"
            )
        if self.sa.initiator:
            self.nr, self.gxr = nonce.data, ke.data
        else:
            self.ni, self.gxi = nonce.data, ke.data

    def derive_keys(self) -> None:
        """g^xy, SKEYID and its three children, the encryption key and the first IV."""
        sa, choice = self.sa, self.sa.choice
        assert choice is not None and self.dh is not None and sa.conn is not None
        peer_public = self.gxr if sa.initiator else self.gxi
        try:
            gxy = self.dh.shared_secret(peer_public)
        except CryptoError as e:
            raise PeerError(NotifyType.INVALID_KEY_INFORMATION, f"peer's KE rejected: {e}") from e
        h = ike_hash(choice.proposal.hash)
        cipher = ike_cipher(choice.proposal.encryption, choice.proposal.key_length)
        if self.pke.method is not None:
            # SKEYID = prf(hash(Ni_b | Nr_b), CKY-I | CKY-R)
            skeyid = keymat.skeyid_pke(h, self.ni, self.nr, sa.icookie, sa.rcookie)
        elif self.signatures:
            skeyid = keymat.skeyid_sig(h, self.ni, self.nr, gxy)  # SKEYID = prf(Ni_b | Nr_b, g^xy)
        else:
            psk = self.lookup_psk()
            skeyid = keymat.skeyid_psk(h, psk, self.ni, self.nr)  # SKEYID = prf(pre-shared-key, Ni_b | Nr_b)
        keys = keymat.derive_phase1(h, skeyid, gxy, sa.icookie, sa.rcookie)
        enc_key = keymat.encryption_key(h, keys.skeyid_e, cipher.key_size)
        iv = keymat.phase1_iv(h, self.gxi, self.gxr, cipher.block_size)  # IV = hash(g^xi | g^xr)
        sa.crypto = Phase1Crypto(h, cipher, keys, enc_key, IvChain(h, cipher.block_size, iv))
        self.ctx.tracer.secret(  # only with an explicit opt-in (Tracer(log_keys=True))
            "ike", "phase1_keys", sa=sa.unique_id, gxy=gxy, skeyid=skeyid, skeyid_d=keys.skeyid_d,
            skeyid_a=keys.skeyid_a, skeyid_e=keys.skeyid_e, enc_key=enc_key, iv=iv,
        )  # fmt: skip
        if self.ctx.keylog:
            self.ctx.emit(KeyLog(ikev1_line=f"{sa.icookie.hex()},{enc_key.hex()}"))

    @property
    def signatures(self) -> bool:
        """Authentication by signatures (the negotiated method is not a pre-shared key)."""
        choice = self.sa.choice
        return (
            choice is not None
            and base_method(choice.auth_method) != AuthMethod.PRE_SHARED_KEY
            and choice.auth_method not in pubkey_enc.PKE_METHODS
        )

    def lookup_psk(self) -> bytes:
        sa = self.sa
        assert sa.conn is not None
        local = sa.local_id or peers.local_identity(sa.conn, sa.local[0])
        remote = sa.remote_id or peers.remote_identity(sa.conn, sa.remote[0])
        if self.psk is None:
            self.psk = self.ctx.config.secrets.psk_for(local, remote)
            self.psk_ids = f"local {local or '%any'}, remote {remote or '%any'} (peer at {sa.remote[0]})"
        if self.psk is None:
            raise PeerError(
                NotifyType.AUTHENTICATION_FAILED,
                f"no pre-shared key for connection {sa.name}: PSK lookup by ID/address failed for "
                f"{self.psk_ids}; {len(self.ctx.config.secrets.psks)} secret(s) configured, none owned "
                "by these identities",
            )
        return self.psk

    # ---- NAT-D --------------------------------------------------------------------------------

    def natd(self) -> list[NatDPayload]:
        sa = self.sa
        if sa.natt_flavour is None or sa.choice is None:
            return []
        h = ike_hash(sa.choice.proposal.hash)
        payloads = natt.natd_payloads(h, sa.icookie, sa.rcookie, sa.local, sa.remote, sa.natt_flavour)
        if self._forced_encap():
            # encap = true, as strongSwan does: our own address's hash is random, so the peer sees
            # us "behind a NAT" and both ends move IKE and ESP to UDP 4500 (no NAT needed)
            payloads[1] = NatDPayload(self.ctx.rng(h.digest_size), payloads[1].payload_type)
        return payloads

    def _forced_encap(self) -> bool:
        return bool(self.sa.conn is not None and self.sa.conn.encap)

    def check_natd(self, msg: Message) -> None:
        sa = self.sa
        if sa.natt_flavour is None or sa.choice is None:
            return
        hashes = [p.data for p in msg.all(NatDPayload)]
        result = natt.check_natd(
            ike_hash(sa.choice.proposal.hash), sa.icookie, sa.rcookie, hashes, sa.local, sa.remote
        )
        if result is not None:
            sa.nat = result
            self.ctx.tracer.emit(
                "ike",
                "nat_detection",
                sa=sa.unique_id,
                local_behind=result.local_behind,
                remote_behind=result.remote_behind,
            )

    def float_to_nat_port(self) -> None:
        """Initiator: after NAT was detected (or faked: ``encap = true``), IKE moves to port 4500
        (RFC 3947 section 4)."""
        sa = self.sa
        nat = sa.nat is not None and (sa.nat.any or self._forced_encap())
        if nat and sa.local[1] != self.ctx.nat_port:
            sa.local = (sa.local[0], self.ctx.nat_port)
            sa.remote = (sa.remote[0], self.ctx.nat_port)
            self.ctx.tracer.emit("ike", "nat_float", sa=sa.unique_id, local=sa.local, remote=sa.remote)

    # ---- identities and authentication --------------------------------------------------------

    def our_id(self) -> IdPayload:
        sa = self.sa
        assert sa.conn is not None
        ident = peers.local_identity(sa.conn, sa.local[0])
        sa.local_id = ident
        return IdPayload(ident.id_type, ident.data)

    def take_peer_id(self, p: IdPayload) -> Identity:
        sa = self.sa
        assert sa.conn is not None
        ident = _identity_of(p)
        if not id_acceptable(sa.conn, sa.remote[0], ident):
            raise PeerError(
                NotifyType.INVALID_ID_INFORMATION,
                f"peer identity {ident} is not {peers.remote_identity(sa.conn, sa.remote[0])}",
            )
        if self.pke.method is not None:
            self.pke.check_peer(ident)
        sa.remote_id = ident
        return ident

    def auth_hash(self, of_initiator: bool, id_body: bytes) -> bytes:
        """HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b);
        HASH_R = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b).
        With ECDSA the prf is HMAC with the method's hash (RFC 4754 section 7), not the negotiated one."""
        sa = self.sa
        assert sa.crypto is not None and sa.choice is not None
        h, skeyid = sa.crypto.hash, sa.crypto.keys.skeyid
        ecdsa_hash = signatures.auth_hash_name(base_method(sa.choice.auth_method))
        if ecdsa_hash is not None:
            h = hash_by_name(ecdsa_hash)
        if of_initiator:
            return keymat.hash_i(h, skeyid, self.gxi, self.gxr, sa.icookie, sa.rcookie, self.sai_b, id_body)
        return keymat.hash_r(h, skeyid, self.gxr, self.gxi, sa.rcookie, sa.icookie, self.sai_b, id_body)

    def our_hash(self, id_payload: IdPayload) -> HashPayload:
        return HashPayload(self.auth_hash(self.sa.initiator, id_payload.encode_body()))

    def our_auth(self, id_body: bytes) -> list[Payload]:
        """HASH_I/HASH_R (pre-shared key; the XAUTH side of hybrid), or [CERT,] SIG over it."""
        value = self.auth_hash(self.sa.initiator, id_body)
        if not self.signatures or (self.sa.conn is not None and self.sa.conn.local.method == "xauth"):
            return [HashPayload(value)]
        assert self.sa.conn is not None
        return self.pubkey.our_payloads(self.sa.conn, value)

    def certreqs(self, conn: ConnectionConfig | None = None) -> list[CertRequestPayload]:
        """CERTREQs to send (signature authentication only; ``conn`` before a choice exists)."""
        conn = conn or self.sa.conn
        assert conn is not None
        if conn.local.method == "psk" or not pubkey.is_pubkey(conn.remote.method):
            return []
        return self.pubkey.certreqs(conn)

    def note_certreqs(self, msg: Message) -> None:
        self.pubkey.note_certreqs(msg)

    def verify_auth(self, msg: Message, now: float, id_body: bytes | None = None) -> None:
        """Check the peer's HASH_I/HASH_R, or its SIG over it (its ID from ``sa.remote_id``)."""
        if id_body is None and self.pke.method is not None:
            id_body = self.pke.peer_id_body  # its ID came encrypted, before the HASH
        if not self.signatures or (self.sa.conn is not None and self.sa.conn.remote.method == "xauth"):
            self.verify_hash(msg, id_body)  # the XAUTH side of hybrid sends a HASH, no signature
            return
        if id_body is None:
            id_raw = msg.raw_of(IdPayload)
            if id_raw is None:
                raise PeerError(NotifyType.PAYLOAD_MALFORMED, "ID payload missing")
            id_body = id_raw.body
        sa = self.sa
        assert sa.conn is not None and sa.choice is not None and sa.remote_id is not None
        expected = self.auth_hash(not sa.initiator, id_body)
        self.pubkey.verify(sa.conn, msg, sa.remote_id, expected, base_method(sa.choice.auth_method), now)

    def verify_hash(self, msg: Message, id_body: bytes | None = None) -> None:
        """Check the peer's HASH_I or HASH_R over its ID payload body as it was on the wire (taken
        from ``msg`` unless given: Aggressive Mode's AM3 carries no ID)."""
        if id_body is None:
            id_raw = msg.raw_of(IdPayload)
            if id_raw is None:
                raise PeerError(NotifyType.PAYLOAD_MALFORMED, "ID payload missing")
            id_body = id_raw.body
        got = msg.first(HashPayload)
        if got is None:
            raise PeerError(NotifyType.PAYLOAD_MALFORMED, "HASH payload missing")
        expected = self.auth_hash(not self.sa.initiator, id_body)
        if not hmac.compare_digest(expected, got.data):
            which = "HASH_R" if self.sa.initiator else "HASH_I"
            if self.pke.method is not None:
                raise AuthenticationError(
                    NotifyType.AUTHENTICATION_FAILED,
                    f"{which} mismatch: the peer does not know the nonce we encrypted to its key "
                    f"({self.pke.peer_key.name if self.pke.peer_key else '?'}): not the holder of that "
                    "key, or a nonce was tampered with",
                )
            raise AuthenticationError(
                NotifyType.AUTHENTICATION_FAILED,
                f"{which} mismatch: the peer's {which} is not the one computed with the pre-shared key "
                f"found for {self.psk_ids or 'the connection'} over its ID payload: wrong pre-shared "
                "key (or the peer used another key for another ID)?",
            )

    # ---- the final message again ------------------------------------------------------------

    def keep_final(self, ciphertext: bytes | None) -> None:
        """Responder, before the IV chain moves: remember the IV that decrypted the initiator's
        final message (MM5, an encrypted AM3) and that message, for :meth:`final_variant`."""
        c = self.sa.crypto
        if ciphertext is not None and c is not None:
            self.final = (c.iv.iv_for(0), ciphertext)

    def final_variant(
        self, data: bytes, rules: dict[int, Rule], what: str, now: float, id_body: bytes | None = None
    ) -> bytes | None:
        """Responder, phase 1 complete: ``data`` is another form of the final message (a copy whose
        unauthenticated padding was altered may have come first). If it decrypts with the same IV
        and authenticates, its ciphertext is returned: the caller offers its last block to the IV
        chain as an alternative end of phase 1, which the peer's first phase 2 message settles."""
        if self.final is None or self.sa.initiator:
            return None
        iv, accepted = self.final
        try:
            msg, ciphertext = crypt.decrypt_with(self.sa, data, iv)
            if ciphertext == accepted:
                return None
            check_payloads(msg.types(), rules, what, allow_others=_FINAL_OTHERS)
            self.verify_auth(msg, now, id_body)
        except (DecodeError, PeerError):
            return None
        self.ctx.tracer.emit("ike", "final_message_variant", sa=self.sa.unique_id, msg=what)
        return ciphertext

    def established(self, now: float) -> None:
        sa = self.sa
        assert sa.conn is not None and sa.choice is not None
        sa.state = IkeState.ESTABLISHED
        sa.established_at = now
        self.dh = None  # forward secrecy: the DH private value and the PSK are not kept
        self.psk = None
        self.ctx.emit(
            IkeSaEstablished(
                sa.unique_id,
                sa.conn.name,
                sa.local,
                sa.remote,
                str(sa.local_id),
                str(sa.remote_id),
                sa.initiator,
                sa.aggressive,
                describe_choice(sa.choice),
                sa.choice.lifetime,
                bool(sa.nat and sa.nat.local_behind),
                bool(sa.nat and sa.nat.remote_behind),
                sa.icookie,
                sa.rcookie,
            )
        )
        self.ctx.tracer.emit("ike", "ike_sa_established", sa=sa.unique_id, conn=sa.conn.name)
        tell_lifetime(sa, self.ctx)


def tell_lifetime(sa: IkeSa, ctx: Context) -> None:
    """A responder running with shorter ISAKMP SA lifetimes than the initiator offered tells it
    (RFC 2407 4.6.3.1): once established, and a gateway again after a successful XAUTH round
    (remote_access.py; vpnc, renewing its ISAKMP SA, waits for this notify there)."""
    if sa.initiator or sa.choice is None or not sa.choice.lowered:
        return
    notify = ike_responder_lifetime(sa.icookie + sa.rcookie, sa.choice.lifetime, sa.choice.life_kilobytes)
    informational.send(sa, ctx, [notify])
    ctx.tracer.emit(
        "ike",
        "responder_lifetime_sent",
        sa=sa.unique_id,
        seconds=sa.choice.lifetime,
        kilobytes=sa.choice.life_kilobytes,
    )


def describe_choice(c: IkeChoice) -> str:
    return format_ike_proposal(c.proposal)


def _identity_of(p: IdPayload) -> Identity:
    if (p.id_type == IdType.IPV4_ADDR and len(p.data) != 4) or (
        p.id_type == IdType.IPV6_ADDR and len(p.data) != 16
    ):
        raise PeerError(NotifyType.INVALID_ID_INFORMATION, f"address ID of {len(p.data)} bytes")
    if p.id_type in (IdType.IPV4_ADDR, IdType.IPV6_ADDR):
        return Identity.from_address(ipaddress.ip_address(p.data))
    return Identity(p.id_type, p.data)
