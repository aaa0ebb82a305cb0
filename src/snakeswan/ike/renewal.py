"""Timer policy for ISAKMP SAs (DESIGN.md principle 12): renewal before expiry, and moving the
IPsec SAs of an old ISAKMP SA to its successor.

In IKEv1 an IPsec SA does not depend on the ISAKMP SA that negotiated it; strongSwan nevertheless
ties them together and, on renewal ("reauthentication"), lets the new ISAKMP SA adopt the old one's
children. snakeswan does the same: the initiator of the ISAKMP SA runs a new Main/Aggressive Mode at
``rekey_time`` minus a jitter (never later than 90 % of the negotiated lifetime), moves the children
to the new SA once it is established and deletes the old ISAKMP SA (its IPsec SAs stay up). A
responder adopts the children when the peer deletes the old ISAKMP SA after establishing a new one.
A volume lifetime (kilobytes, counted over every byte encrypted under the SA) acts the same way:
renewal at 90 % of it, expiry at 100 % (:func:`check_volume`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from snakeswan.ike.lifetimes import ChildLifetimes
from snakeswan.ike.sa import IkeSa, IkeState


def schedule(sa: IkeSa, now: float, rng: Callable[[int], bytes]) -> None:
    """Set ``sa.rekey_at`` (initiator only) and ``sa.expire_at`` when it is first established."""
    if sa.conn is None or sa.choice is None or sa.expire_at is not None:
        return
    lifetime = float(sa.choice.lifetime)
    sa.expire_at = now + lifetime
    if sa.initiator and sa.conn.rekey_time > 0:
        jitter = sa.conn.rand_time * int.from_bytes(rng(2), "big") / 0xFFFF
        sa.rekey_at = min(now + sa.conn.rekey_time - jitter, now + 0.9 * lifetime)


def shorten(sa: IkeSa, seconds: int | None, kilobytes: int | None) -> bool:
    """The responder announced shorter ISAKMP SA lifetimes (RESPONDER-LIFETIME): take the lower
    ones and move the expiry (and our renewal, at most 90 % of the lifetime) earlier. Returns
    whether anything changed; longer values are ignored (a lifetime is never raised)."""
    c = sa.choice
    if c is None:
        return False
    new_s = c.lifetime if seconds is None or seconds <= 0 else min(c.lifetime, seconds)
    new_kb = c.life_kilobytes
    if kilobytes is not None and kilobytes > 0:
        new_kb = kilobytes if new_kb is None else min(new_kb, kilobytes)
    if (new_s, new_kb) == (c.lifetime, c.life_kilobytes):
        return False
    sa.choice = replace(c, lifetime=new_s, life_kilobytes=new_kb)
    if sa.established_at is not None and sa.expire_at is not None:
        sa.expire_at = min(sa.expire_at, sa.established_at + new_s)
        if sa.rekey_at is not None:
            sa.rekey_at = min(sa.rekey_at, sa.established_at + 0.9 * new_s)
    return True


def check_volume(sa: IkeSa, now: float) -> None:
    """A volume lifetime (kilobytes) works like the time one: the initiator renews at 90 % of it,
    and at 100 % the SA expires (both by moving ``rekey_at`` / ``expire_at`` to ``now``)."""
    kilobytes = sa.choice.life_kilobytes if sa.choice is not None else None
    if not kilobytes or sa.state is not IkeState.ESTABLISHED:
        return
    limit = kilobytes * 1024
    if sa.protected_bytes >= limit:
        sa.expire_at = now if sa.expire_at is None else min(sa.expire_at, now)
    elif sa.protected_bytes >= 0.9 * limit and sa.rekey_at is not None:
        sa.rekey_at = min(sa.rekey_at, now)


def adopt_children(old: IkeSa, new: IkeSa, lifetimes: ChildLifetimes) -> int:
    """Move ``old``'s IPsec SAs (and their timers) to ``new``; returns how many moved. A gateway's
    virtual IP leases go along when ``new`` has none of its own (a client renewing its ISAKMP SA
    without a new Mode Config round, as vpnc does): the children's selectors name them."""
    moved = 0
    for child in old.children:
        new.children.append(replace(child, ike_sa=new.unique_id))
        timer = lifetimes.timers.get(child.spi_in)
        if timer is not None:
            timer.ike_sa = new.unique_id
        moved += 1
    old.children.clear()
    ra_old, ra_new = old.remote_access, new.remote_access
    if ra_old is not None and ra_new is not None and ra_old.leased and not ra_new.leased:
        ra_new.leased, ra_old.leased = ra_old.leased, []
        ra_new.vips, ra_new.modecfg = list(ra_old.vips), ra_old.modecfg
    return moved


def successor(old: IkeSa, sas: list[IkeSa]) -> IkeSa | None:
    """A ready ISAKMP SA (established, its XAUTH / Mode Config over) for the same connection
    and peer, newer than ``old``. The same peer: its identity, its address and, behind a gateway's
    XAUTH, its user (remote-access clients often share one group identity)."""
    for sa in sas:
        if sa is not old and sa.unique_id > old.unique_id and sa.ready and same_peer(sa, old):
            return sa
    return None


def predecessor(new: IkeSa, sas: list[IkeSa]) -> IkeSa | None:
    """The oldest established ISAKMP SA whose :func:`successor` ``new`` is."""
    for sa in sorted(sas, key=lambda s: s.unique_id):
        if (
            sa.unique_id < new.unique_id
            and sa.state is IkeState.ESTABLISHED
            and new.ready
            and same_peer(sa, new)
        ):
            return sa
    return None


def same_peer(a: IkeSa, b: IkeSa) -> bool:
    """The same connection and peer identity; with XAUTH / Mode Config rounds (remote access,
    whose clients may share a group identity) also the same address and XAUTH user."""
    if a.conn is None or b.conn is None or a.conn.name != b.conn.name or a.remote_id != b.remote_id:
        return False
    if a.remote_access is None and b.remote_access is None:
        return True
    user_a = a.remote_access.user if a.remote_access is not None else None
    user_b = b.remote_access.user if b.remote_access is not None else None
    return a.remote[0] == b.remote[0] and user_a == user_b
