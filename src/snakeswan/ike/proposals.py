"""SA payloads from configured proposals, and proposal selection.

Phase 1 lifetimes are lenient by default: a transform whose lifetime (seconds or kilobytes) is
longer than ours is accepted and run with ours (the shorter), and once the ISAKMP SA is up the
initiator is told with a RESPONDER-LIFETIME notify (RFC 2407 4.6.3.1, as Cisco IOS sends it for
phase 1). That is what interoperates: Libreswan offers 8 h, vpnc 2,147,483 s. A connection with
``ike_lifetime_check = "strict"`` refuses such a transform instead (Cisco ASA's behaviour, and
what RFC 2409 5 reads as "the responder MUST NOT change attributes"). A peer that proposes no
volume limit gets ours, enforced locally.
Phase 2 lifetimes are always lenient (a longer one is lowered to ours and answered with a
RESPONDER-LIFETIME notify; a shorter one is taken), as RFC 2407 4.5.4 describes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from snakeswan.config.model import ChildProposal, IkeProposal
from snakeswan.errors import PeerError
from snakeswan.ike.mismatch import explain_child_transform, explain_ike_transform
from snakeswan.wire.attributes import Attribute, decode_attributes, find
from snakeswan.wire.buffer import Reader, Writer
from snakeswan.wire.enums import (
    IkeAttr,
    IkeEncryption,
    IkeTransformId,
    IpsecAttr,
    LifeType,
    NotifyType,
    ProtocolId,
)
from snakeswan.wire.payloads import NotifyPayload, Proposal, SaPayload, Transform

# ---- phase 1 -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IkeChoice:
    """One acceptable phase 1 transform: the algorithms, auth method and the lifetimes to use."""

    proposal: IkeProposal
    auth_method: int
    lifetime: int  # seconds
    life_kilobytes: int | None
    transform: Transform  # as the initiator sent it (echoed in MM2/AM2)
    lowered: bool = False  # responder: the initiator offered longer lifetimes; we run with ours


def ike_transform(
    number: int, p: IkeProposal, auth_method: int, lifetime: int, kilobytes: int | None = None
) -> Transform:
    attrs = [Attribute.basic(IkeAttr.ENCRYPTION_ALGORITHM, p.encryption)]
    if p.key_length is not None:
        attrs.append(Attribute.basic(IkeAttr.KEY_LENGTH, p.key_length))
    attrs += [
        Attribute.basic(IkeAttr.HASH_ALGORITHM, p.hash),
        Attribute.basic(IkeAttr.AUTHENTICATION_METHOD, auth_method),
        Attribute.basic(IkeAttr.GROUP_DESCRIPTION, p.group),
        Attribute.basic(IkeAttr.LIFE_TYPE, LifeType.SECONDS),
        Attribute.integer(IkeAttr.LIFE_DURATION, lifetime),
    ]
    if kilobytes is not None:
        attrs += [
            Attribute.basic(IkeAttr.LIFE_TYPE, LifeType.KILOBYTES),
            Attribute.integer(IkeAttr.LIFE_DURATION, kilobytes),
        ]
    return Transform(number, IkeTransformId.KEY_IKE, tuple(attrs))


def ike_sa_payload(
    proposals: Sequence[IkeProposal], auth_method: int, lifetime: int, kilobytes: int | None = None
) -> SaPayload:
    """MM1/AM1: one ISAKMP proposal whose transforms are our proposals, in order of preference."""
    transforms = tuple(
        ike_transform(i + 1, p, auth_method, lifetime, kilobytes) for i, p in enumerate(proposals)
    )
    return SaPayload((Proposal(1, ProtocolId.ISAKMP, b"", transforms),))


def _lifetimes(attrs: Sequence[Attribute], type_attr: int, dur_attr: int) -> tuple[int | None, int | None]:
    """(seconds, kilobytes) from LIFE_TYPE/LIFE_DURATION pairs (each type applies to the next duration)."""
    seconds = kilobytes = None
    current: int | None = None
    for a in attrs:
        if a.type == type_attr:
            current = a.as_int()
        elif a.type == dur_attr and current is not None:
            if current == LifeType.SECONDS:
                seconds = a.as_int()
            elif current == LifeType.KILOBYTES:
                kilobytes = a.as_int()
    return seconds, kilobytes


def parse_ike_transform(t: Transform) -> tuple[IkeProposal, int, int | None, int | None] | None:
    """(proposal, auth method, seconds, kilobytes) or None if an essential attribute is missing."""
    known = {int(x) for x in IkeAttr}
    if any(a.type not in known for a in t.attributes):
        return None
    vals = {a.type: a for a in t.attributes}
    needed = (IkeAttr.ENCRYPTION_ALGORITHM, IkeAttr.HASH_ALGORITHM, IkeAttr.AUTHENTICATION_METHOD)
    if any(n not in vals for n in needed) or IkeAttr.GROUP_DESCRIPTION not in vals:
        return None
    encr = vals[IkeAttr.ENCRYPTION_ALGORITHM].as_int()
    keylen_attr = vals.get(IkeAttr.KEY_LENGTH)
    keylen = keylen_attr.as_int() if keylen_attr else None
    if encr == IkeEncryption.AES_CBC and keylen is None:
        keylen = 128  # RFC 3602: no Key Length attribute means 128 bits
    p = IkeProposal(
        encr, keylen, vals[IkeAttr.HASH_ALGORITHM].as_int(), vals[IkeAttr.GROUP_DESCRIPTION].as_int()
    )
    seconds, kb = _lifetimes(t.attributes, IkeAttr.LIFE_TYPE, IkeAttr.LIFE_DURATION)
    return p, vals[IkeAttr.AUTHENTICATION_METHOD].as_int(), seconds, kb


def _same_ike(a: IkeProposal, b: IkeProposal) -> bool:
    def norm(p: IkeProposal) -> IkeProposal:
        if p.encryption == IkeEncryption.AES_CBC and p.key_length is None:
            return IkeProposal(p.encryption, 128, p.hash, p.group)
        return p

    return norm(a) == norm(b)


def select_ike(
    offered: SaPayload,
    ours: Sequence[IkeProposal],
    auth_methods: Sequence[int],
    lifetime: int,
    kilobytes: int | None = None,
    *,
    strict: bool = False,
) -> IkeChoice:
    """Responder: the first of the initiator's transforms that we accept, in the initiator's order.

    A transform proposing a lifetime longer than ``lifetime`` (or a volume above ``kilobytes``) is
    run with ours (``lowered``: the caller tells the peer), or not acceptable when ``strict``.
    """
    reasons: list[str] = []
    for prop in offered.proposals:
        if prop.protocol != ProtocolId.ISAKMP:
            reasons.append(f"proposal {prop.number}: protocol {prop.protocol} is not ISAKMP")
            continue
        for t in prop.transforms:
            parsed = parse_ike_transform(t)
            if parsed is None:
                reasons.append(f"transform {t.number}: unknown or missing attributes")
                continue
            p, auth, seconds, kb = parsed
            why = (t.number, p, auth, seconds, kb, ours, auth_methods, lifetime, kilobytes)
            if auth not in auth_methods:
                reasons.append(explain_ike_transform(*why))
                continue
            if not any(_same_ike(p, o) for o in ours):
                reasons.append(explain_ike_transform(*why))
                continue
            longer_s = seconds is not None and seconds > lifetime
            longer_kb = kb is not None and kilobytes is not None and kb > kilobytes
            if strict and (longer_s or longer_kb):  # ike_lifetime_check = "strict"
                reasons.append(explain_ike_transform(*why))
                continue
            use_s = lifetime if seconds is None or longer_s else seconds
            use_kb = kilobytes if kb is None or longer_kb else kb
            return IkeChoice(p, auth, use_s, use_kb, t, longer_s or longer_kb)
    raise PeerError(NotifyType.NO_PROPOSAL_CHOSEN, "no acceptable ISAKMP proposal: " + "; ".join(reasons))


def check_ike_reply(
    reply: SaPayload, offered: SaPayload, lifetime: int, kilobytes: int | None = None
) -> IkeChoice:
    """Initiator: the responder must have chosen exactly one of the transforms we offered."""
    if len(reply.proposals) != 1 or len(reply.proposals[0].transforms) != 1:
        raise PeerError(
            NotifyType.BAD_PROPOSAL_SYNTAX, "responder's SA must hold one proposal, one transform"
        )
    parsed = parse_ike_transform(reply.proposals[0].transforms[0])
    if parsed is None:
        raise PeerError(NotifyType.ATTRIBUTES_NOT_SUPPORTED, "responder's transform has unknown attributes")
    p, auth, seconds, kb = parsed
    for t in offered.proposals[0].transforms:
        mine = parse_ike_transform(t)
        if mine is not None and _same_ike(mine[0], p) and mine[1] == auth:
            if seconds is not None and seconds > lifetime:
                raise PeerError(NotifyType.NO_PROPOSAL_CHOSEN, f"responder raised the lifetime to {seconds}s")
            if kb is not None and kilobytes is not None and kb > kilobytes:
                raise PeerError(NotifyType.NO_PROPOSAL_CHOSEN, f"responder raised the volume to {kb} KiB")
            return IkeChoice(p, auth, seconds if seconds is not None else lifetime, kb or kilobytes, t)
    ours = [x for t in offered.proposals[0].transforms if (x := parse_ike_transform(t)) is not None]
    why = explain_ike_transform(
        reply.proposals[0].transforms[0].number, p, auth, seconds, kb,
        [x[0] for x in ours], sorted({x[1] for x in ours}), lifetime, kilobytes,
    )  # fmt: skip
    raise PeerError(NotifyType.NO_PROPOSAL_CHOSEN, f"responder chose a transform we did not offer: {why}")


# ---- phase 2 -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChildChoice:
    """The accepted phase 2 transform with the lifetimes both ends will use."""

    proposal: ChildProposal
    mode_attr: int  # encapsulation mode attribute value as negotiated
    life_seconds: int | None
    life_kilobytes: int | None
    peer_spi: bytes  # the SPI the peer put in its proposal (its inbound SPI)
    number: int
    transform: Transform
    lowered: bool  # we lowered the initiator's lifetime (send RESPONDER-LIFETIME)


def child_transform(
    number: int, p: ChildProposal, mode_attr: int, seconds: int | None, kilobytes: int | None
) -> Transform:
    attrs: list[Attribute] = []
    if seconds is not None:
        attrs += [Attribute.basic(IpsecAttr.SA_LIFE_TYPE, LifeType.SECONDS)]
        attrs += [Attribute.integer(IpsecAttr.SA_LIFE_DURATION, seconds)]
    if kilobytes is not None:
        attrs += [Attribute.basic(IpsecAttr.SA_LIFE_TYPE, LifeType.KILOBYTES)]
        attrs += [Attribute.integer(IpsecAttr.SA_LIFE_DURATION, kilobytes)]
    if p.pfs_group is not None:
        attrs.append(Attribute.basic(IpsecAttr.GROUP_DESCRIPTION, p.pfs_group))
    attrs.append(Attribute.basic(IpsecAttr.ENCAPSULATION_MODE, mode_attr))
    if p.auth is not None:
        attrs.append(Attribute.basic(IpsecAttr.AUTHENTICATION_ALGORITHM, p.auth))
    if p.key_length is not None:
        attrs.append(Attribute.basic(IpsecAttr.KEY_LENGTH, p.key_length))
    if p.esn:
        attrs.append(Attribute.basic(IpsecAttr.EXTENDED_SEQUENCE_NUMBER, 1))
    return Transform(number, p.transform_id, tuple(attrs))


def child_sa_payload(
    proposals: Sequence[ChildProposal], spi: bytes, mode_attr: int, seconds: int | None, kilobytes: int | None
) -> SaPayload:
    """QM1: one proposal per protocol; its transforms are our proposals of that protocol in order."""
    protocol = proposals[0].protocol
    transforms = tuple(
        child_transform(i + 1, p, mode_attr, seconds, kilobytes)
        for i, p in enumerate(q for q in proposals if q.protocol == protocol)
    )
    return SaPayload((Proposal(1, protocol, spi, transforms),))


def parse_child_transform(
    protocol: int, t: Transform
) -> tuple[ChildProposal, int, int | None, int | None] | None:
    """(proposal, encapsulation mode, seconds, kilobytes), or None when an attribute is unknown."""
    known = {int(x) for x in IpsecAttr}
    if any(a.type not in known for a in t.attributes):
        return None
    group = find(t.attributes, IpsecAttr.GROUP_DESCRIPTION)
    mode = find(t.attributes, IpsecAttr.ENCAPSULATION_MODE)
    auth = find(t.attributes, IpsecAttr.AUTHENTICATION_ALGORITHM)
    keylen = find(t.attributes, IpsecAttr.KEY_LENGTH)
    esn = find(t.attributes, IpsecAttr.EXTENDED_SEQUENCE_NUMBER)
    seconds, kb = _lifetimes(t.attributes, IpsecAttr.SA_LIFE_TYPE, IpsecAttr.SA_LIFE_DURATION)
    p = ChildProposal(
        protocol,
        t.transform_id,
        keylen.as_int() if keylen else None,
        auth.as_int() if auth else None,
        group.as_int() if group else None,
        bool(esn and esn.as_int()),
    )
    return p, mode.as_int() if mode else 1, seconds, kb


def _same_child(a: ChildProposal, b: ChildProposal) -> bool:
    return (a.protocol, a.transform_id, a.key_length, a.auth, a.pfs_group, a.esn) == (
        b.protocol,
        b.transform_id,
        b.key_length,
        b.auth,
        b.pfs_group,
        b.esn,
    )


def select_child(
    offered: SaPayload,
    ours: Sequence[ChildProposal],
    acceptable_modes: Sequence[int],
    seconds: int | None,
    kilobytes: int | None,
) -> ChildChoice:
    """Responder: the first acceptable transform in the initiator's order; lifetimes lenient."""
    reasons: list[str] = []
    numbers = [p.number for p in offered.proposals]
    for prop in offered.proposals:
        if numbers.count(prop.number) > 1:
            reasons.append(f"proposal {prop.number}: SA bundles (AH+ESP) are not supported")
            continue
        if len(prop.spi) != 4:
            reasons.append(f"proposal {prop.number}: SPI of {len(prop.spi)} bytes")
            continue
        for t in prop.transforms:
            parsed = parse_child_transform(prop.protocol, t)
            if parsed is None:
                reasons.append(f"transform {t.number}: unknown attributes")
                continue
            p, mode, their_s, their_kb = parsed
            why = (t.number, p, mode, their_s, ours, acceptable_modes, seconds)
            if not any(_same_child(p, o) for o in ours):
                reasons.append(explain_child_transform(*why))
                continue
            if mode not in acceptable_modes:
                reasons.append(explain_child_transform(*why))
                continue
            use_s, low_s = _lenient(their_s, seconds)
            use_kb, low_kb = _lenient(their_kb, kilobytes)
            return ChildChoice(p, mode, use_s, use_kb, prop.spi, prop.number, t, low_s or low_kb)
    raise PeerError(NotifyType.NO_PROPOSAL_CHOSEN, "no acceptable IPsec proposal: " + "; ".join(reasons))


