"""The TUN device: where cleartext IP packets enter and leave the userspace data plane.

:class:`Tun` opens ``/dev/net/tun`` (``TUNSETIFF`` with ``IFF_TUN | IFF_NO_PI``: every ``read()``
returns exactly one IP packet, every ``write()`` injects one; no packet-info header). The fd is
non-blocking, so the daemon registers it once with ``loop.add_reader`` and drains it in batches
with :meth:`Tun.read`. A name that is taken is an error (``IFF_TUN_EXCL``), not a silently chosen
other one. :meth:`Tun.configure` (MTU, addresses, up) asks netlink once at start (io.netlink); nothing on the
per-packet path leaves Python's ``os.read``/``os.write``.

Offloads (``offload=True``): the device is opened with ``IFF_VNET_HDR``, so every frame read or
written starts with a ``virtio_net_hdr`` (:mod:`snakeswan.ipsec.offload` does the work, the
framing stays inside the driver). :meth:`Tun.write_many` coalesces the TCP segments of one batch
into super-packets, so the kernel's TCP stack takes one packet where it took dozens.
:meth:`Tun.read` still returns plain IP packets with valid checksums. ``tso`` (by default: when
the C checksum of ``ipsec._offload`` is built) asks the kernel for its 64 KiB TSO super-packets
(``TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6``), cut into segments here: one ``read`` for dozens of
segments, and the kernel skips its own segmentation (measured in a snakeswan pair: 1,240 against
1,123 Mbit/s of iperf3 with AES-GCM). Without the C sum, each segment's TCP checksum in Python
costs more than the ``read`` it saves, so the kernel segments and checksums itself
(``TUNSETOFFLOAD`` 0). If ``IFF_VNET_HDR`` or ``TUNSETOFFLOAD`` fails, the
device is opened again without the header (``offload`` False, ``offload_error`` says why).

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
import sys
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Protocol

from snakeswan.errors import LocalError
from snakeswan.io import netlink
from snakeswan.io.netlink import run_netlink
from snakeswan.io.routes import Runner
from snakeswan.ipsec.offload import HAVE_C_SUM, VNET_HDR_LEN, ZERO_HEADER, coalesce, split_frame
from snakeswan.ipsec.packet import Drop

TUN_PATH = "/dev/net/tun"
TUNSETIFF = 0x400454CA  # _IOW('T', 202, int)
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_TUN_EXCL = 0x8000  # fail with EBUSY if the device exists
IFF_MULTI_QUEUE = 0x0100  # one fd per queue; the kernel spreads flows over them
MAX_QUEUES = 256  # the kernel's MAX_TAP_QUEUES
IFF_VNET_HDR = 0x4000  # a struct virtio_net_hdr before every packet, both ways
TUNSETOFFLOAD = 0x400454D0  # _IOW('T', 208, unsigned int)
TUN_F_CSUM = 0x01  # we complete checksums (NEEDS_CSUM)
TUN_F_TSO4 = 0x02  # we take TCP/IPv4 super-packets
TUN_F_TSO6 = 0x04  # and TCP/IPv6 ones
OFFLOADS = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6
IFNAMSIZ = 16  # including the NUL: names have at most 15 characters
DEFAULT_NAME = "snakeswan0"
READ_SIZE = 65535  # no IFF_VNET_HDR, so no GSO super-packets: one packet <= MTU <= 65535
VNET_READ_SIZE = VNET_HDR_LEN + 65536 + 64  # header + a super-packet (gso_max_size 64 KiB)


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


def _open_hint(err: int | None) -> str:
    """What to do about a device node that does not open, by why it did not."""
    if err in (errno.EACCES, errno.EPERM):
        return "run as root, or give the daemon's user access to it"
    if err in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return "no TUN device: load the tun module, or pass /dev/net/tun into the container"
    return "the TUN driver refused it"


def _open(path: str, name: str, extra_flags: int, *, exclusive: bool = True) -> tuple[int, str]:
    """Open ``path`` and attach TUN device ``name`` (``TUNSETIFF``): (fd, the device's name).
    ``exclusive``: the device must not exist yet (False: another queue of a multi-queue device)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise LocalError(f"cannot open {path}: {e.strerror} ({_open_hint(e.errno)})") from None
    flags = IFF_TUN | IFF_NO_PI | (IFF_TUN_EXCL if exclusive else 0) | extra_flags
    ifr = struct.pack("16sH22x", name.encode(), flags)
    try:
        result = fcntl.ioctl(fd, TUNSETIFF, ifr)
    except OSError as e:
        os.close(fd)
        if e.errno == errno.EBUSY and exclusive:
            raise LocalError(f"TUN device {name!r}: an interface of that name exists already") from None
        if e.errno == errno.EBUSY:
            raise LocalError(f"TUN device {name!r}: no more queues ({MAX_QUEUES} at most)") from None
        if e.errno == errno.EINVAL and not exclusive:
            raise LocalError(f"TUN device {name!r}: not a multi-queue TUN device of ours") from None
        if e.errno == errno.EPERM:
            raise LocalError(f"TUN device {name!r}: not permitted (needs CAP_NET_ADMIN)") from None
        raise LocalError(f"TUN device {name!r}: TUNSETIFF failed: {e.strerror}") from None
    return fd, result[:IFNAMSIZ].split(b"\0", 1)[0].decode()


def _segments(frame: bytes) -> int:
    """How many packets a frame written with a virtio_net_hdr stands for."""
    if not frame[1]:
        return 1
    hdr_len = frame[2] | frame[3] << 8 if _LITTLE else frame[2] << 8 | frame[3]
    gso_size = frame[4] | frame[5] << 8 if _LITTLE else frame[4] << 8 | frame[5]
    return max(1, -(-(len(frame) - VNET_HDR_LEN - hdr_len) // max(gso_size, 1)))


_LITTLE = sys.byteorder == "little"


class _FrameWriter(Protocol):
    gso_refused: bool

    def _write(self, frame: bytes, count: int) -> bool: ...
    def _write_gso(self, frame: bytes) -> int: ...


def _write_frames(dev: _FrameWriter, packets: Iterable[bytes]) -> int:
    """Write ``packets`` behind virtio_net_hdrs, the TCP segments coalesced; how many the kernel
    took. A super-packet the kernel refuses as invalid (a kernel without GSO writes, or a bug of
    ours) goes out as its segments, and so does everything from then on (``gso_refused``)."""
    batch = packets if isinstance(packets, list) else list(packets)
    if dev.gso_refused:
        return sum(1 for p in batch if dev._write(ZERO_HEADER + p, 1))
    taken = 0
    for frame in coalesce(batch):
        if not frame[1]:
            taken += dev._write(frame, 1)
            continue
        code = dev._write_gso(frame)
        if code == errno.EINVAL:
            dev.gso_refused = True
            taken += sum(1 for p in split_frame(frame) if dev._write(ZERO_HEADER + p, 1))
        elif not code:
            taken += _segments(frame)
    return taken


class TunDevice(Protocol):
    """What the daemon needs of a TUN device (:class:`Tun` and :class:`MemoryTun` both are one)."""

    name: str
    drops: int
    offload: bool

    def read(self, limit: int = 64) -> list[bytes]: ...
    def write(self, packet: bytes) -> bool: ...
    def write_many(self, packets: Iterable[bytes]) -> int: ...
    def fileno(self) -> int: ...
    def close(self) -> None: ...


class Tun:
    """One TUN device ``name`` (created by opening it; it disappears when :meth:`close` closes it).

    ``offload``: ask for the TUN offloads, ``tso``: TSO super-packets on reads too (module
    docstring; None: when the C checksum is built); the attributes say what is on.
    Counters: ``drops`` (packets the kernel refused: queue full or a malformed packet),
    ``write_errors`` (the errno of each kind, for the trace) and ``malformed`` (frames read that
    could not be taken apart).

    ``multi_queue``: the device is opened with ``IFF_MULTI_QUEUE``, and this object is its first
    queue; :meth:`attach_queue` opens another. The kernel hands each flow it routes into the
    device to one queue: the queue that last wrote a packet of that flow (so the answers to what a
    queue delivered come back to it), else one chosen by the flow's hash. Any queue may write.
    The device goes away when its last queue is closed.
    """

    def __init__(
        self,
        name: str = DEFAULT_NAME,
        *,
        path: str = TUN_PATH,
        offload: bool = False,
        tso: bool | None = None,
        multi_queue: bool = False,
        _queue_of: Tun | None = None,
    ) -> None:
        check_ifname(name)
        self.multi_queue = multi_queue or _queue_of is not None
        self._path = path
        base = IFF_MULTI_QUEUE if self.multi_queue else 0
        if tso is None:
            tso = HAVE_C_SUM
        self._counters()
        self.offload_error: str | None = None
        if _queue_of is not None:  # another queue: the first one's framing, or none at all
            fd, self.name = _open(path, name, base | (IFF_VNET_HDR if offload else 0), exclusive=False)
            if offload:
                try:
                    fcntl.ioctl(fd, TUNSETOFFLOAD, OFFLOADS if tso else 0)
                except OSError as e:
                    os.close(fd)
                    raise LocalError(f"TUN device {name!r}: TUNSETOFFLOAD failed: {e.strerror}") from None
            self._fd, self.offload, self.tso = fd, offload, offload and tso
            return
        if offload:
            try:
                fd, self.name = _open(path, name, base | IFF_VNET_HDR)
            except LocalError as e:
                self.offload_error = str(e)
            else:
                try:
                    fcntl.ioctl(fd, TUNSETOFFLOAD, OFFLOADS if tso else 0)
                except OSError as e:
                    os.close(fd)  # the device goes with it: open it again, plain
                    self.offload_error = f"TUNSETOFFLOAD failed: {e.strerror}"
                else:
                    self._fd, self.offload, self.tso = fd, True, tso
                    return
        self._fd, self.name = _open(path, name, base)

    def _counters(self) -> None:
        self.drops = 0
        self.malformed = 0
        self.write_errors: dict[int, int] = {}
        self.mtu: int | None = None
        self.offload = False
        self.tso = False
        self.gso_refused = False  # the kernel refused a super-packet: plain writes from then on
        self._closed = False

    @classmethod
    def adopt(cls, fd: int, name: str, *, offload: bool, tso: bool) -> Tun:
        """A queue of device ``name`` opened by another process (a data-plane worker's, passed by
        the daemon), with the framing it was opened with."""
        tun = cls.__new__(cls)
        tun._counters()
        tun.offload_error = None
        tun.multi_queue, tun._path = True, TUN_PATH
        tun._fd, tun.name, tun.offload, tun.tso = fd, name, offload, offload and tso
        os.set_blocking(fd, False)
        return tun

    def attach_queue(self) -> Tun:
        """Another queue of this multi-queue device, with the same framing (see the class)."""
        if not self.multi_queue:
            raise LocalError(f"TUN device {self.name}: not opened with multi_queue, it has one queue")
        if self._closed:
            raise LocalError(f"TUN device {self.name}: closed")
        return Tun(self.name, path=self._path, offload=self.offload, tso=self.tso, _queue_of=self)

    def __repr__(self) -> str:
        state = "tso" if self.tso else self.offload
        return f"Tun({self.name!r}, fd={-1 if self._closed else self._fd}, offload={state})"

    def fileno(self) -> int:
        return self._fd

    def read(self, limit: int = 64) -> list[bytes]:
        """The packets queued (``limit`` reads at most), each one whole IP packet; [] if none. With
        offloads, super-packets come back as their segments (so there may be more than ``limit``).

        ``LocalError`` if the device is unusable (deleted under us) and nothing was read.
        """
        packets: list[bytes] = []
        append, read, fd = packets.append, os.read, self._fd
        size = VNET_READ_SIZE if self.tso else READ_SIZE + VNET_HDR_LEN if self.offload else READ_SIZE
        try:
            for _ in range(limit):
                append(read(fd, size))
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as e:
            if not packets:
                raise LocalError(f"TUN device {self.name}: read failed: {e.strerror}") from None
        if self.offload:
            return self._split(packets)
        return packets

    def _split(self, frames: list[bytes]) -> list[bytes]:
        packets: list[bytes] = []
        for frame in frames:
            if len(frame) <= VNET_HDR_LEN or frame[0] or frame[1]:  # GSO, NEEDS_CSUM (or junk)
                try:
                    packets += split_frame(frame)
                except Drop:
                    self.malformed += 1
            else:
                packets.append(frame[VNET_HDR_LEN:])
        return packets

    def write(self, packet: bytes) -> bool:
        """Hand one IP packet (checksums valid) to the kernel, as if it arrived on the device.
        False (and counted in ``drops``) if the kernel refused it."""
        return self._write(ZERO_HEADER + packet if self.offload else packet, 1)

    def _write(self, frame: bytes, count: int) -> bool:
        try:
            os.write(self._fd, frame)
        except OSError as e:
            self.drops += count
            code = e.errno or 0
            self.write_errors[code] = self.write_errors.get(code, 0) + count
            return False
        return True

    def _write_gso(self, frame: bytes) -> int:
        """Write a super-packet: 0, or the errno (EINVAL is left to the caller to count)."""
        try:
            os.write(self._fd, frame)
        except OSError as e:
            code = e.errno or 0
            if code != errno.EINVAL:
                count = _segments(frame)
                self.drops += count
                self.write_errors[code] = self.write_errors.get(code, 0) + count
            return code or -1
        return 0

    def write_many(self, packets: Iterable[bytes]) -> int:
        """:meth:`write` each packet (with offloads: the TCP segments of one flow coalesced into
        super-packets); returns how many packets the kernel took."""
        if not self.offload:
            return sum(1 for p in packets if self._write(p, 1))
        return _write_frames(self, packets)

    def configure(
        self,
        *,
        mtu: int = 1400,
        addresses: Sequence[str] = (),
        up: bool = True,
        txqueuelen: int | None = None,
        runner: Runner = run_netlink,
    ) -> None:
        """Set the MTU (and queue length), add ``addresses`` (``"10.231.8.1/24"``; ``ip addr
        replace``, so calling it again is harmless) and bring the device up (over netlink unless
        ``runner`` is :func:`~snakeswan.io.routes.run_ip`)."""
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
            v6 = [
                str(ipaddress.ip_interface(a).ip) for a in addresses if ipaddress.ip_interface(a).version == 6
            ]
            if v6 and runner is run_netlink and not netlink.wait_usable(self.name, v6):
                raise LocalError(f"TUN device {self.name}: {', '.join(v6)} still tentative after 1 s")

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
    ``inject_drops``). ``refuse_writes`` makes :meth:`write` fail like a full kernel queue,
    ``refuse_gso`` makes super-packets fail like a kernel that does not take them.
    ``fileno()`` is the read end of a pipe, readable while packets are queued (-1 after close).
    ``offload=True`` speaks the offload framing like :class:`Tun` with offloads: :meth:`inject`
    takes frames with their ``virtio_net_hdr`` (super-packets too), :meth:`read` returns plain
    packets, and :attr:`written` holds frames (coalesced by :meth:`write_many`).
    """

    def __init__(self, name: str = "mem0", *, queue_limit: int | None = None, offload: bool = False) -> None:
        self.name = name
        self.queue_limit = queue_limit
        self.offload = offload
        self.queue: deque[bytes] = deque()
        self.written: list[bytes] = []
        self.drops = 0
        self.malformed = 0
        self.inject_drops = 0
        self.refuse_writes = False
        self.refuse_gso = False  # refuse super-packets like a kernel without GSO writes (EINVAL)
        self.gso_refused = False
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
        """Queue ``packet`` (with offloads: a frame) for :meth:`read`; False if ``queue_limit``
        made it a drop."""
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
        if not self.offload:
            return out
        packets: list[bytes] = []
        for frame in out:
            try:
                packets += split_frame(frame)
            except Drop:
                self.malformed += 1
        return packets

    def write(self, packet: bytes) -> bool:
        return self._write(ZERO_HEADER + packet if self.offload else packet, 1)

    def _write(self, frame: bytes, count: int) -> bool:
        if self._closed:
            raise LocalError(f"memory TUN {self.name} is closed")
        if self.refuse_writes:
            self.drops += count
            return False
        self.written.append(bytes(frame))
        return True

    def _write_gso(self, frame: bytes) -> int:
        if self.refuse_gso:
            return errno.EINVAL
        return 0 if self._write(frame, _segments(frame)) else errno.ENOBUFS

    def write_many(self, packets: Iterable[bytes]) -> int:
        if not self.offload:
            return sum(1 for p in packets if self._write(p, 1))
        return _write_frames(self, packets)

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
