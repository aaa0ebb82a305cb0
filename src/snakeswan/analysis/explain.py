"""What each message and step of a negotiation is for, in the terms of the references
(/work/shared/reference: the Main Mode walk-through, the IPsec chapter's message-by-message
account, Quick Mode with PFS): cookies, SA offer, KE/nonce, NAT-D, ID+HASH, Quick Mode HASH(1..3),
Transaction, Informational. ``explain(entry)`` returns one or two sentences, or None when a record
needs no gloss.
"""

from __future__ import annotations

from snakeswan.analysis.records import Entry

MESSAGES: dict[str, str] = {
    "MM1": "Main Mode 1/6, initiator: the SA offer. The header carries the initiator's cookie (the "
    "responder's is still zero: the cookie pair will name this ISAKMP SA); the SA payload lists the "
    "proposed transforms (encryption, hash, auth method, DH group, lifetime); vendor IDs announce "
    "NAT-T, DPD, XAUTH.",
    "MM2": "Main Mode 2/6, responder: its cookie and the ONE transform it accepted from the offer (every "
    "attribute must match; the IKE lifetime may not be longer than its own).",
    "MM3": "Main Mode 3/6, initiator: KE (its Diffie-Hellman public value g^x) and Ni (its nonce); NAT-D "
    "hashes of addresses and ports let both ends see a NAT on the way.",
    "MM4": "Main Mode 4/6, responder: KE (g^y) and Nr, NAT-D. Both ends now compute g^xy and SKEYID "
    "(pre-shared key: prf(PSK, Ni_b | Nr_b)), then SKEYID_d (phase 2 keys), SKEYID_a (hashes), SKEYID_e "
    "(encryption). The PSK must be chosen by the peer's address: its ID has not been seen yet.",
    "MM5": "Main Mode 5/6, initiator, encrypted with SKEYID_e: IDii and HASH_I = prf(SKEYID, g^xi | g^xr | "
    "CKY-I | CKY-R | SAi_b | IDii_b) (or CERT and SIG over it): proof that it holds the key.",
    "MM6": "Main Mode 6/6, responder, encrypted: IDir and HASH_R (or CERT and SIG): its proof. The ISAKMP "
    "SA (phase 1) is up.",
    "AM1": "Aggressive Mode 1/3, initiator: SA offer (one DH group only), KE, Ni and IDii in one clear "
    "message: the identity travels unencrypted.",
    "AM2": "Aggressive Mode 2/3, responder: the chosen transform, KE, Nr, IDir and HASH_R (or SIG): the "
    "responder authenticates itself before the initiator did.",
    "AM3": "Aggressive Mode 3/3, initiator: HASH_I (or SIG), the initiator's proof. The ISAKMP SA is up.",
    "QM1": "Quick Mode 1/3, initiator, encrypted under the ISAKMP SA: HASH(1) = prf(SKEYID_a, M-ID | SA | "
    "Ni [| KE] [| IDci | IDcr]) authenticates it; the ESP/AH offer with the initiator's inbound SPI; "
    "Ni; KE when PFS asks for a fresh DH; IDci/IDcr, the proxy IDs (which traffic the SAs carry).",
    "QM2": "Quick Mode 2/3, responder: HASH(2) = prf(SKEYID_a, M-ID | Ni_b | SA | Nr [| KE] [| IDs]); the "
    "chosen transform and the responder's SPI; Nr [, KE]; the proxy IDs. IPsec lifetimes are lenient: "
    "a longer one is lowered (RESPONDER-LIFETIME).",
    "QM3": "Quick Mode 3/3, initiator: HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b) proves it is live "
    "and received QM2. KEYMAT = prf(SKEYID_d, [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b), one per "
    "direction: the two IPsec SAs are up.",
}

PAYLOADS: dict[str, str] = {
    "SA": "security association (proposals and transforms)",
    "KE": "key exchange (DH public value)",
    "No": "nonce",
    "ID": "identification",
    "HASH": "hash (authenticates the message or the peer)",
    "SIG": "signature",
    "CERT": "certificate",
    "CR": "certificate request",
    "N": "notification",
    "D": "delete",
    "V": "vendor ID",
    "NAT-D": "NAT discovery hash",
    "NAT-OA": "NAT original address",
    "ATTR": "configuration attributes",
}

NOTIFIES: dict[str, str] = {
    "R_U_THERE": "Dead Peer Detection probe (RFC 3706): are you there?",
    "R_U_THERE_ACK": "Dead Peer Detection answer: still here.",
    "INITIAL_CONTACT": "the sender has no other SA with us (it rebooted): older SAs with it are stale.",
    "RESPONDER_LIFETIME": "the responder lowered the IPsec SA lifetime to its own.",
    "NO_PROPOSAL_CHOSEN": "none of the offered proposals was acceptable.",
    "AUTHENTICATION_FAILED": "the peer's proof (HASH or signature) did not check, or no key for it.",
    "INVALID_ID_INFORMATION": "an ID (phase 1 identity or Quick Mode proxy ID) was not acceptable.",
}


