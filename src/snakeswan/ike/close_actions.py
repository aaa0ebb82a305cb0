"""What follows when an IPsec SA goes away without a successor (swanctl.conf's ``close_action`` and
``dpd_action``): ``"none"``, ``"trap"`` or ``"start"``.

- The peer deleted it (a Delete payload for the IPsec SA, or for the ISAKMP SA without a successor):
  the child's ``close_action``.
- The peer is dead (DPD timeout): the child's ``dpd_action`` (``clear`` -> none, ``trap``,
  ``restart`` -> start).
- We deleted it, it expired, it was rekeyed, INITIAL-CONTACT made it stale: ``"none"``.

``"start"`` makes the engine negotiate the child again at once; ``"trap"`` and ``"none"`` are the
data plane's business (:class:`~snakeswan.ike.events.ChildSaDeleted` carries the action): with
``trap`` it keeps the child's policy so that the next packet negotiates it again; with ``none`` it
removes the policy unless the child is trapped anyway (``start_action = "trap"``). An SA that has a
sibling of the same child still up (a rekey that is being cleaned up, a collision) has no follow-up.
"""

from __future__ import annotations

from snakeswan.config.model import ChildConfig

LOCAL = "local"  # deleted by us, expired, rekeyed, stale after INITIAL-CONTACT
PEER = "peer"  # the peer sent a Delete
DPD = "dpd"  # the peer stopped answering R-U-THERE

_DPD_ACTIONS = {"clear": "none", "trap": "trap", "restart": "start"}


def action(child: ChildConfig, cause: str) -> str:
    """``"none"`` | ``"trap"`` | ``"start"`` for a child closed for ``cause``."""
    if cause == PEER:
        return child.close_action
    if cause == DPD:
        return _DPD_ACTIONS.get(child.dpd_action, "none")
    return "none"
