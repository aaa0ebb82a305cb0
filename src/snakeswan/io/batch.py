"""Batched datagram I/O: many packets per system call (``sendmmsg``/``recvmmsg``, Linux).

Python's ``socket`` has neither call; the optional C extension ``snakeswan.io._mmsg`` (built at
install when a compiler is there, see ``setup.py``) provides them. :data:`HAVE_MMSG` says whether
it loaded; callers fall back to one ``sendmsg``/``recv`` per packet when it did not, with the same
results. What this module adds is the encoding the C side takes: a destination as a packed
``sockaddr`` and ancillary data as packed ``cmsghdr`` records, each built once per address and
cached by the caller.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType

__all__ = [
    "HAVE_MMSG",
    "pack_cmsgs",
    "pack_sockaddr",
    "recvmmsg",
    "recvmmsg_addressed",
    "sendmmsg",
    "unpack_cmsgs",
    "unpack_sockaddr",
]

_mmsg: ModuleType | None
try:
    from snakeswan.io import _mmsg
except ImportError:  # no compiler at install, or not Linux: one system call per packet
    _mmsg = None

HAVE_MMSG = _mmsg is not None
_CMSG_HEADER = struct.Struct("@Nii")  # struct cmsghdr: cmsg_len (size_t), cmsg_level, cmsg_type


def pack_sockaddr(address: str, port: int = 0) -> bytes:
    """``struct sockaddr_in`` / ``sockaddr_in6`` (Linux layout) for ``address`` and ``port``."""
    if ":" in address:
        packed = socket.inet_pton(socket.AF_INET6, address)
        return struct.pack("=HHI16sI", socket.AF_INET6, socket.htons(port), 0, packed, 0)
    packed = socket.inet_pton(socket.AF_INET, address)
    return struct.pack("=HH4s8x", socket.AF_INET, socket.htons(port), packed)


_V4_NAMES: dict[bytes, tuple[str, int]] = {}  # packed sockaddr_in -> (address, port): few peers


def unpack_sockaddr(name: bytes) -> tuple[str, int]:
    """(address, port) of a ``sockaddr_in`` / ``sockaddr_in6`` as ``recvmmsg`` returns it."""
    if len(name) >= 28 and struct.unpack_from("=H", name)[0] == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, name[8:24]), int.from_bytes(name[2:4], "big")
    known = _V4_NAMES.get(name)
    if known is None:
        if len(_V4_NAMES) >= 1024:
            _V4_NAMES.clear()
        known = _V4_NAMES[name] = (
            socket.inet_ntop(socket.AF_INET, name[4:8]),
            int.from_bytes(name[2:4], "big"),
        )
    return known


def unpack_cmsgs(control: bytes) -> Iterator[tuple[int, int, bytes]]:
    """The ``(level, type, data)`` records of a control buffer (what ``recvmsg`` returns parsed)."""
    offset, header = 0, _CMSG_HEADER.size
    while offset + header <= len(control):
        length, level, kind = _CMSG_HEADER.unpack_from(control, offset)
        if length < header or offset + length > len(control):
            return
        yield level, kind, control[offset + header : offset + length]
        offset += socket.CMSG_SPACE(length - header)


def pack_cmsgs(cmsgs: Iterable[tuple[int, int, bytes]]) -> bytes:
    """The control buffer ``sendmsg`` would build from ``(level, type, data)`` records."""
    out = b""
    for level, kind, data in cmsgs:
        record = _CMSG_HEADER.pack(socket.CMSG_LEN(len(data)), level, kind) + data
        out += record.ljust(socket.CMSG_SPACE(len(data)), b"\0")
    return out


def sendmmsg(fd: int, messages: list[tuple[bytes, bytes, bytes]]) -> tuple[int, int]:
    """Send ``(payload, sockaddr, control)`` messages in order: (how many went, errno of the one
    that did not, 0 when all went). Only when :data:`HAVE_MMSG`."""
    assert _mmsg is not None
    send: Callable[[int, list[tuple[bytes, bytes, bytes]]], tuple[int, int]] = _mmsg.sendmmsg
    return send(fd, messages)


def recvmmsg(fd: int, vlen: int, size: int) -> list[bytes]:
    """Up to ``vlen`` queued datagrams of at most ``size`` bytes (without addresses); an empty list
    when nothing is queued. Only when :data:`HAVE_MMSG`."""
    assert _mmsg is not None
    recv: Callable[[int, int, int, int, int], list[bytes]] = _mmsg.recvmmsg
    return recv(fd, vlen, size, 0, 0)


def recvmmsg_addressed(
    fd: int, vlen: int, size: int, namelen: int, controllen: int
) -> list[tuple[bytes, bytes, bytes, int]]:
    """Up to ``vlen`` queued datagrams as (data, packed source address, control buffer, flags).
    Only when :data:`HAVE_MMSG`."""
    assert _mmsg is not None
    recv: Callable[[int, int, int, int, int], list[tuple[bytes, bytes, bytes, int]]] = _mmsg.recvmmsg
    return recv(fd, vlen, size, namelen, controllen)
