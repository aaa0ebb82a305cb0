"""MODP key pairs made ahead of need (crypto/dh_stock.py): each taken once, in order; the stock asks
for what it lacks without asking twice; an exchange falls back to its own pair when it is empty."""

from __future__ import annotations

import os

import pytest

from snakeswan.crypto.dh import ModpGroup, dh_group
from snakeswan.crypto.dh_primes import MODP_PRIMES
from snakeswan.crypto.dh_stock import DhStock, modp_groups
from snakeswan.errors import CryptoError
from snakeswan.ike.events import ChildSaEstablished
from snakeswan.wire.enums import DhGroup

MODP2048, ECP256 = int(DhGroup.MODP_2048), int(DhGroup.ECP_256)


def numbers(group: int) -> tuple[int, bytes]:
    impl = dh_group(group)
    assert isinstance(impl, ModpGroup)
    return impl.generate_numbers(os.urandom)


def test_only_modp_groups_are_stocked() -> None:
    assert modp_groups([ECP256, MODP2048, 9999, MODP2048, int(DhGroup.MODP_1024)]) == [MODP2048, 2]
    stock = DhStock([ECP256, MODP2048])
    assert stock.groups == [MODP2048]
    assert stock.take(ECP256) is None and stock.missed == 0  # not stocked: not a miss


def test_wanted_tops_up_at_half_and_counts_what_was_asked() -> None:
    stock = DhStock([MODP2048], depth=8)
    assert stock.wanted() == {MODP2048: 8}
    assert stock.wanted() == {}  # asked for, not come yet: not asked again
    for _ in range(8):
        stock.add(MODP2048, *numbers(MODP2048))
    assert stock.wanted() == {}
    taken = [stock.take(MODP2048) for _ in range(3)]
    assert stock.wanted() == {}  # 5 left: above half
    taken.append(stock.take(MODP2048))
    assert stock.wanted() == {MODP2048: 4}  # 4 left: back to 8
    assert len({p.public for p in taken if p is not None}) == 4 and stock.taken == 4
    stock.lost()  # the helper is gone: what was asked for will not come
    assert stock.wanted() == {MODP2048: 4}


def test_each_pair_is_taken_once_in_order_then_none() -> None:
    stock = DhStock([MODP2048], depth=4)
    made = [numbers(MODP2048) for _ in range(3)]
    for x, public in made:
        stock.add(MODP2048, x, public)
    assert [p.public for p in (stock.take(MODP2048) for _ in range(3)) if p] == [pub for _, pub in made]
    assert stock.take(MODP2048) is None and stock.missed == 1


def test_a_stocked_pair_agrees_with_a_fresh_one() -> None:
    stock = DhStock([MODP2048])
    stock.add(MODP2048, *numbers(MODP2048))
    ours = stock.take(MODP2048)
    theirs = dh_group(MODP2048).generate(os.urandom)
    assert ours is not None
    assert ours.shared_secret(theirs.public) == theirs.shared_secret(ours.public)
    x, public = numbers(MODP2048)
    assert pow(2, x, MODP_PRIMES[MODP2048]) == int.from_bytes(public, "big")


def test_what_is_not_a_pair_of_the_group_is_refused() -> None:
    stock = DhStock([MODP2048])
    x, public = numbers(MODP2048)
    with pytest.raises(CryptoError):
        stock.add(MODP2048, x, public[1:])
    with pytest.raises(CryptoError):
        stock.add(MODP2048, 1, public)
    stock.add(int(DhGroup.MODP_3072), x, public)  # a group no longer stocked (reload): ignored
    assert stock.take(MODP2048) is None


def test_a_reload_drops_groups_no_longer_configured() -> None:
    stock = DhStock([MODP2048, int(DhGroup.MODP_3072)], depth=2)
    stock.add(MODP2048, *numbers(MODP2048))
    stock.set_groups([int(DhGroup.MODP_3072)])
    assert stock.groups == [int(DhGroup.MODP_3072)] and stock.take(MODP2048) is None


def test_both_ends_negotiate_with_stocked_pairs_and_without() -> None:
    """Main Mode and Quick Mode with PFS (modp2048) take a stocked pair each on both sides, and the
    tunnel comes up; with the stocks empty, each exchange makes its own and it comes up again."""
    from tests.unit.ike.test_pair_negative import pair  # noqa: PLC0415

    p = pair()
    stocks = []
    for side in (p.a, p.b):
        stock = side.engine.ctx.dh_stock = DhStock([MODP2048], depth=4)
        for _ in range(2):
            stock.add(MODP2048, *numbers(MODP2048))
        stocks.append(stock)
    p.run(max_time=5)
    assert len(p.of(p.b, ChildSaEstablished)) == 1
    assert [(s.taken, s.missed) for s in stocks] == [(2, 0), (2, 0)]
    q = pair()
    for side in (q.a, q.b):
        side.engine.ctx.dh_stock = DhStock([MODP2048])
    q.run(max_time=5)
    assert len(q.of(q.b, ChildSaEstablished)) == 1
    assert [(side.engine.ctx.dh_stock.taken, side.engine.ctx.dh_stock.missed) for side in (q.a, q.b)] == [
        (0, 2),
        (0, 2),
    ]  # type: ignore[union-attr]
