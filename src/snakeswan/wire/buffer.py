"""Bounded reading and plain writing of network-order fields (DESIGN.md principle 8).

Every length-prefixed structure is parsed inside a :class:`Reader` restricted to exactly its bytes;
:meth:`Reader.expect_end` then checks it was consumed. Any short read raises
:class:`~snakeswan.errors.DecodeError` carrying the absolute offset, never ``IndexError`` or
``struct.error``.
"""

from __future__ import annotations

from snakeswan.errors import DecodeError


class Reader:
    """A cursor over ``data[start:end]``; offsets in errors are relative to the whole message."""

    __slots__ = ("_data", "_end", "_pos", "where")

    def __init__(self, data: bytes, start: int = 0, end: int | None = None, where: str = "message") -> None:
        self._data = data
        self._pos = start
        self._end = len(data) if end is None else end
        self.where = where
        if self._end > len(data) or start > self._end:
            raise DecodeError("structure overruns the data", start, where)

    @property
    def offset(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return self._end - self._pos

    def _need(self, n: int, what: str) -> int:
        if n < 0 or self._pos + n > self._end:
            raise DecodeError(f"{what}: need {n} bytes, have {self._end - self._pos}", self._pos, self.where)
        pos = self._pos
        self._pos += n
        return pos

    def u8(self, what: str = "u8") -> int:
        return self._data[self._need(1, what)]

    def u16(self, what: str = "u16") -> int:
        pos = self._need(2, what)
        return int.from_bytes(self._data[pos : pos + 2], "big")

    def u32(self, what: str = "u32") -> int:
        pos = self._need(4, what)
        return int.from_bytes(self._data[pos : pos + 4], "big")

    def take(self, n: int, what: str = "bytes") -> bytes:
        pos = self._need(n, what)
        return bytes(self._data[pos : pos + n])

    def rest(self) -> bytes:
        return self.take(self.remaining, "rest")

    def sub(self, n: int, where: str | None = None) -> Reader:
        """A reader over the next ``n`` bytes, which this reader skips."""
        pos = self._need(n, where or self.where)
        return Reader(self._data, pos, pos + n, where or self.where)

    def expect_end(self) -> None:
        if self._pos != self._end:
            raise DecodeError(f"{self._end - self._pos} unexpected trailing bytes", self._pos, self.where)


class Writer:
    """Appends network-order fields to a bytearray."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def u8(self, v: int) -> Writer:
        self.buf.append(v & 0xFF)
        return self

    def u16(self, v: int) -> Writer:
        self.buf += (v & 0xFFFF).to_bytes(2, "big")
        return self

    def u32(self, v: int) -> Writer:
        self.buf += (v & 0xFFFFFFFF).to_bytes(4, "big")
        return self

    def raw(self, b: bytes) -> Writer:
        self.buf += b
        return self

    def getvalue(self) -> bytes:
        return bytes(self.buf)