def _transaction(msg: str) -> str:
    return (
        f"Transaction exchange ({msg}): HASH = prf(SKEYID_a, M-ID | ATTR) protects it; XAUTH asks for and "
        "checks user and password, Mode Config hands out an address, DNS and split networks."
    )


def _message(msg: str) -> str | None:
    label = msg.split(" ", maxsplit=1)[0]
    if label in MESSAGES:
        return MESSAGES[label]
    if label in ("XAUTH", "ModeCfg") or msg.endswith(("REQUEST", "REPLY", "SET", "ACK", "request")):
        return _transaction(msg)
    return None


def _notifies(text: str) -> list[str]:
    out = []
    for token in text.replace(",", " ").split():
        if token.startswith("N(") and token.endswith(")"):
            name = token[2:-1]
            out.append(f"{name}: {NOTIFIES.get(name, 'notification')}")
        elif token.startswith("D("):
            out.append("Delete: the sender removed these SAs.")
    return out


def explain_message(label: str, payloads: str) -> str | None:
    """A message by its label (``MM1``, ``QM2``, ``INFO``, ``Transaction``) and payload summary."""
    if label == "INFO":
        return "Informational: " + ("; ".join(_notifies(payloads)) or "notification or delete")
    if label == "Transaction":
        return _transaction("XAUTH or Mode Config")
    return _message(label)


def explain(e: Entry) -> str | None:
    """One record, explained; None when there is nothing to add."""
    ev = e.event
    if ev in ("sent", "received"):
        return _message(e.get("msg"))
    if ev == "informational_sent":
        notes = _notifies(e.get("payloads"))
        what = "; ".join(notes) or "Informational exchange"
        prot = " (protected by HASH(1) = prf(SKEYID_a, M-ID | N/D))" if e.get("protected") == "True" else ""
        return f"Informational{prot}: {what}"
    if ev == "notify_received":
        name = e.get("type")
        return f"{name}: {NOTIFIES.get(name, 'notification from the peer')}"
    return _EVENTS.get(ev)


_EVENTS: dict[str, str] = {
    "initiate": "Phase 1 starts: we pick an initiator cookie and send our SA offer.",
    "vendor_ids": "The peer's vendor IDs: which extensions (NAT-T, DPD, XAUTH/Unity) it speaks.",
    "nat_detection": "NAT-D compared: a NAT on the way moves IKE to UDP 4500 and ESP into UDP.",
    "ike_sa_established": "Phase 1 done: the ISAKMP SA protects everything that follows.",
    "child_sa_established": "Phase 2 done: a pair of IPsec SAs (one per direction, each with its SPI).",
    "retransmit": "No answer in time: the last message is sent again (same bytes).",
    "duplicate": "A copy of a message already handled: answered from cache, not processed again.",
    "give_up": "No answer after all retransmissions: the exchange is abandoned.",
    "exchange_failed": "The exchange failed; the reason says which attribute or check, and the peer is told.",
    "message_rejected": "The message did not authenticate and was dropped (anyone could have forged it).",
    "dpd_probe": "Dead Peer Detection: silence for dpd_delay, so we ask R-U-THERE.",
    "dpd_timeout": "Dead Peer Detection: no answer within dpd_timeout; the peer is declared dead.",
    "ike_sa_deleted": "The ISAKMP SA is gone (Delete sent or received, expiry or failure).",
    "ike_rekey": "Phase 1 renewal: a new Main/Aggressive Mode before the ISAKMP SA expires.",
    "responder_lifetime": "The responder lowered our IPsec lifetime (lenient phase 2 rule).",
    "phase1_keys": "Key derivation (RFC 2409 5, appendix B): g^xy from the DH exchange; SKEYID = prf(PSK, "
    "Ni_b | Nr_b) (signatures: prf(Ni_b | Nr_b, g^xy); public key encryption: prf(hash(Ni_b | Nr_b), "
    "CKY-I | CKY-R)); SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0); "
    "SKEYID_a = prf(SKEYID, SKEYID_d | g^xy | CKY-I | CKY-R | 1); SKEYID_e = prf(SKEYID, SKEYID_a | g^xy | "
    "CKY-I | CKY-R | 2); the encryption key is SKEYID_e (expanded if short); IV = hash(g^xi | g^xr).",
    "keymat": "KEYMAT for one SA (RFC 2409 5.5): prf(SKEYID_d, [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b), "
    "expanded K1 | K2 ... with Kn = prf(SKEYID_d, Kn-1 | ...); encryption key first, then integrity.",
    "peer_authenticated": "The peer's certificate chains to a trusted CA, holds its ID and its SIG verifies.",
    "pke_decrypted": "Public key encryption (RFC 2409 5.2/5.3): the peer's nonce and ID, encrypted to our "
    "key, decrypted; only the holder of that key can compute HASH_I/HASH_R now.",
    "pke_connection": "HASH(1) named the key of another of our connections for these addresses: "
    "we answer as that one.",
}
