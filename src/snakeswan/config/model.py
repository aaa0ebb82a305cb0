"""The configuration model: frozen dataclasses, the input of the IKE engine and the daemon.

Defaults follow swanctl.conf(5) unless noted; the loader (``config.loader``) fills them in from a
TOML file, but every class can be built directly in code and tests. Times are float seconds.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from snakeswan.config.cluster import ClusterConfig
from snakeswan.config.credentials import Credentials
from snakeswan.config.identity import ANY_IDENTITY, ID_ANY, MATCH_NONE, Identity
from snakeswan.config.traffic import IPAddress, IPNetwork, TrafficSelector
from snakeswan.wire.enums import AuthAlgorithm, DhGroup, EspTransformId, IkeEncryption, IkeHash, ProtocolId

__all__ = [
    "ANY_IDENTITY",
    "CHILD_MODES",
    "DEFAULT_ESP_PROPOSALS",
    "DEFAULT_IKE_PROPOSALS",
    "ID_ANY",
    "SHUNT_MODES",
    "AuthConfig",
    "ChildConfig",
    "ChildProposal",
    "Config",
    "ConnectionConfig",
    "Credentials",
    "DaemonConfig",
    "IPAddress",
    "IPNetwork",
    "Identity",
    "IkeProposal",
    "Pool",
    "PskSecret",
    "Secrets",
    "TrafficSelector",
    "XauthSecret",
]


@dataclass(frozen=True, slots=True)
class IkeProposal:
    """One phase 1 transform: ``IkeEncryption``, key bits (None: fixed size), ``IkeHash``, ``DhGroup``."""

    encryption: int
    key_length: int | None
    hash: int
    group: int


@dataclass(frozen=True, slots=True)
class ChildProposal:
    """One phase 2 transform.

    ``protocol`` is ``ProtocolId.IPSEC_ESP`` (``transform_id`` an ``EspTransformId``) or
    ``ProtocolId.IPSEC_AH`` (``transform_id`` an ``AhTransformId``). ``auth`` is the
    ``AuthAlgorithm`` attribute (None for AEAD ciphers and NULL_AUTH_AES_GMAC); for AH it is the
    algorithm matching the transform ID. ``pfs_group`` None means no PFS in Quick Mode.
    """

    protocol: int
    transform_id: int
    key_length: int | None
    auth: int | None
    pfs_group: int | None
    esn: bool = False


# Default IKE proposals, offered in this order when ``proposals`` is not set (strongSwan's keyword
# ``default``). strongSwan 5.9 builds "default" from AES-CBC 128/192/256, SHA-256/384/512 and ECP/
# MODP >= 3072 groups, but IKEv1 strips all but the first algorithm of each kind. We offer a few
# explicit IKEv1 combinations instead: MODP-3072 first (every IKEv1 stack has MODP), then ECP,
# then MODP-2048 (112-bit strength, still NIST-acceptable) for older peers.
DEFAULT_IKE_PROPOSALS: tuple[IkeProposal, ...] = (
    IkeProposal(IkeEncryption.AES_CBC, 128, IkeHash.SHA2_256, DhGroup.MODP_3072),
    IkeProposal(IkeEncryption.AES_CBC, 256, IkeHash.SHA2_256, DhGroup.MODP_3072),
    IkeProposal(IkeEncryption.AES_CBC, 128, IkeHash.SHA2_256, DhGroup.ECP_256),
    IkeProposal(IkeEncryption.AES_CBC, 256, IkeHash.SHA2_384, DhGroup.ECP_384),
    IkeProposal(IkeEncryption.AES_CBC, 128, IkeHash.SHA2_256, DhGroup.MODP_2048),
)

_ESP = ProtocolId.IPSEC_ESP
CHILD_MODES = ("tunnel", "transport", "pass", "drop")
SHUNT_MODES = ("pass", "drop")
# Default ESP proposals (``esp_proposals`` unset or ``default``): AEAD first like strongSwan's
# default, then AES-CBC with HMAC-SHA-256; no PFS (strongSwan's default has no DH group either).
DEFAULT_ESP_PROPOSALS: tuple[ChildProposal, ...] = (
    ChildProposal(_ESP, EspTransformId.AES_GCM_16, 128, None, None),
    ChildProposal(_ESP, EspTransformId.AES_GCM_16, 256, None, None),
    ChildProposal(_ESP, EspTransformId.AES_CBC, 128, AuthAlgorithm.HMAC_SHA2_256, None),
    ChildProposal(_ESP, EspTransformId.AES_CBC, 256, AuthAlgorithm.HMAC_SHA2_256, None),
)


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """One authentication round of one side (swanctl ``local``/``remote`` sections).

    ``auth``: ``psk``, ``pubkey`` (also ``rsa``/``ecdsa``), ``xauth`` or ``xauth-<backend>``.
    ``id``: the IKE identity; None for ``local`` means "our IP address" (strongSwan's default),
    ``remote`` defaults to ``%any``. ``certs``/``cacerts``/``pubkeys`` are file names as written;
    their contents are in :attr:`Config.credentials` (loaded by the loader). With ``pubkey`` auth
    the loader sets a missing local ``id`` to the subject DN of the first local certificate, as
    strongSwan does; a remote without ``id`` is then ``%any`` (the peer's certificate binds it).
    """

    auth: str = "pubkey"
    id: Identity | None = None
    certs: tuple[str, ...] = ()
    cacerts: tuple[str, ...] = ()
    pubkeys: tuple[str, ...] = ()
    crls: tuple[str, ...] = ()  # remote side: CRL files of the CAs we trust (snakeswan key)
    # remote side, OCSP (RFC 6960) for the peer's certificate: responder URLs to ask, and whether
    # the URL in the certificate's authorityInfoAccess may be asked too (nothing by surprise)
    ocsp_uris: tuple[str, ...] = ()
    ocsp_aia: bool = False
    revocation: str = "relaxed"  # strict | ifuri | relaxed, as swanctl's remote.revocation
    xauth_id: str | None = None
    round: int = 0

    @property
    def method(self) -> str:
        """``auth`` without a backend suffix: ``xauth-pam`` -> ``xauth`` (``pubkey-enc`` stays whole)."""
        return self.auth.split("-", 1)[0] if self.auth.startswith("xauth") else self.auth


@dataclass(frozen=True, slots=True)
class ChildConfig:
    """One phase 2 (CHILD_SA) configuration, ``connections.<conn>.children.<name>``.

    Byte/packet limits are None when unset (no volume limit). ``replay_window`` 32 as swanctl.
    ``mode``: ``tunnel`` or ``transport`` (negotiated), or a shunt policy as swanctl's: ``pass``
    (the traffic goes around the data plane in the clear) or ``drop`` (it is discarded). Shunts are
    installed when the daemon starts and never negotiated; the loader keeps them apart from the
    negotiable children (:attr:`ConnectionConfig.shunts`).
    """

    name: str
    local_ts: tuple[TrafficSelector, ...] = (TrafficSelector.make_dynamic(),)
    remote_ts: tuple[TrafficSelector, ...] = (TrafficSelector.make_dynamic(),)
    esp_proposals: tuple[ChildProposal, ...] = DEFAULT_ESP_PROPOSALS
    ah_proposals: tuple[ChildProposal, ...] = ()
    mode: str = "tunnel"
    rekey_time: float = 3600.0
    life_time: float = 3960.0
    rand_time: float = 360.0
    rekey_bytes: int | None = None
    life_bytes: int | None = None
    rand_bytes: int = 0
    rekey_packets: int | None = None
    life_packets: int | None = None
    rand_packets: int = 0
    start_action: str = "none"
    close_action: str = "none"
    dpd_action: str = "clear"
    replay_window: int = 32
    inactivity: float = 0.0
    reqid: int = 0
    updown: str | None = None
    hostaccess: bool = False
    policies: bool = True
    if_id: int = 0  # route-based (if_id_in = if_id_out): its traffic is what enters ``interface``
    interface: str | None = None

    @property
    def shunt(self) -> bool:
        """A ``pass`` or ``drop`` policy: installed at start, never negotiated."""
        return self.mode in SHUNT_MODES

    @property
    def proposals(self) -> tuple[ChildProposal, ...]:
        """What Quick Mode offers: ESP proposals if any, else AH."""
        return self.esp_proposals or self.ah_proposals

    @property
    def pfs_group(self) -> int | None:
        """The DH group of the first proposal (the one an initiator sends KE for), None without PFS."""
        proposals = self.proposals
        return proposals[0].pfs_group if proposals else None


@dataclass(frozen=True, slots=True)
class ConnectionConfig:
    """One IKE connection, ``connections.<name>``; defaults as swanctl.conf(5).

    ``local_addrs``/``remote_addrs`` are kept as written: addresses, DNS names, CIDR subnets,
    ranges or ``%any``. IKEv1 has no rekeying: ``rekey_time`` is when we re-authenticate, and the
    lifetime we offer/accept is :attr:`ike_lifetime` (as strongSwan's ``phase1.c``).
    ``dpd_timeout`` 0 (swanctl's default) leaves the DPD timeout to the engine's retransmissions.
    ``children`` are negotiated (tunnel/transport); ``shunts`` are the ``pass``/``drop`` children,
    which only the data plane sees (the IKE engine never negotiates or selects them).
    """

    name: str
    local: AuthConfig
    remote: AuthConfig
    local_addrs: tuple[str, ...] = ("%any",)
    remote_addrs: tuple[str, ...] = ("%any",)
    local_port: int = 500
    remote_port: int = 500
    aggressive: bool = False
    proposals: tuple[IkeProposal, ...] = DEFAULT_IKE_PROPOSALS
    rekey_time: float = 14400.0
    reauth_time: float = 0.0
    over_time: float = 1440.0
    rand_time: float = 1440.0
    dpd_delay: float = 0.0
    dpd_timeout: float = 0.0
    ike_life_bytes: int | None = None  # ISAKMP SA volume limit (a snakeswan extension of swanctl.conf)
    # responder: "lenient" runs a longer phase 1 lifetime offered with ours (and says so with a
    # RESPONDER-LIFETIME notify); "strict" refuses it with NO-PROPOSAL-CHOSEN (Cisco ASA)
    ike_lifetime_check: str = "lenient"
    # set the commit bit (RFC 2408 4.6) in our QM1/QM2 (a snakeswan key; a peer's is always honoured)
    commit_bit: bool = False
    local_xauth: AuthConfig | None = None
    remote_xauth: AuthConfig | None = None
    children: tuple[ChildConfig, ...] = ()
    shunts: tuple[ChildConfig, ...] = ()
    encap: bool = False
    fragmentation: str = "yes"
    send_certreq: bool = True
    send_cert: str = "ifasked"
    keyingtries: int = 1
    unique: str = "no"
    pull: bool = True
    vips: tuple[IPAddress, ...] = ()
    pools: tuple[str, ...] = ()

    @property
    def ike_lifetime(self) -> float:
        """ISAKMP SA lifetime to offer and the most to accept: (reauth or rekey time) + over_time."""
        return (self.reauth_time or self.rekey_time) + self.over_time

    @property
    def ike_life_kilobytes(self) -> int | None:
        """The ISAKMP SA volume limit to offer and the most to accept, in kilobytes (None: none)."""
        return -(-self.ike_life_bytes // 1024) if self.ike_life_bytes else None

    def child(self, name: str) -> ChildConfig:
        """The child named ``name``; ``KeyError`` if there is none."""
        for child in self.children:
            if child.name == name:
                return child
        raise KeyError(name)


def first_address(addrs: tuple[str, ...]) -> str | None:
    """The first entry of ``local_addrs``/``remote_addrs`` that is a single IP address (not a name,
    subnet, range or ``%any``), normalised; None if there is none."""
    for a in addrs:
        try:
            return str(ipaddress.ip_address(a))
        except ValueError:
            continue
    return None


@dataclass(frozen=True, slots=True)
class PskSecret:
    """An IKE pre-shared key (``secrets.ike<suffix>``) and the identities it belongs to (none: any)."""

    ids: tuple[Identity, ...]
    secret: bytes = field(repr=False)
    name: str = ""


@dataclass(frozen=True, slots=True)
class XauthSecret:
    """An XAUTH password (``secrets.xauth<suffix>`` / ``eap<suffix>``) for the given user names."""

    ids: tuple[Identity, ...]
    secret: bytes = field(repr=False)
    name: str = ""


def _owner_match(ids: tuple[Identity, ...], identity: Identity) -> int:
    if not ids:
        return 1  # strongSwan's has_owner(): a secret without owners matches anybody (ID_MATCH_ANY)
    return max(owner.matches(identity) for owner in ids)


@dataclass(frozen=True, slots=True)
class Secrets:
    """All secrets, in file order; lookups pick the best match as strongSwan's credential manager."""

    psks: tuple[PskSecret, ...] = ()
    xauth: tuple[XauthSecret, ...] = ()

    def psk_for(self, local: Identity | None, remote: Identity | None) -> bytes | None:
        """The PSK for the pair of identities, or None.

        None or ``%any`` for an identity means unknown (a Main Mode responder does not know the
        peer's ID when it needs the key). Each secret scores ``match(local) + match(remote)``
        (perfect 20, wildcard less, ``%any`` owner or no owners 1); a secret neither of whose
        identities matches is skipped; the highest score wins, the first one written on a tie.
        So: both ids match > one matches > a secret without ids.
        """
        known = [i for i in (local, remote) if i is not None and not i.is_any]
        best: bytes | None = None
        best_score = -1
        for psk in self.psks:
            scores = [_owner_match(psk.ids, identity) for identity in known]
            if known and all(score == MATCH_NONE for score in scores):
                continue
            if sum(scores) > best_score:
                best, best_score = psk.secret, sum(scores)
        return best

    def xauth_for(self, user: str | Identity) -> bytes | None:
        """The XAUTH password of ``user`` (best match as :meth:`psk_for`), or None."""
        identity = Identity.parse(user) if isinstance(user, str) else user
        best: bytes | None = None
        best_score = MATCH_NONE
        for entry in self.xauth:
            score = _owner_match(entry.ids, identity)
            if score > best_score:
                best, best_score = entry.secret, score
        return best


@dataclass(frozen=True, slots=True)
class Pool:
    """A virtual IP pool, ``pools.<name>``: addresses ``start..end`` and Mode Config attributes."""

    name: str
    start: IPAddress
    end: IPAddress
    dns: tuple[IPAddress, ...] = ()
    nbns: tuple[IPAddress, ...] = ()
    split_include: tuple[IPNetwork, ...] = ()
    split_exclude: tuple[IPNetwork, ...] = ()
    banner: str | None = None  # Cisco Unity UNITY_BANNER
    default_domain: str | None = None  # Cisco Unity UNITY_DEF_DOMAIN

    @property
    def size(self) -> int:
        return int(self.end) - int(self.start) + 1


@dataclass(frozen=True, slots=True)
class SheddingBudget:
    """``[daemon] new_sa_*`` (config/_shedding.py): new IKE SAs (MM1/AM1) parsed under a token
    bucket of ``rate`` a second holding ``burst``, a smaller one while the socket has a backlog."""

    rate: float = 2000.0
    burst: int = 2000
    rate_under_load: float = 200.0
    burst_under_load: int = 20


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """``[daemon]``: UDP ports, retransmission (strongswan.conf ``charon.retransmit_*`` defaults)."""

    port: int = 500
    nat_port: int = 4500
    retransmit_timeout: float = 4.0
    retransmit_base: float = 1.8
    retransmit_tries: int = 5
    keep_alive: float = 20.0  # NAT-T keepalive interval (strongswan.conf charon.keep_alive)
    tun: str = "snakeswan0"  # the TUN device of the userspace data plane
    tun_mtu: int = 1400
    tun_offload: bool = True  # TUN offloads (TSO/checksum in, coalesced super-packets out)
    dataplane: bool = True  # false: IKE only (no TUN device, routes or raw sockets)
    # policy routing (as strongSwan's kernel-libipsec setups): the routes into the TUN live in
    # ``route_table``, consulted by the rule "not fwmark <fwmark> lookup <route_table>" at
    # ``route_priority``; the daemon's own IKE/ESP/AH sockets carry ``fwmark`` and so never enter
    # the TUN (transport mode protects traffic to the very address IKE talks to). route_table 0:
    # routes in the main table, no rule (then transport mode and pass shunts cannot work).
    route_table: int = 220
    route_priority: int = 220
    fwmark: int = 0x42
    # anti-clogging (strongSwan: half_open_timeout, init_limit_half_open, block_threshold): a
    # responder SA whose peer has not answered MM2/AM2 is "half-open"; it goes after the timeout,
    # the oldest makes room at the limit, and one address may hold only so many
    half_open_timeout: float = 30.0
    half_open_limit: int = 20000
    half_open_per_source: int = 10
    # overload shedding before parsing (ike/shedding.py): the budget of new IKE SAs
    shedding: SheddingBudget = SheddingBudget()
    # IKE fragmentation (strongswan.conf charon.fragment_size): the largest IP datagram of a fragment
    fragment_size: int = 1280
    metrics: tuple[str, int] | None = None  # Prometheus endpoint (address, port); None: none
    # SAs that survive a restart (issue 14): "sqlite" (the file state_file, default beside the
    # control socket: "<socket>.state") or "none"
    state: str = "sqlite"
    state_file: str | None = None
    # MODP key pairs made ahead of need by a helper process (daemon/dh_worker.py)
    dh_precompute: bool = True
    # data-plane workers, one per core (daemon/workers.py): the daemon and workers - 1 processes
    workers: int = 1


@dataclass(frozen=True, slots=True)
class RadiusConfig:
    """``[radius]``: the RADIUS server that checks XAUTH passwords (``auth = "xauth-radius"``),
    as strongSwan's eap-radius plugin: Access-Request with User-Name and User-Password."""

    address: str
    secret: bytes = field(repr=False)
    port: int = 1812
    timeout: float = 3.0
    retries: int = 2
    nas_identifier: str = "snakeswan"


@dataclass(frozen=True, slots=True)
class Config:
    """A whole configuration file."""

    daemon: DaemonConfig = DaemonConfig()
    connections: tuple[ConnectionConfig, ...] = ()
    secrets: Secrets = Secrets()
    pools: tuple[Pool, ...] = ()
    radius: RadiusConfig | None = None
    # certificates and private keys of the files the connections and secrets name (loaded once)
    credentials: Credentials = field(default_factory=Credentials)
    cluster: ClusterConfig | None = None  # [cluster]: SAs shared through etcd (config/cluster.py)

    def connection(self, name: str) -> ConnectionConfig:
        """The connection named ``name``; ``KeyError`` if there is none."""
        for conn in self.connections:
            if conn.name == name:
                return conn
        raise KeyError(name)

    def pool(self, name: str) -> Pool:
        """The pool named ``name``; ``KeyError`` if there is none."""
        for pool in self.pools:
            if pool.name == name:
                return pool
        raise KeyError(name)
