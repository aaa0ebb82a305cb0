"""One ISAKMP SA: cookies, addresses, keys once derived, and the exchanges under way."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from snakeswan.config.identity import Identity
from snakeswan.config.model import ConnectionConfig
from snakeswan.crypto.algorithms import CbcCipher, HashAlg
from snakeswan.crypto.ivchain import IvChain
from snakeswan.crypto.keymat import Phase1Keys
from snakeswan.ike.dpd import DpdState
from snakeswan.ike.events import Address, ChildSaInfo
from snakeswan.ike.natt import NatResult

if TYPE_CHECKING:
    from snakeswan.ike.exchange import Exchange
    from snakeswan.ike.proposals import IkeChoice
    from snakeswan.ike.remote_access import RemoteAccess
    from snakeswan.ike.revocation import OcspGate


class IkeState(enum.Enum):
    CONNECTING = "connecting"
    ESTABLISHED = "established"
    DELETED = "deleted"


@dataclass
class Phase1Crypto:
    """Keys of an ISAKMP SA once SKEYID is known (repr hides them)."""

    hash: HashAlg
    cipher: CbcCipher
    keys: Phase1Keys = field(repr=False)
    enc_key: bytes = field(repr=False)
    iv: IvChain = field(repr=False)


@dataclass
class IkeSa:
    unique_id: int
    initiator: bool
    icookie: bytes
    local: Address
    remote: Address
    conn: ConnectionConfig | None = None
    rcookie: bytes = bytes(8)
    state: IkeState = IkeState.CONNECTING
    aggressive: bool = False
    crypto: Phase1Crypto | None = None
    choice: IkeChoice | None = None
    local_id: Identity | None = None
    remote_id: Identity | None = None
    natt_flavour: str | None = None  # "rfc" | "draft" | None: what the peer announced
    nat: NatResult | None = None
    dpd_supported: bool = False
    unity: bool = False  # the peer announced Cisco Unity
    peer_fragmentation: bool = False  # the peer announced IKE fragmentation (ike/fragments.py)
    fragment_id: int = 0  # the last fragment ID we used (one per message cut, 1..65535)
    established_at: float | None = None
    phase1: Exchange | None = None
    exchanges: dict[int, Exchange] = field(default_factory=dict)  # by message ID (Quick Mode, ...)
    children: list[ChildSaInfo] = field(default_factory=list)
    pending_children: list[str] = field(default_factory=list)  # child names to start once established
    seen_mids: dict[int, None] = field(default_factory=dict)  # recent message IDs we used, oldest first
    done_mids: dict[int, None] = field(default_factory=dict)  # completed, forgotten exchanges (ike/linger.py)
    prune_at: float | None = None  # when completed exchanges kept for the peer's retransmissions go
    keepalive_due: float | None = None  # next NAT-T keepalive, when we are behind a NAT
    dpd: DpdState | None = None  # RFC 3706, when configured and the peer announced it
    rekey_at: float | None = None  # renewal by a new Main/Aggressive Mode (initiator only)
    expire_at: float | None = None  # the negotiated ISAKMP SA lifetime ends
    replaces: int | None = None  # the ISAKMP SA this one renews (its children move here)
    protected_bytes: int = 0  # encrypted under this SA, both ways (for a volume lifetime)
    remote_access: RemoteAccess | None = None  # XAUTH / Mode Config rounds, once phase 1 is up
    revocation: OcspGate | None = None  # the OCSP answer about the peer's certificate, awaited
    half_open_until: float | None = None  # a responder SA is dropped then if the peer never answered

    @property
    def ready(self) -> bool:
        """Established, the peer's certificate not waiting for OCSP, and XAUTH / Mode Config (if
        configured) done: Quick Mode may run. Before the rounds have been set up, a connection
        that configures any of them is not ready."""
        if self.state is not IkeState.ESTABLISHED:
            return False
        if self.revocation is not None and not self.revocation.passed:
            return False
        if self.remote_access is not None:
            return self.remote_access.ready
        c = self.conn
        return c is None or not (c.remote_xauth or c.local_xauth or c.pools or c.vips)

    @property
    def cookies(self) -> tuple[bytes, bytes]:
        return self.icookie, self.rcookie

    @property
    def name(self) -> str:
        return self.conn.name if self.conn else "?"

    @property
    def encap(self) -> bool:
        """UDP encapsulation is in effect: a NAT was seen (or faked by the peer), or forced."""
        return bool(self.nat and self.nat.any) or bool(self.conn and self.conn.encap and self.natt_flavour)
