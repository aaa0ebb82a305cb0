"""Steering inbound ESP/AH to the worker that owns its SA, by SPI, in the kernel (classic BPF).

With several data-plane workers (one per core, each with a queue of a multi-queue TUN device),
each inbound SA belongs to one worker: the one whose number is the SPI modulo the number of
workers (:func:`owner_of`). We choose our inbound SPIs, so the owner is known the moment the SPI
is. The kernel then hands each packet to its owner's socket, without a copy through another
process:

- **Raw ESP/AH**: every raw socket of a protocol gets a copy of every packet; each worker's socket
  carries :func:`raw_program`, which keeps the packets whose SPI it owns (``SO_ATTACH_FILTER``).
  An IPv4 raw socket's filter sees the IP header (of any length) first, an IPv6 one the payload.
- **ESP-in-UDP** (port 4500): the workers' sockets form one ``SO_REUSEPORT`` group, and
  :func:`reuseport_program` picks the socket (``SO_ATTACH_REUSEPORT_CBPF``): IKE (the non-ESP
  marker, four zero bytes) and anything shorter than four bytes (a NAT-T keepalive) go to socket
  0, the daemon's; ESP to socket SPI modulo the number of workers. The kernel numbers the group's
  sockets in the order they joined it, and moves the last one into the hole when one leaves; so
  the daemon opens them all (its own first) and holds them: a worker that dies and is started
  again is handed the same socket and keeps its place. A datagram the program sends past the
  group's end would be placed by hash, so the program is attached before the others join.

A program's instructions are ``struct sock_filter`` records; :func:`attach` hands them to the
kernel, which copies them.
"""

from __future__ import annotations

import contextlib
import ctypes
import socket
import struct

from snakeswan.errors import LocalError

__all__ = [
    "MAX_WORKERS",
    "attach",
    "detach_reuseport",
    "first_socket_program",
    "owner_of",
    "raw_program",
    "reuseport_program",
]

MAX_WORKERS = 256  # a multi-queue TUN device's queues at most (the kernel's MAX_TAP_QUEUES)

SO_ATTACH_FILTER = 26
SO_ATTACH_REUSEPORT_CBPF = 51
SO_DETACH_REUSEPORT_BPF = 68

# classic BPF opcodes (linux/filter.h)
_LD_W_ABS = 0x20  # A = 32 bits at offset k
_LD_W_IND = 0x40  # A = 32 bits at offset X + k
_LDX_B_MSH = 0xB1  # X = 4 * (byte at offset k & 0xf): an IPv4 header's length
_ALU_MOD_K = 0x94  # A %= k
_JEQ_K = 0x15  # A == k ? jump jt : jump jf
_RET_K = 0x06  # return k
_RET_A = 0x16  # return A
_ACCEPT = 0xFFFFFFFF  # keep the whole packet
_INSN = struct.Struct("=HBBI")  # struct sock_filter: code, jt, jf, k
_FPROG = struct.Struct("@HP")  # struct sock_fprog: len, pointer to the instructions

_SPI_OFFSET = {50: 0, 51: 4}  # where the SPI is in an ESP and in an AH header


def _program(insns: list[tuple[int, int, int, int]]) -> bytes:
    return b"".join(_INSN.pack(*i) for i in insns)


def _check(workers: int) -> None:
    if not 1 <= workers <= MAX_WORKERS:
        raise LocalError(f"data-plane workers: {workers} is out of range 1..{MAX_WORKERS}")


def owner_of(spi: int, workers: int) -> int:
    """The worker that owns the inbound SA with this SPI (what the programs compute)."""
    return spi % workers


def raw_program(worker: int, workers: int, *, protocol: int, family: int = socket.AF_INET) -> bytes:
    """The filter of worker ``worker``'s raw socket for ``protocol`` (50 ESP, 51 AH): it keeps the
    packets whose SPI it owns, and the kernel drops the others' copies at this socket."""
    _check(workers)
    if not 0 <= worker < workers:
        raise LocalError(f"data-plane worker {worker}: not one of 0..{workers - 1}")
    if protocol not in _SPI_OFFSET:
        raise LocalError(f"IP protocol {protocol}: only ESP (50) and AH (51) are steered by SPI")
    offset = _SPI_OFFSET[protocol]
    load = (
        [(_LDX_B_MSH, 0, 0, 0), (_LD_W_IND, 0, 0, offset)]  # past the IPv4 header, whatever its length
        if family == socket.AF_INET
        else [(_LD_W_ABS, 0, 0, offset)]  # IPv6 raw sockets see the payload only
    )
    keep = [(_ALU_MOD_K, 0, 0, workers), (_JEQ_K, 0, 1, worker), (_RET_K, 0, 0, _ACCEPT), (_RET_K, 0, 0, 0)]
    return _program(load + keep)


def reuseport_program(workers: int) -> bytes:
    """The program of the ESP-in-UDP socket group (module docstring): the index of the socket
    that gets a datagram (its UDP payload is what the program sees)."""
    _check(workers)
    return _program(
        [
            (_LD_W_ABS, 0, 0, 0),  # shorter than 4 bytes (a keepalive): the program ends, socket 0
            (_ALU_MOD_K, 0, 0, workers),  # the non-ESP marker (IKE) is 0: socket 0 as well
            (_RET_A, 0, 0, 0),
        ]
    )


def attach(sock: socket.socket, program: bytes, *, reuseport: bool = False) -> None:
    """Attach ``program`` to ``sock`` as its filter, or (``reuseport``) as its ``SO_REUSEPORT``
    group's socket chooser. ``LocalError`` if the kernel refuses it."""
    if not program or len(program) % _INSN.size:
        raise LocalError("a BPF program is a whole number of 8-byte instructions")
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _FPROG.pack(len(program) // _INSN.size, ctypes.addressof(buffer))
    option = SO_ATTACH_REUSEPORT_CBPF if reuseport else SO_ATTACH_FILTER
    try:
        sock.setsockopt(socket.SOL_SOCKET, option, fprog)
    except OSError as e:
        what = "the SO_REUSEPORT group's program" if reuseport else "the socket filter"
        raise LocalError(f"{what}: the kernel refused it: {e.strerror}") from None


def first_socket_program() -> bytes:
    """A ``SO_REUSEPORT`` group program that gives every datagram to socket 0 (the first bound):
    a group with a member not ours keeps everything with the daemon, which hashing would not."""
    return _program([(_RET_K, 0, 0, 0)])


def detach_reuseport(sock: socket.socket) -> None:
    """Remove the program of ``sock``'s ``SO_REUSEPORT`` group (if any: no error otherwise)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, 0)
