"""The TUN device: where cleartext IP packets enter and leave the userspace data plane.

:class:`Tun` opens ``/dev/net/tun`` (``TUNSETIFF`` with ``IFF_TUN | IFF_NO_PI``: every ``read()``
returns exactly one IP packet, every ``write()`` injects one; no packet-info header). The fd is
non-blocking, so the daemon registers it once with ``loop.add_reader`` and drains it in batches
with :meth:`Tun.read`. A name that is taken is an error (``IFF_TUN_EXCL``), not a silently chosen
other one. :meth:`Tun.configure` (MTU, addresses, up) runs iproute2 once at start; nothing on the
per-packet path leaves Python's ``os.read``/``os.write``.

:class:`MemoryTun` is the in-memory double (DESIGN.md principle 13) with the same surface, plus
:meth:`MemoryTun.inject` (a packet "from the kernel") and :attr:`MemoryTun.written` (what the data
plane wrote). Its :meth:`~MemoryTun.fileno` is a real pipe that is readable exactly while packets
are queued, so the daemon's ``add_reader`` loop runs unchanged without root.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import os
import struct
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Protocol

from snakeswan.errors import LocalError
from snakeswan.io.routes import Runner, run_ip

TUN_PATH = "/dev/net/tun"
TUNSETIFF = 0x400454CA  # _IOW('T', 202, int)
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_TUN_EXCL = 0x8000  # fail with EBUSY if the device exists
IFNAMSIZ = 16  # including the NUL: names have at most 15 characters
DEFAULT_NAME = "snakeswan0"
READ_SIZE = 65535  # no IFF_VNET_HDR, so no GSO super-packets: one packet <= MTU <= 65535


def check_ifname(name: str) -> str:
    """``name`` if the kernel accepts it as an interface name, else ``LocalError``."""
    if (
        not name
        or len(name.encode()) >= IFNAMSIZ
        or name in (".", "..")
        or any(c in name for c in "/%:")
        or any(c.isspace() for c in name)
    ):
        raise LocalError(f"bad interface name {name!r}: 1..15 characters, no '/', '%', ':' or blanks")
    return name


class TunDevice(Protocol):
    """What the daemon needs of a TUN device (:class:`Tun` and :class:`MemoryTun` both are one)."""

    name: str
    drops: int

    def read(self, limit: int = 64) -> list[bytes]: ...
    def write(self, packet: bytes) -> bool: ...
    def fileno(self) -> int: ...
    def close(self) -> None: ...


class Tun:
    """One TUN device ``name`` (created by opening it; it disappears when :meth:`close` closes it).

    Counters: ``drops`` (writes the kernel refused: queue full or a malformed packet) and
    ``write_errors`` (the errno of each kind, for the trace).
    """

    def __init__(self, name: str = DEFAULT_NAME, *, path: str = TUN_PATH) -> None:
        check_ifname(name)
        self.drops = 0
        self.write_errors: dict[int, int] = {}
        self.mtu: int | None = None
        self._closed = False
        try:
            fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            raise LocalError(f"cannot open {path}: {e.strerror} (is the tun module there?)") from None
        ifr = struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI | IFF_TUN_EXCL)
        try:
            result = fcntl.ioctl(fd, TUNSETIFF, ifr)
        except OSError as e:
            os.close(fd)
            if e.errno == errno.EBUSY:
                raise LocalError(f"TUN device {name!r}: an interface of that name exists already") from None
            if e.errno == errno.EPERM:
                raise LocalError(f"TUN device {name!r}: not permitted (needs CAP_NET_ADMIN)") from None
            raise LocalError(f"TUN device {name!r}: TUNSETIFF failed: {e.strerror}") from None
        self._fd = fd
        self.name: str = result[:IFNAMSIZ].split(b"\0", 1)[0].decode()

    def __repr__(self) -> str:
        return f"Tun({self.name!r}, fd={-1 if self._closed else self._fd})"

    def fileno(self) -> int:
        return self._fd

    def read(self, limit: int = 64) -> list[bytes]:
        """The packets queued (at most ``limit``), each one whole IP packet; [] if none.

        ``LocalError`` if the device is unusable (deleted under us) and nothing was read.
        """
        packets: list[bytes] = []
        append, read, fd = packets.append, os.read, self._fd
        try:
            for _ in range(limit):
                append(read(fd, READ_SIZE))
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as e:
            if not packets:
                raise LocalError(f"TUN device {self.name}: read failed: {e.strerror}") from None
        return packets

    def write(self, packet: bytes) -> bool:
        """Hand one IP packet to the kernel, as if it arrived on the device. False (and counted in
        ``drops``) if the kernel refused it."""
        try:
            os.write(self._fd, packet)
        except OSError as e:
            self.drops += 1
            code = e.errno or 0
            self.write_errors[code] = self.write_errors.get(code, 0) + 1
            return False
        return True

    def write_many(self, packets: Iterable[bytes]) -> int:
        """:meth:`write` each packet; returns how many the kernel took."""
        return sum(1 for p in packets if self.write(p))

    def configure(
        self,
        *,
        mtu: int = 1400,
        addresses: Sequence[str] = (),
        up: bool = True,
        txqueuelen: int | None = None,
        runner: Runner = run_ip,
    ) -> None:
        """Set the MTU (and queue length), add ``addresses`` (``"10.231.8.1/24"``; ``ip addr
        replace``, so calling it again is harmless) and bring the device up, through iproute2."""
        if not 68 <= mtu <= 65535:
            raise LocalError(f"TUN device {self.name}: MTU {mtu} out of range 68..65535")
        link = ["link", "set", "dev", self.name, "mtu", str(mtu)]
        if txqueuelen is not None:
            link += ["txqueuelen", str(txqueuelen)]
        runner(link)
        self.mtu = mtu
        for address in addresses:
            try:
                iface = ipaddress.ip_interface(address)
            except ValueError:
                raise LocalError(f"TUN device {self.name}: bad address {address!r}") from None
            extra = ["nodad"] if iface.version == 6 else []
            runner([f"-{iface.version}", "addr", "replace", str(iface), "dev", self.name, *extra])
        if up:
            runner(["link", "set", "dev", self.name, "up"])

    def close(self) -> None:
        """Close the fd; the (non-persistent) device goes away with it, and its routes too."""
        if not self._closed:
            self._closed = True
            os.close(self._fd)

    def __enter__(self) -> Tun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MemoryTun:
    """A TUN device in memory: :meth:`inject` what the kernel would route into the device,
    :meth:`read` it back; :meth:`write` appends to :attr:`written`.

    ``queue_limit`` mimics the device's queue: packets injected beyond it are dropped (counted in
    ``inject_drops``). ``refuse_writes`` makes :meth:`write` fail like a full kernel queue.
    ``fileno()`` is the read end of a pipe, readable while packets are queued (-1 after close).
    """

    def __init__(self, name: str = "mem0", *, queue_limit: int | None = None) -> None:
        self.name = name
        self.queue_limit = queue_limit
        self.queue: deque[bytes] = deque()
        self.written: list[bytes] = []
        self.drops = 0
        self.inject_drops = 0
        self.refuse_writes = False
        self.mtu: int | None = None
        self.addresses: list[str] = []
        self.up = False
        self._rfd, self._wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._signalled = False
        self._closed = False

    def __repr__(self) -> str:
        return f"MemoryTun({self.name!r}, queued={len(self.queue)}, written={len(self.written)})"

    def fileno(self) -> int:
        return -1 if self._closed else self._rfd

    def inject(self, packet: bytes) -> bool:
        """Queue ``packet`` for :meth:`read`; False if ``queue_limit`` made it a drop."""
        if self._closed:
            raise LocalError(f"memory TUN {self.name} is closed")
        if self.queue_limit is not None and len(self.queue) >= self.queue_limit:
            self.inject_drops += 1
            return False
        self.queue.append(bytes(packet))
        if not self._signalled:
            os.write(self._wfd, b"\x01")
            self._signalled = True
        return True

    def read(self, limit: int = 64) -> list[bytes]:
        if self._closed:
            raise LocalError(f"memory TUN {self.name} is closed")
        out = [self.queue.popleft() for _ in range(min(limit, len(self.queue)))]
        if not self.queue and self._signalled:
            with contextlib.suppress(BlockingIOError):
                os.read(self._rfd, 64)
            self._signalled = False
        return out

    def write(self, packet: bytes) -> bool:
        if self._closed:
            raise LocalError(f"memory TUN {self.name} is closed")
        if self.refuse_writes:
            self.drops += 1
            return False
        self.written.append(bytes(packet))
        return True

    def write_many(self, packets: Iterable[bytes]) -> int:
        return sum(1 for p in packets if self.write(p))

    def take_written(self) -> list[bytes]:
        """What was written since the last call (and forget it)."""
        out, self.written = self.written, []
        return out

    def configure(
        self,
        *,
        mtu: int = 1400,
        addresses: Sequence[str] = (),
        up: bool = True,
        txqueuelen: int | None = None,
        runner: Runner | None = None,
    ) -> None:
        """Record the configuration (no system call)."""
        self.mtu = mtu
        self.addresses = [str(ipaddress.ip_interface(a)) for a in addresses]
        self.up = up

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._rfd)
            os.close(self._wfd)

    def __enter__(self) -> MemoryTun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
