"""INITIAL-CONTACT and the connection's ``unique`` policy (as swanctl.conf's, and strongSwan's
``ike_sa_manager.c`` ``check_uniqueness``), decided once when an ISAKMP SA is established.

Duplicates are the other live ISAKMP SAs with the same pair of identities (ours and the peer's):

- INITIAL-CONTACT is *sent* by an initiator only when no other SA to that peer exists yet (so a
  second connection to the same gateway does not wipe out the first), never with ``unique =
  "never"``; *received*, it removes every duplicate (whatever their connection: the peer
  rebooted), unless our policy is ``never``.
- Behind a gateway's XAUTH round the XAUTH user is part of the identity, and the policy is
  applied once that round has succeeded: remote-access clients often share one group identity,
  and a new client's INITIAL-CONTACT must not end the others'.
- ``unique = "replace"``: a duplicate of the same connection is deleted when the new SA is up;
  ``"keep"``: the new SA is deleted instead; ``"no"`` (default) and ``"never"``: both stay. A
  duplicate from the same peer address is an IKEv1 re-authentication, which ike/renewal.py
  handles (the children move to the new SA, the old one goes), so it is left alone here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from snakeswan.ike.sa import IkeSa, IkeState


@dataclass(frozen=True)
class Verdict:
    """What to do about an ISAKMP SA just established."""

    remove: list[IkeSa] = field(default_factory=list)  # older SAs to delete
    reason: str = ""
    cancel: bool = False  # delete the new SA itself (unique = keep)


def sends_initial_contact(unique: str, to_peer: Iterable[IkeSa]) -> bool:
    """Initiator: INITIAL-CONTACT goes out when no live SA to the peer exists (``to_peer``: the
    SAs with its address, whatever their connection and state)."""
    if unique == "never":
        return False
    return not any(s.state is not IkeState.DELETED for s in to_peer)


def xauth_user(sa: IkeSa) -> str | None:
    """The user a gateway's XAUTH round authenticated on ``sa`` (None: no such round)."""
    ra = sa.remote_access
    return ra.user if ra is not None and ra.server_xauth else None


def identified(sa: IkeSa) -> bool:
    """Is the peer of ``sa`` known well enough to apply the policy: at once, or behind a
    gateway's XAUTH round once that round has succeeded."""
    if sa.conn is None or sa.conn.remote_xauth is None:
        return True
    return sa.remote_access is not None and sa.remote_access.ready


def duplicates(sa: IkeSa, sas: Iterable[IkeSa]) -> list[IkeSa]:
    """Other live SAs with the same identities (ours and the peer's) and, behind a gateway's
    XAUTH, the same user (as strongSwan, which checks uniqueness with the XAUTH identity)."""
    user = xauth_user(sa)
    return [
        s
        for s in sas
        if s is not sa
        and s.state is not IkeState.DELETED
        and s.local_id == sa.local_id
        and s.remote_id == sa.remote_id
        and xauth_user(s) == user
    ]


def on_established(sa: IkeSa, sas: Iterable[IkeSa], initial_contact: bool) -> Verdict:
    """The policy of ``sa``'s connection applied to ``sa`` and its duplicates (among ``sas``: the
    SA table's identity index hands over just those)."""
    policy = sa.conn.unique if sa.conn is not None else "no"
    dups = duplicates(sa, sas)
    if not dups or policy == "never":
        return Verdict()
    if initial_contact:
        return Verdict(dups, "replaced after INITIAL-CONTACT")
    if policy not in ("replace", "keep"):
        return Verdict()
    same = [
        s
        for s in dups
        if s.state is IkeState.ESTABLISHED
        and s.conn is not None
        and sa.conn is not None
        and s.conn.name == sa.conn.name
        and s.remote[0] != sa.remote[0]  # the same address: a re-authentication (renewal.py)
    ]
    if not same:
        return Verdict()
    if policy == "keep":
        return Verdict([], f"unique = keep: IKE SA #{same[0].unique_id} exists", cancel=True)
    return Verdict(same, f"unique = replace: replaced by IKE SA #{sa.unique_id}")
