"""AH+ESP bundles in Quick Mode (RFC 2408 4.2, RFC 2409 5.5): one proposal, two protocols.

A child with both ``esp_proposals`` and ``ah_proposals`` offers ONE proposal number carrying two
proposal substructures, AH first and ESP second, each with its own SPI (the sender's inbound SPI
for that protocol) and its transforms as alternatives (RFC 2408 4.2: proposals with the same
number are a logical AND). The responder must take both or neither: it answers with the same
number, the AH and the ESP substructure each holding the one transform it chose and its own SPI.
KEYMAT is computed per protocol and SPI (RFC 2409 5.5: the protocol and SPI are in the prf input),
so each of the four SAs has its own keys. The data plane applies ESP then AH outbound and checks
AH then ESP inbound (:mod:`snakeswan.ipsec.processor`).

AH covers the outer IP header, so a bundle cannot cross a NAT or be UDP-encapsulated (RFC 3948 is
ESP only): a bundle on an ISAKMP SA that encapsulates is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from snakeswan.config.model import ChildProposal
from snakeswan.errors import PeerError
from snakeswan.ike.events import ChildSaInfo
from snakeswan.ike.proposals import ChildChoice, check_child_reply, child_transform, select_child
from snakeswan.wire.enums import NotifyType, ProtocolId
from snakeswan.wire.payloads import DeletePayload, Proposal, SaPayload

AH, ESP = ProtocolId.IPSEC_AH, ProtocolId.IPSEC_ESP


@dataclass(frozen=True, slots=True)
class BundleChoice:
    """The AH and the ESP halves of an accepted bundle."""

    ah: ChildChoice
    esp: ChildChoice


def bundle_sa_payload(
    ah: Sequence[ChildProposal],
    esp: Sequence[ChildProposal],
    ah_spi: bytes,
    esp_spi: bytes,
    mode_attr: int,
    seconds: int | None,
    kilobytes: int | None,
) -> SaPayload:
    """QM1 of a bundle: proposal 1 = AH (our AH proposals as transforms) AND ESP (likewise)."""

    def sub(protocol: int, spi: bytes, proposals: Sequence[ChildProposal]) -> Proposal:
        transforms = tuple(
            child_transform(i + 1, p, mode_attr, seconds, kilobytes) for i, p in enumerate(proposals)
        )
        return Proposal(1, protocol, spi, transforms)

    return SaPayload((sub(AH, ah_spi, ah), sub(ESP, esp_spi, esp)))


def offers_bundle(offered: SaPayload) -> bool:
    """True when some proposal number of ``offered`` carries more than one protocol."""
    numbers = [p.number for p in offered.proposals]
    return len(set(numbers)) != len(numbers)


def select_bundle(
    offered: SaPayload,
    ah: Sequence[ChildProposal],
    esp: Sequence[ChildProposal],
    modes: Sequence[int],
    seconds: int | None,
    kilobytes: int | None,
) -> BundleChoice:
    """Responder: the first proposal number that is exactly AH AND ESP with an acceptable transform
    in each (and the same PFS group in both). PeerError(NO_PROPOSAL_CHOSEN) with the reasons."""
    reasons: list[str] = []
    numbers = list(dict.fromkeys(p.number for p in offered.proposals))
    for number in numbers:
        group = [p for p in offered.proposals if p.number == number]
        protocols = sorted(p.protocol for p in group)
        if protocols != sorted((AH, ESP)):
            reasons.append(f"proposal {number}: protocols {protocols}, a bundle needs AH and ESP")
            continue
        ah_prop = next(p for p in group if p.protocol == AH)
        esp_prop = next(p for p in group if p.protocol == ESP)
        try:
            ah_choice = select_child(SaPayload((ah_prop,)), ah, modes, seconds, kilobytes)
            esp_choice = select_child(SaPayload((esp_prop,)), esp, modes, seconds, kilobytes)
        except PeerError as e:
            reasons.append(f"proposal {number}: {e}")
            continue
        if ah_choice.proposal.pfs_group != esp_choice.proposal.pfs_group:
            reasons.append(f"proposal {number}: AH and ESP transforms with different PFS groups")
            continue
        return BundleChoice(ah_choice, esp_choice)
    raise PeerError(NotifyType.NO_PROPOSAL_CHOSEN, "no acceptable AH+ESP bundle: " + "; ".join(reasons))


def bundle_reply(choice: BundleChoice, ah_spi: bytes, esp_spi: bytes) -> SaPayload:
    """QM2 of a bundle: the chosen number, AH and ESP each with the chosen transform and our SPI."""
    return SaPayload(
        (
            Proposal(choice.ah.number, AH, ah_spi, (choice.ah.transform,)),
            Proposal(choice.esp.number, ESP, esp_spi, (choice.esp.transform,)),
        )
    )


def check_bundle_reply(
    reply: SaPayload,
    ah: Sequence[ChildProposal],
    esp: Sequence[ChildProposal],
    seconds: int | None,
    kilobytes: int | None,
) -> BundleChoice:
    """Initiator: the responder must answer with one AH and one ESP substructure of one number,
    each a transform we offered."""
    props = reply.proposals
    if len(props) != 2 or props[0].number != props[1].number or {p.protocol for p in props} != {AH, ESP}:
        raise PeerError(
            NotifyType.BAD_PROPOSAL_SYNTAX,
            "the reply to an AH+ESP bundle must hold AH and ESP of one proposal",
        )
    ah_prop = next(p for p in props if p.protocol == AH)
    esp_prop = next(p for p in props if p.protocol == ESP)
    return BundleChoice(
        check_child_reply(SaPayload((ah_prop,)), ah, seconds, kilobytes),
        check_child_reply(SaPayload((esp_prop,)), esp, seconds, kilobytes),
    )


def delete_payloads(child: ChildSaInfo) -> list[DeletePayload]:
    """The Delete payloads that end ``child``: its SA, and the AH SA of a bundle."""
    out = [DeletePayload(child.protocol, (child.spi_in.to_bytes(4, "big"),))]
    if child.ah is not None:
        out.append(DeletePayload(AH, (child.ah.spi_in.to_bytes(4, "big"),)))
    return out
