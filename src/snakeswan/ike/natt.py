"""NAT traversal discovery (RFC 3947): NAT-D payloads for MM3/MM4 and AM1..AM3, and their check."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from snakeswan.crypto.algorithms import HashAlg
from snakeswan.ike.events import Address
from snakeswan.wire.enums import EncapsulationMode, IdType, PayloadType
from snakeswan.wire.payloads import NatDPayload, NatOaPayload


def natd_hash(h: HashAlg, icookie: bytes, rcookie: bytes, addr: Address) -> bytes:
    """HASH = HASH(CKY-I | CKY-R | IP | Port)   (RFC 3947 section 3.2)"""
    ip = ipaddress.ip_address(addr[0]).packed
    return h.digest(icookie + rcookie + ip + addr[1].to_bytes(2, "big"))


def natd_payloads(
    h: HashAlg, icookie: bytes, rcookie: bytes, local: Address, remote: Address, flavour: str
) -> list[NatDPayload]:
    """The first NAT-D is the hash of the peer's address, the second our own (RFC 3947 3.2)."""
    ptype = PayloadType.NAT_D if flavour == "rfc" else PayloadType.NAT_D_DRAFT
    return [
        NatDPayload(natd_hash(h, icookie, rcookie, remote), ptype),
        NatDPayload(natd_hash(h, icookie, rcookie, local), ptype),
    ]


@dataclass(frozen=True, slots=True)
class NatResult:
    local_behind: bool  # our address was changed on the way (we are behind a NAT)
    remote_behind: bool  # the peer's address was changed (the peer is behind a NAT, or fakes one)

    @property
    def any(self) -> bool:
        return self.local_behind or self.remote_behind


def check_natd(
    h: HashAlg, icookie: bytes, rcookie: bytes, received: Sequence[bytes], local: Address, remote: Address
) -> NatResult | None:
    """Compare received NAT-D hashes with the addresses the datagram really had.

    ``received[0]`` hashes the address the sender sent *to* (our address as it saw it), the others the
    addresses it sent *from*. Returns None when the peer sent fewer than two NAT-D payloads.
    """
    if len(received) < 2:
        return None
    ours = natd_hash(h, icookie, rcookie, local)
    theirs = natd_hash(h, icookie, rcookie, remote)
    local_ok = hmac.compare_digest(received[0], ours)
    remote_ok = any(hmac.compare_digest(r, theirs) for r in received[1:])
    return NatResult(local_behind=not local_ok, remote_behind=not remote_ok)


def encap_mode(mode: str, flavour: str | None, encap: bool) -> int:
    """The Quick Mode encapsulation-mode attribute for ``mode`` ("tunnel"|"transport")."""
    if not encap:
        return EncapsulationMode.TUNNEL if mode == "tunnel" else EncapsulationMode.TRANSPORT
    if flavour == "rfc":
        tunnel, transport = (
            EncapsulationMode.UDP_ENCAPSULATED_TUNNEL,
            EncapsulationMode.UDP_ENCAPSULATED_TRANSPORT,
        )
    else:
        tunnel = EncapsulationMode.UDP_ENCAPSULATED_TUNNEL_DRAFT
        transport = EncapsulationMode.UDP_ENCAPSULATED_TRANSPORT_DRAFT
    return tunnel if mode == "tunnel" else transport


def decode_encap_mode(value: int) -> tuple[str, bool] | None:
    """(mode, udp-encapsulated) for an encapsulation-mode attribute value, None if unknown."""
    table = {
        EncapsulationMode.TUNNEL: ("tunnel", False),
        EncapsulationMode.TRANSPORT: ("transport", False),
        EncapsulationMode.UDP_ENCAPSULATED_TUNNEL: ("tunnel", True),
        EncapsulationMode.UDP_ENCAPSULATED_TRANSPORT: ("transport", True),
        EncapsulationMode.UDP_ENCAPSULATED_TUNNEL_DRAFT: ("tunnel", True),
        EncapsulationMode.UDP_ENCAPSULATED_TRANSPORT_DRAFT: ("transport", True),
    }
    return table.get(EncapsulationMode(value)) if value in table else None


def nat_oa(addr: str, flavour: str | None) -> NatOaPayload:
    """NAT-OA carrying ``addr`` (RFC 3947 5.2), sent in transport mode behind a NAT."""
    ip = ipaddress.ip_address(addr)
    id_type = IdType.IPV4_ADDR if ip.version == 4 else IdType.IPV6_ADDR
    ptype = PayloadType.NAT_OA if flavour == "rfc" else PayloadType.NAT_OA_DRAFT
    return NatOaPayload(id_type, ip.packed, ptype)
