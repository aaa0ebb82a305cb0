"""UDP encapsulation of ESP (RFC 3948).

The UDP payload is the ESP packet itself (RFC 3948 2.1); the driver owns the UDP socket (port
4500) and passes ESP bytes with the UDP ports to :meth:`Processor.inbound`, and sends what
:class:`~snakeswan.ipsec.events.SendUdp` says. IKE on the same port carries the 4-byte non-ESP
marker (RFC 3948 2.2) and a single 0xff byte is a NAT-keepalive (2.3): :func:`classify` tells
them apart (the IKE driver already strips the marker).

Transport mode behind a NAT (RFC 3948 3.1.2): the peer computed its TCP/UDP checksum with its own
(original) addresses, which a NAT changed on the way. When the SA knows the original addresses
(NAT-OA), :func:`fix_checksum` updates the checksum incrementally (RFC 1624, eqn. 3) for the
addresses the decapsulated packet carries; without them the checksum is left alone (tunnel mode
needs nothing: the inner packet is untouched).
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = [
    "NAT_T_PORT",
    "NON_ESP_MARKER",
    "classify",
    "fix_checksum",
    "incremental_update",
]

NAT_T_PORT: Final = 4500
NON_ESP_MARKER: Final = b"\0\0\0\0"
_U16 = struct.Struct("!H")
_CHECKSUM_OFFSET: Final = {6: 16, 17: 6, 136: 6}  # TCP, UDP, UDP-Lite


def classify(udp_payload: bytes) -> str:
    """``"keepalive"`` (0xff), ``"ike"`` (non-ESP marker), ``"esp"`` or ``"invalid"``."""
    if udp_payload == b"\xff":
        return "keepalive"
    if len(udp_payload) < 8:
        return "invalid"
    if udp_payload[:4] == NON_ESP_MARKER:
        return "ike"
    return "esp"


def _words(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def incremental_update(check: int, old: bytes, new: bytes) -> int:
    """RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') for every 16-bit word m of ``old`` replaced by the
    word m' of ``new`` (equal lengths, even)."""
    total = ~check & 0xFFFF
    for m, m_new in zip(_words(old), _words(new), strict=True):
        total += (~m & 0xFFFF) + m_new
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def fix_checksum(payload: bytes, protocol: int, old_addresses: bytes, new_addresses: bytes) -> bytes:
    """``payload`` (a TCP or UDP segment) with its checksum updated for the pseudo header's
    addresses changing from ``old_addresses`` to ``new_addresses`` (source | destination, packed).

    Other protocols, truncated segments and an IPv4 UDP checksum of 0 (none) are returned as they
    are.
    """
    offset = _CHECKSUM_OFFSET.get(protocol)
    if offset is None or len(payload) < offset + 2 or old_addresses == new_addresses:
        return payload
    (check,) = _U16.unpack_from(payload, offset)
    if protocol == 17 and check == 0 and len(old_addresses) == 8:
        return payload  # IPv4 UDP without a checksum
    updated = incremental_update(check, old_addresses, new_addresses)
    if protocol == 17 and updated == 0:
        updated = 0xFFFF  # RFC 768: a computed 0 is sent as all ones
    return payload[:offset] + _U16.pack(updated) + payload[offset + 2 :]
