"""IP fragment reassembly for the capture reader (IKE messages with certificates are often
fragmented by IP: RFC 791 for IPv4, RFC 8200 4.5 for IPv6).

Fragments are kept per datagram (source, destination, protocol, identification) until every byte
from 0 to the end the last fragment names is present; then the upper-layer bytes come back once.
What a capture cannot be trusted with is refused, not guessed: overlapping fragments that disagree
(RFC 5722 forbids overlaps for IPv6; an overlap that repeats the same bytes is a retransmission
and accepted), a datagram larger than 65,535 bytes, more than ``max_pending`` datagrams waiting
(the oldest is given up), or a datagram still incomplete ``timeout`` seconds (capture time) after
its first fragment. Each refusal is counted by reason for the report.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["FragmentKey", "Reassembler"]

MAX_DATAGRAM = 65535

FragmentKey = tuple[str, str, int, int]  # source, destination, protocol (next header), identification


@dataclass
class _Pending:
    first_seen: float
    parts: dict[int, bytes] = field(default_factory=dict)  # offset -> bytes
    end: int | None = None  # total length, once the last fragment (MF clear) is seen
    frames: list[int] = field(default_factory=list)


class Reassembler:
    def __init__(self, timeout: float = 30.0, max_pending: int = 1024) -> None:
        self.timeout = timeout
        self.max_pending = max_pending
        self.refused: Counter[str] = Counter()
        self._pending: dict[FragmentKey, _Pending] = {}

    def add(
        self, key: FragmentKey, offset: int, more: bool, data: bytes, time: float, frame: int
    ) -> tuple[bytes, list[int]] | None:
        """One fragment (``offset`` in bytes); the whole upper-layer datagram and the frames it
        came in once complete, else None."""
        self._expire(time)
        if offset + len(data) > MAX_DATAGRAM:
            self.refused["fragmented datagram over 65,535 bytes"] += 1
            self._pending.pop(key, None)
            return None
        if more and len(data) % 8:
            self.refused["fragment with more to come not a multiple of 8 bytes"] += 1
            return None
        entry = self._pending.get(key)
        if entry is None:
            if len(self._pending) >= self.max_pending:
                oldest = next(iter(self._pending))
                del self._pending[oldest]
                self.refused["too many incomplete fragmented datagrams"] += 1
            entry = self._pending[key] = _Pending(time)
        if not more:
            if entry.end is not None and entry.end != offset + len(data):
                self._refuse(key, "last fragments disagree on the length")
                return None
            entry.end = offset + len(data)
        if not self._fits(entry, offset, data):
            self._refuse(key, "overlapping fragments with different bytes")
            return None
        entry.parts[offset] = data
        entry.frames.append(frame)
        return self._complete(key, entry)

    def incomplete(self) -> int:
        """Datagrams still waiting for fragments (reported at the end of a capture)."""
        return len(self._pending)

    def _fits(self, entry: _Pending, offset: int, data: bytes) -> bool:
        end = offset + len(data)
        if entry.end is not None and end > entry.end:
            return False
        for start, part in entry.parts.items():
            lo, hi = max(start, offset), min(start + len(part), end)
            if lo < hi and part[lo - start : hi - start] != data[lo - offset : hi - offset]:
                return False
        return True

    def _complete(self, key: FragmentKey, entry: _Pending) -> tuple[bytes, list[int]] | None:
        if entry.end is None:
            return None
        out = bytearray(entry.end)
        covered = 0
        for start in sorted(entry.parts):
            if start > covered:
                return None  # a hole
            part = entry.parts[start]
            out[start : start + len(part)] = part
            covered = max(covered, start + len(part))
        if covered < entry.end:
            return None
        del self._pending[key]
        return bytes(out), sorted(entry.frames)

    def _refuse(self, key: FragmentKey, reason: str) -> None:
        self.refused[reason] += 1
        self._pending.pop(key, None)

    def _expire(self, now: float) -> None:
        while self._pending:
            key, entry = next(iter(self._pending.items()))
            if now - entry.first_seen <= self.timeout:
                return
            del self._pending[key]
            self.refused["fragments never completed within the reassembly timeout"] += 1
