"""The sans-I/O IPsec data plane: SPD, SAD, ESP (RFC 4303), AH (RFC 4302), UDP encapsulation
(RFC 3948), anti-replay. :class:`Processor` is the whole surface (see its module).

Wiring a negotiated child (``snakeswan.ike.events.ChildSaInfo`` ``info``) in the daemon::

    def params(spi, keys, info, local_ts, remote_ts):
        return SaParams(
            spi=spi, protocol=info.protocol, transform_id=info.transform_id,
            key_length=info.key_length, auth=info.auth,
            encryption_key=keys.encryption, integrity_key=keys.integrity,
            local=info.local, remote=info.remote, mode=info.mode, encap=info.encap,
            local_ts=local_ts, remote_ts=remote_ts,
            hard_seconds=info.life_seconds,
            hard_bytes=info.life_kilobytes * 1024 if info.life_kilobytes else None,
        )

    processor.install(params(info.spi_in, info.keys_in, ...), params(info.spi_out, info.keys_out, ...),
                      (info.conn, info.child), now=now)
"""

from snakeswan.ipsec.events import (
    Acquire,
    Bypass,
    Deliver,
    DeliverVia,
    Event,
    Expired,
    Handoff,
    Output,
    SendIp,
    SendPacket,
    SendUdp,
)
from snakeswan.ipsec.packet import Drop
from snakeswan.ipsec.processor import Processor
from snakeswan.ipsec.replay import ReplayWindow
from snakeswan.ipsec.sad import SaParams
from snakeswan.ipsec.spd import Policy

__all__ = [
    "Acquire",
    "Bypass",
    "Deliver",
    "DeliverVia",
    "Drop",
    "Event",
    "Expired",
    "Handoff",
    "Output",
    "Policy",
    "Processor",
    "ReplayWindow",
    "SaParams",
    "SendIp",
    "SendPacket",
    "SendUdp",
]