def _lenient(theirs: int | None, ours: int | None) -> tuple[int | None, bool]:
    if theirs is None:
        return ours, ours is not None
    if ours is not None and theirs > ours:
        return ours, True
    return theirs, False


def check_child_reply(
    reply: SaPayload, ours: Sequence[ChildProposal], seconds: int | None, kilobytes: int | None
) -> ChildChoice:
    """Initiator: the responder's SA must be one of our transforms; its SPI is our outbound SPI."""
    if len(reply.proposals) != 1 or len(reply.proposals[0].transforms) != 1:
        raise PeerError(
            NotifyType.BAD_PROPOSAL_SYNTAX, "responder's SA must hold one proposal, one transform"
        )
    prop = reply.proposals[0]
    if len(prop.spi) != 4:
        raise PeerError(NotifyType.INVALID_SPI, f"responder's SPI has {len(prop.spi)} bytes")
    t = prop.transforms[0]
    parsed = parse_child_transform(prop.protocol, t)
    if parsed is None:
        raise PeerError(NotifyType.NO_PROPOSAL_CHOSEN, "responder chose an IPsec transform we did not offer")
    if not any(_same_child(parsed[0], o) for o in ours):
        why = explain_child_transform(t.number, parsed[0], parsed[1], parsed[2], ours, [parsed[1]], seconds)
        raise PeerError(
            NotifyType.NO_PROPOSAL_CHOSEN, f"responder chose an IPsec transform we did not offer: {why}"
        )
    p, mode, their_s, their_kb = parsed
    use_s = min(x for x in (their_s, seconds) if x is not None) if (their_s or seconds) else None
    use_kb = min(x for x in (their_kb, kilobytes) if x is not None) if (their_kb or kilobytes) else None
    return ChildChoice(p, mode, use_s, use_kb, prop.spi, prop.number, t, False)


