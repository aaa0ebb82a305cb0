"""Anti-replay window edge cases (RFC 4303 3.4.3)."""

from __future__ import annotations

import pytest

from snakeswan.ipsec.replay import ReplayWindow


def accept(w: ReplayWindow, seq: int) -> bool:
    if not w.check(seq):
        return False
    w.update(seq)
    return True


def test_first_packet_and_zero() -> None:
    w = ReplayWindow()
    assert not w.check(0)  # sequence numbers start at 1
    assert accept(w, 1)
    assert not w.check(1)
    assert not w.check(0)


def test_first_packet_may_be_large() -> None:
    w = ReplayWindow(64)
    assert accept(w, 1000)
    assert accept(w, 999)
    assert not w.check(1000 - 64)  # just outside the window
    assert accept(w, 1000 - 63)  # the oldest inside


def test_duplicate_and_out_of_order() -> None:
    w = ReplayWindow(64)
    for seq in (1, 3, 2, 5):
        assert accept(w, seq)
    for seq in (1, 2, 3, 5):
        assert not w.check(seq)
    assert accept(w, 4)
    assert not w.check(4)


def test_too_old() -> None:
    w = ReplayWindow(32)
    assert accept(w, 100)
    assert not w.check(68)  # 100 - 32
    assert w.check(69)


def test_slide_by_more_than_the_window() -> None:
    w = ReplayWindow(64)
    for seq in range(1, 11):
        assert accept(w, seq)
    assert accept(w, 10 + 500)
    assert w.bitmap == 1
    assert not w.check(10)
    assert w.check(510 - 63)
    assert not w.check(510 - 64)


def test_check_does_not_move_the_window() -> None:
    w = ReplayWindow(64)
    assert accept(w, 10)
    assert w.check(1000)  # a forged packet passes the check but fails the ICV: no update
    assert w.top == 10
    assert accept(w, 5)


def test_window_1024() -> None:
    w = ReplayWindow(1024)
    assert accept(w, 2000)
    assert accept(w, 2000 - 1023)
    assert not w.check(2000 - 1024)
    for seq in range(1500, 1600):
        assert accept(w, seq)
    assert not any(w.check(s) for s in range(1500, 1600))
    assert accept(w, 3000)
    assert not w.check(1976)  # 3000 - 1024
    assert w.check(1977)
    assert w.bitmap < 1 << 1024


def test_max_sequence_and_range() -> None:
    w = ReplayWindow()
    assert accept(w, 0xFFFFFFFF)
    assert not w.check(0x100000000)
    with pytest.raises(ValueError):
        ReplayWindow(-1)


def test_disabled_window_accepts_repeats() -> None:
    w = ReplayWindow(0)
    assert accept(w, 5)
    assert accept(w, 5)
    assert not w.check(0)
