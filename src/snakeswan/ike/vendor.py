"""Vendor ID payloads we send and recognise."""

from __future__ import annotations

from collections.abc import Iterable

NATT_RFC3947 = bytes.fromhex("4a131c81070358455c5728f20e95452f")
NATT_DRAFTS = (
    bytes.fromhex("4df37928e9fc4fd1b3262170d515c662"),  # draft-ietf-ipsec-nat-t-ike-00 (unused by us)
    bytes.fromhex("cd60464335df21f87cfdb2fc68b6a448"),  # draft-ietf-ipsec-nat-t-ike-02
    bytes.fromhex("90cb80913ebb696e086381b5ec427b1f"),  # draft-ietf-ipsec-nat-t-ike-02\n
    bytes.fromhex("7d9419a65310ca6f2c179d9215529d56"),  # draft-ietf-ipsec-nat-t-ike-03
)
DPD = bytes.fromhex("afcad71368a1f1c96b8696fc77570100")  # RFC 3706
XAUTH = bytes.fromhex("09002689dfd6b712")
CISCO_FRAGMENTATION = bytes.fromhex("4048b7d56ebce88525e7de7f00d6c2d3")
CISCO_UNITY = bytes.fromhex("12f5f28c457168a9702d9fe274cc0100")  # Cisco Unity 1.0
STRONGSWAN_PREFIX = bytes.fromhex("882fe56d6fd20dbc2251613b2ebe5beb")

NAMES = {
    NATT_RFC3947: "NAT-T (RFC 3947)",
    NATT_DRAFTS[1]: "draft-ietf-ipsec-nat-t-ike-02",
    NATT_DRAFTS[2]: "draft-ietf-ipsec-nat-t-ike-02\\n",
    NATT_DRAFTS[3]: "draft-ietf-ipsec-nat-t-ike-03",
    DPD: "DPD",
    XAUTH: "XAUTH",
    CISCO_UNITY: "Cisco Unity",
    CISCO_FRAGMENTATION: "FRAGMENTATION",
}

# What we announce in MM1/MM2 (and AM1/AM2): NAT-T in both flavours, and DPD; with XAUTH or
# Mode Config configured also XAUTH and Cisco Unity (Cisco-compatible clients and gateways look
# for them before they speak Transaction exchanges and the Unity attributes).
OURS = (NATT_RFC3947, NATT_DRAFTS[3], NATT_DRAFTS[2], NATT_DRAFTS[1], DPD)
REMOTE_ACCESS = (XAUTH, CISCO_UNITY)


def describe(vid: bytes) -> str:
    if vid in NAMES:
        return NAMES[vid]
    if fragmentation(vid):
        return "FRAGMENTATION"
    if vid.startswith(STRONGSWAN_PREFIX):
        return "strongSwan"
    return vid.hex()


def fragmentation(vid: bytes) -> bool:
    """The FRAGMENTATION vendor ID, also with the capability bits racoon sends after it."""
    return vid[: len(CISCO_FRAGMENTATION)] == CISCO_FRAGMENTATION


def natt_flavour(vids: Iterable[bytes]) -> str | None:
    """``"rfc"`` if the peer announced RFC 3947, ``"draft"`` for draft-02, -02\\n or -03 only (NAT-D
    and NAT-OA as payloads 130/131, the draft encapsulation modes, floating to 4500 as RFC 3947),
    else None."""
    vids = list(vids)
    if NATT_RFC3947 in vids:
        return "rfc"
    if any(v in NATT_DRAFTS[1:] for v in vids):  # draft-00/01 do not float to 4500: not for us
        return "draft"
    return None
