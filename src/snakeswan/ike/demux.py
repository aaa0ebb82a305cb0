"""Which exchange of an ISAKMP SA a received message belongs to, and whether it may come from
a new address (NAT-T floating). Pure functions the engine's receive path uses."""

from __future__ import annotations

from snakeswan.ike.aggressive_mode import AggressiveMode
from snakeswan.ike.events import Address
from snakeswan.ike.exchange import Exchange
from snakeswan.ike.main_mode import MainMode
from snakeswan.ike.quick_mode import QuickMode
from snakeswan.ike.sa import IkeSa
from snakeswan.ike.transaction import Transaction
from snakeswan.wire.enums import ExchangeType
from snakeswan.wire.message import Header

__all__ = ["exchange_for", "may_float"]


def exchange_for(sa: IkeSa, header: Header) -> Exchange | None:
    """The exchange under way that ``header``'s message continues, if any (Informational
    messages have none: they are handled on their own)."""
    if header.exchange in (ExchangeType.IDENTITY_PROTECTION, ExchangeType.AGGRESSIVE):
        if header.message_id != 0 or sa.phase1 is None:
            return None
        want = MainMode if header.exchange == ExchangeType.IDENTITY_PROTECTION else AggressiveMode
        return sa.phase1 if isinstance(sa.phase1, want) else None
    if header.exchange in (ExchangeType.QUICK_MODE, ExchangeType.TRANSACTION):
        ex = sa.exchanges.get(header.message_id)
        if header.exchange == ExchangeType.QUICK_MODE:
            return ex if isinstance(ex, QuickMode) else None
        return ex if isinstance(ex, Transaction) else None
    return None


def may_float(sa: IkeSa, src: Address, dst: Address, nat_port: int) -> bool:
    """NAT-T: the peer moved to port 4500, or its NAT mapping changed."""
    return (sa.natt_flavour is not None and dst[1] == nat_port and src[0] == sa.remote[0]) or (
        sa.nat is not None and sa.nat.remote_behind and dst[1] == nat_port
    )