def responder_lifetime(
    protocol: int, spi: bytes, seconds: int | None, kilobytes: int | None
) -> NotifyPayload:
    """RESPONDER-LIFETIME (RFC 2407 4.6.3.1) carrying the lifetimes we lowered to."""
    attrs: list[Attribute] = []
    if seconds is not None:
        attrs += [Attribute.basic(IpsecAttr.SA_LIFE_TYPE, LifeType.SECONDS)]
        attrs += [Attribute.integer(IpsecAttr.SA_LIFE_DURATION, seconds)]
    if kilobytes is not None:
        attrs += [Attribute.basic(IpsecAttr.SA_LIFE_TYPE, LifeType.KILOBYTES)]
        attrs += [Attribute.integer(IpsecAttr.SA_LIFE_DURATION, kilobytes)]
    data = b"".join(_enc(a) for a in attrs)
    return NotifyPayload(NotifyType.RESPONDER_LIFETIME, protocol, spi, data)


def ike_responder_lifetime(spi: bytes, seconds: int, kilobytes: int | None) -> NotifyPayload:
    """RESPONDER-LIFETIME for the ISAKMP SA (protocol ISAKMP, SPI = both cookies), with phase 1
    attribute numbers (Life Type 11, Life Duration 12), as Cisco IOS sends it."""
    attrs = [
        Attribute.basic(IkeAttr.LIFE_TYPE, LifeType.SECONDS),
        Attribute.integer(IkeAttr.LIFE_DURATION, seconds),
    ]
    if kilobytes is not None:
        attrs += [
            Attribute.basic(IkeAttr.LIFE_TYPE, LifeType.KILOBYTES),
            Attribute.integer(IkeAttr.LIFE_DURATION, kilobytes),
        ]
    return NotifyPayload(
        NotifyType.RESPONDER_LIFETIME, ProtocolId.ISAKMP, spi, b"".join(_enc(a) for a in attrs)
    )


def parse_ike_responder_lifetime(data: bytes) -> tuple[int | None, int | None]:
    """(seconds, kilobytes) of a phase 1 RESPONDER-LIFETIME notify (DecodeError if malformed)."""
    return _lifetimes(
        decode_attributes(Reader(data, where="RESPONDER-LIFETIME")), IkeAttr.LIFE_TYPE, IkeAttr.LIFE_DURATION
    )


def _enc(a: Attribute) -> bytes:
    w = Writer()
    a.encode(w)
    return w.getvalue()


def apply_responder_lifetime(
    data: bytes, seconds: int | None, kilobytes: int | None
) -> tuple[int | None, int | None]:
    """Initiator: take the lower lifetimes a RESPONDER-LIFETIME notify announces."""
    s, kb = _lifetimes(decode_attributes(Reader(data, where="RESPONDER-LIFETIME")), 1, 2)
    if s is not None:
        seconds = s if seconds is None else min(s, seconds)
    if kb is not None:
        kilobytes = kb if kilobytes is None else min(kb, kilobytes)
    return seconds, kilobytes
