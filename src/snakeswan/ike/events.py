"""What the IKE engine reports to its driver: one frozen dataclass per thing that can happen
(DESIGN.md principle 6), and the datagrams it wants sent."""

from __future__ import annotations

from dataclasses import dataclass, field

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Datagram:
    """An ISAKMP message to send from ``src`` to ``dst``.

    When either port is the NAT-T port the driver prepends the 4-byte non-ESP marker (RFC 3948 2.2),
    except to a ``keepalive`` (the one-byte 0xff NAT-T keepalive of RFC 3948 2.3).
    """

    data: bytes
    src: Address
    dst: Address
    keepalive: bool = False


@dataclass(frozen=True, slots=True)
class SaKeys:
    """The keys of one direction of an IPsec SA. ``repr`` never shows key bytes."""

    encryption: bytes = field(repr=False)
    integrity: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class AhBundle:
    """The AH half of an AH+ESP bundle (``ChildSaInfo.ah``): applied over the ESP packet outbound,
    checked before ESP inbound (:mod:`snakeswan.ike.bundle`)."""

    transform_id: int  # AhTransformId
    auth: int | None  # AuthAlgorithm
    spi_in: int
    spi_out: int
    keys_in: SaKeys
    keys_out: SaKeys


@dataclass(frozen=True, slots=True)
class ChildSaInfo:
    """Everything the data plane needs to install one negotiated pair of IPsec SAs."""

    conn: str
    child: str
    ike_sa: int
    protocol: int  # ProtocolId.IPSEC_ESP or IPSEC_AH
    transform_id: int  # EspTransformId / AhTransformId
    key_length: int | None  # bits, for variable-length ciphers
    auth: int | None  # AuthAlgorithm (None for AEAD)
    spi_in: int
    spi_out: int
    keys_in: SaKeys
    keys_out: SaKeys
    mode: str  # "tunnel" | "transport"
    encap: bool  # UDP-encapsulated (RFC 3948)
    local: tuple[str, int]  # our outer address and port
    remote: tuple[str, int]  # the peer's outer address and port
    local_ts: str  # traffic selectors as text (``10.1.0.0/24``, ``10.1.0.1-10.1.0.9[tcp/80]``)
    remote_ts: str
    life_seconds: int | None
    life_kilobytes: int | None
    pfs_group: int | None
    initiator: bool
    replaces: int | None = None  # inbound SPI of the SA this one rekeys (make before break)
    # transport mode behind a NAT: (the peer's original address, ours as the peer saw it), from
    # its NAT-OA payloads; the data plane fixes the inner TCP/UDP checksums up with them
    nat_oa: tuple[str, str] | None = None
    # responder: we lowered the initiator's lifetime (RESPONDER-LIFETIME), which it may ignore
    lowered: bool = False
    # an AH+ESP bundle: the fields above are its ESP SA, this its AH SA
    ah: AhBundle | None = None
    # which of the child's local_ts x remote_ts pairs this SA is for (one Quick Mode per pair)
    ts_pair: int = 0


@dataclass(frozen=True, slots=True)
class IkeSaEstablished:
    ike_sa: int
    conn: str
    local: tuple[str, int]
    remote: tuple[str, int]
    local_id: str
    remote_id: str
    initiator: bool
    aggressive: bool
    proposal: str
    lifetime: int
    nat_local: bool
    nat_remote: bool
    icookie: bytes
    rcookie: bytes


@dataclass(frozen=True, slots=True)
class ChildSaEstablished:
    child: ChildSaInfo


@dataclass(frozen=True, slots=True)
class IkeSaDeleted:
    ike_sa: int
    conn: str
    reason: str


@dataclass(frozen=True, slots=True)
class ChildSaDeleted:
    ike_sa: int
    conn: str
    child: str
    protocol: int
    spi_in: int
    spi_out: int
    reason: str
    then: str = "none"  # "none" | "trap" | "start": what follows (see ike/close_actions.py)


@dataclass(frozen=True, slots=True)
class ChildSaPreferred:
    """Send on the pair with inbound SPI ``spi_in`` from now on, whichever of the child's pairs was
    installed last: the one a rekey collision keeps (ike/timers.py)."""

    ike_sa: int
    spi_in: int


@dataclass(frozen=True, slots=True)
class NegotiationFailed:
    """An exchange gave up: ``reason`` says why, ``notify`` the Notify type sent or received (or 0)."""

    ike_sa: int
    conn: str
    exchange: str
    reason: str
    notify: int = 0


@dataclass(frozen=True, slots=True)
class NotifyReceived:
    ike_sa: int
    notify_type: int
    protocol: int
    spi: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class XauthResult:
    """An XAUTH round ended: ``server`` True when we checked the peer's password (the gateway),
    False when we were the one checked (a client)."""

    ike_sa: int
    conn: str
    user: str
    ok: bool
    reason: str
    server: bool


@dataclass(frozen=True, slots=True)
class XauthCheck:
    """The driver must check this password with the connection's backend (RADIUS) and answer
    with :meth:`~snakeswan.ike.engine.Engine.xauth_verdict`; until then the SA waits (its
    deadline still runs). ``repr`` never shows the password."""

    ike_sa: int
    conn: str
    user: str
    password: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class OcspCheck:
    """The driver must POST ``request`` (a DER OCSPRequest) to the first of ``urls`` that answers
    and hand the response to :meth:`~snakeswan.ike.engine.Engine.ocsp_verdict`; until then the SA
    is established but not ready (no Quick Mode)."""

    ike_sa: int
    conn: str
    urls: tuple[str, ...]
    request: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class VirtualIps:
    """Mode Config gave addresses: ``local`` True when they are ours (a client; the data plane
    puts them on its TUN device), False when we leased them to the peer (a gateway)."""

    ike_sa: int
    conn: str
    addresses: tuple[str, ...]
    local: bool
    dns: tuple[str, ...] = ()
    split_include: tuple[str, ...] = ()
    banner: str | None = None


@dataclass(frozen=True, slots=True)
class KeyLog:
    """Emitted only when the engine was asked for key logging: Wireshark decryption table lines."""

    ikev1_line: str | None = None  # "<icookie hex>,<encryption key hex>"
    esp_lines: tuple[str, ...] = ()


Event = (
    IkeSaEstablished
    | ChildSaEstablished
    | IkeSaDeleted
    | ChildSaDeleted
    | ChildSaPreferred
    | NegotiationFailed
    | NotifyReceived
    | XauthResult
    | XauthCheck
    | OcspCheck
    | VirtualIps
    | KeyLog
)
