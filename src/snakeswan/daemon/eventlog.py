"""The daemon's log lines for the engine's events (what an operator reads: SAs established and
deleted, XAUTH outcomes, virtual IPs, failures, notifies), kept apart from what the daemon does
about each event (daemon.py)."""

from __future__ import annotations

import logging

from snakeswan.ike.events import (
    ChildSaDeleted,
    ChildSaEstablished,
    Event,
    IkeSaDeleted,
    IkeSaEstablished,
    NegotiationFailed,
    NotifyReceived,
    VirtualIps,
    XauthResult,
)
from snakeswan.wire.enums import NotifyType, name_of

__all__ = ["log_event"]

log = logging.getLogger("snakeswan.daemon")


def log_event(ev: Event) -> None:
    """Log ``ev`` at the level an operator expects (nothing for events without a line)."""
    if isinstance(ev, IkeSaEstablished):
        nat = ", NAT-T" if ev.nat_local or ev.nat_remote else ""
        log.info(
            "IKE SA #%d %s established: %s[%s] === %s[%s], %s%s",
            ev.ike_sa, ev.conn, ev.local[0], ev.local_id, ev.remote[0], ev.remote_id, ev.proposal, nat,
        )  # fmt: skip
    elif isinstance(ev, ChildSaEstablished):
        c = ev.child
        log.info(
            "IPsec SA %s/%s established: SPIs %08x_i %08x_o, %s === %s, %s%s",
            c.conn, c.child, c.spi_in, c.spi_out, c.local_ts, c.remote_ts, c.mode,
            " UDP-encapsulated" if c.encap else "",
        )  # fmt: skip
    elif isinstance(ev, XauthResult):
        log.log(
            logging.INFO if ev.ok else logging.WARNING,
            "IKE SA #%d %s: XAUTH %s of '%s' %s (%s)",
            ev.ike_sa, ev.conn, "check" if ev.server else "authentication", ev.user,
            "successful" if ev.ok else "failed", ev.reason,
        )  # fmt: skip
    elif isinstance(ev, VirtualIps):
        _virtual_ips(ev)
    elif isinstance(ev, NegotiationFailed):
        log.warning("%s: %s failed: %s", ev.conn, ev.exchange, ev.reason)
    elif isinstance(ev, IkeSaDeleted):
        log.info("IKE SA #%d %s deleted: %s", ev.ike_sa, ev.conn, ev.reason)
    elif isinstance(ev, ChildSaDeleted):
        log.info("IPsec SA %s/%s (SPI %08x_i) deleted: %s", ev.conn, ev.child, ev.spi_in, ev.reason)
    elif isinstance(ev, NotifyReceived):
        log.info("notify %s received on IKE SA #%d", name_of(NotifyType, ev.notify_type), ev.ike_sa)


def _virtual_ips(ev: VirtualIps) -> None:
    if not ev.local:
        log.info(
            "IKE SA #%d %s: assigned virtual IP %s to the peer", ev.ike_sa, ev.conn, ", ".join(ev.addresses)
        )
        return
    log.info(
        "IKE SA #%d %s: virtual IP %s, DNS %s, split %s%s",
        ev.ike_sa, ev.conn, ", ".join(ev.addresses), ", ".join(ev.dns) or "-",
        ", ".join(ev.split_include) or "-", f", banner {ev.banner!r}" if ev.banner else "",
    )  # fmt: skip
