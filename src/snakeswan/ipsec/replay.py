"""Anti-replay window (RFC 4303 3.4.3, RFC 4302 3.4.3; bitmap as in RFC 6479 / RFC 4303 appendix A).

The window is a Python int: bit ``i`` set means sequence number ``top - i`` was received. Checking
and updating are separate (DESIGN.md principle 11): :meth:`ReplayWindow.check` before the ICV is
verified (cheap rejection of duplicates), :meth:`ReplayWindow.update` only after it verified, so a
forged packet never moves the window. Sequence number 0 is never valid (the first packet is 1).
Without ESN, sequence numbers are 32 bits.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_WINDOW", "MAX_WINDOW", "ReplayWindow"]

DEFAULT_WINDOW: Final = 64
MAX_WINDOW: Final = 1 << 16
_SEQ_MAX: Final = 0xFFFFFFFF


class ReplayWindow:
    """A sliding window of ``size`` sequence numbers; ``size`` 0 disables replay protection."""

    __slots__ = ("_mask", "bitmap", "size", "top")

    def __init__(self, size: int = DEFAULT_WINDOW) -> None:
        if not 0 <= size <= MAX_WINDOW:
            raise ValueError(f"replay window {size} out of range 0..{MAX_WINDOW}")
        self.size = size
        self.top = 0  # highest sequence number authenticated so far
        self.bitmap = 0
        self._mask = (1 << size) - 1

    def check(self, seq: int) -> bool:
        """Whether ``seq`` may be new: above the window's top, or inside it and not seen yet."""
        if seq <= 0 or seq > _SEQ_MAX:
            return False
        if not self.size:
            return True
        if seq > self.top:
            return True
        diff = self.top - seq
        return diff < self.size and not (self.bitmap >> diff) & 1

    def update(self, seq: int) -> None:
        """Record ``seq`` (call only after its packet's ICV verified and :meth:`check` passed)."""
        if not self.size:
            self.top = max(self.top, seq)
            return
        if seq > self.top:
            shift = seq - self.top
            self.bitmap = ((self.bitmap << shift) | 1) & self._mask if shift < self.size else 1
            self.top = seq
        else:
            self.bitmap |= 1 << (self.top - seq)

    def __repr__(self) -> str:
        return f"ReplayWindow(size={self.size}, top={self.top})"
