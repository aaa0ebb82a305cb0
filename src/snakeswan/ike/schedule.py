"""Due times of many objects in one binary heap (after charon's ``scheduler.c`` and wireguard-go's
per-peer timers): :meth:`Schedule.set` a key's next due time (or None), :meth:`Schedule.peek` the
earliest, :meth:`Schedule.pop_due` the keys due by ``now``. Setting a key again leaves its old heap
entry behind; stale entries are skipped when they reach the top (lazy deletion) and the heap is
rebuilt once they outnumber the live ones. Every operation is O(log n) (amortised), so the cost
of a timer does not grow with the number of SAs.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable


class Schedule:
    __slots__ = ("_due", "_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Hashable]] = []
        self._due: dict[Hashable, float] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._due)

    def set(self, key: Hashable, when: float | None) -> None:
        """``key`` is next due at ``when`` (None: not at all)."""
        if when is None:
            self._due.pop(key, None)
            return
        if self._due.get(key) == when:
            return
        self._due[key] = when
        heapq.heappush(self._heap, (when, next(self._seq), key))
        if len(self._heap) > 2 * len(self._due) + 64:
            self._compact()

    def get(self, key: Hashable) -> float | None:
        return self._due.get(key)

    def peek(self) -> float | None:
        """The earliest due time, None when nothing is scheduled."""
        heap, due = self._heap, self._due
        while heap and due.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> list[Hashable]:
        """The keys due at or before ``now``, earliest first; they are no longer scheduled."""
        out: list[Hashable] = []
        while (first := self.peek()) is not None and first <= now:
            _, _, key = heapq.heappop(self._heap)
            del self._due[key]
            out.append(key)
        return out

    def _compact(self) -> None:
        self._heap = [(when, next(self._seq), key) for key, when in self._due.items()]
        heapq.heapify(self._heap)
