"""``[daemon]`` keys of overload shedding (ike/shedding.py): the budget of new IKE SAs, the
messages with a zero responder cookie (MM1/AM1) the daemon parses at all. The counterpart of
strongSwan's ``init_limit_half_open`` / ``block_threshold`` and Libreswan's ``ddos-ike-threshold``,
as a rate: a token bucket of ``new_sa_rate`` a second holding ``new_sa_burst`` at most, lowered to
``new_sa_rate_under_load`` / ``new_sa_burst_under_load`` while the socket has a backlog.

A budget under load larger than the normal one would raise the budget just when the daemon is
overwhelmed: refused at load, as every value out of range.
"""

from __future__ import annotations

from snakeswan.config._fields import Table, describe
from snakeswan.config.model import SheddingBudget

SHEDDING_KEYS = ("new_sa_rate", "new_sa_burst", "new_sa_rate_under_load", "new_sa_burst_under_load")
RATE_MAX = 1_000_000


def _rate(table: Table, key: str, default: float) -> float:
    value = table.data.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or not 1 <= value <= RATE_MAX:
        what = f"expected a number of new IKE SAs a second 1..{RATE_MAX}"
        raise table.error(key, f"{what}, got {describe(value)}")
    return float(value)


def shedding(table: Table) -> SheddingBudget:
    """The budget as ``table`` sets it, checked; absent keys take the defaults (those under load
    no larger than the normal ones given)."""
    rate = _rate(table, "new_sa_rate", 2000.0)
    burst = table.integer("new_sa_burst", 2000, 1, RATE_MAX)
    under = _rate(table, "new_sa_rate_under_load", min(200.0, rate))
    burst_under = table.integer("new_sa_burst_under_load", min(20, burst), 1, RATE_MAX)
    if under > rate:
        raise table.error("new_sa_rate_under_load", f"must not exceed new_sa_rate ({rate:g}), got {under:g}")
    if burst_under > burst:
        what = f"must not exceed new_sa_burst ({burst}), got {burst_under}"
        raise table.error("new_sa_burst_under_load", what)
    return SheddingBudget(rate, burst, under, burst_under)
