"""A helper process that makes MODP key pairs ahead of need (``[daemon] dh_precompute``).

The daemon is one thread, and a MODP-2048 key pair is ~0.23 ms of its CPU per Main Mode (and per
Quick Mode with PFS) that does not depend on the peer. ``python -m snakeswan.daemon.dh_worker``
makes them on another core; the daemon keeps them in a :class:`~snakeswan.crypto.dh_stock.DhStock`
and its exchanges take one each (or make their own when the stock is empty).

The pipe protocol, one line each way per item, ASCII:

- daemon -> helper: ``<group> <count>``: make ``count`` pairs of DH group ``group``;
- helper -> daemon: ``<group> <x in hex> <g^x in hex>``.

The private exponents cross a pipe between the daemon and its own child, nothing else: no file,
no log line (the helper prints nothing else), and each is used once. The helper draws them from
``os.urandom``, as the daemon does. It exits when the daemon closes the pipe (a killed daemon
included) and ignores SIGINT, which a terminal sends to the whole process group: the daemon
decides when it stops. If the helper dies or says something malformed, the daemon logs it once and
makes its key pairs itself from then on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import snakeswan
from snakeswan.config.model import Config
from snakeswan.crypto.dh import ModpGroup, dh_group
from snakeswan.crypto.dh_stock import DhStock
from snakeswan.errors import CryptoError

log = logging.getLogger("snakeswan.daemon")

MAX_REQUEST = 4096  # pairs in one request at most (a bad line cannot make the helper spin for long)
MAX_LINE = 4096  # an answer line is ~2.2 KB for MODP-8192; longer: not the helper we know


def serve(stdin: int = 0, stdout: int = 1) -> int:
    """The helper's side: answer requests until the daemon closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return _serve(stdin, stdout)
    except BrokenPipeError:  # the daemon stopped reading (it is stopping, or gave up on us)
        return 0


def _serve(stdin: int, stdout: int) -> int:
    with open(stdin, "rb", buffering=0, closefd=False) as rd, open(stdout, "wb", closefd=False) as wr:
        buffer = b""
        while chunk := rd.read(4096):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                try:
                    group_text, count_text = line.split()
                    group, count = int(group_text), int(count_text)
                    impl = dh_group(group)
                except (ValueError, CryptoError):
                    return 2  # not a request of ours: stop (the daemon sees the pipe close)
                if not isinstance(impl, ModpGroup) or not 0 < count <= MAX_REQUEST:
                    return 2
                for _ in range(count):
                    x, public = impl.generate_numbers(os.urandom)
                    wr.write(b"%d %x %s\n" % (group, x, public.hex().encode()))
                wr.flush()
    return 0


class DhWorker:
    """The daemon's side: starts the helper, asks for what the stock wants, files what comes."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, stock: DhStock, command: list[str] | None = None
    ) -> None:
        self.loop = loop
        self.stock = stock
        self.command = command or [sys.executable, "-m", "snakeswan.daemon.dh_worker"]  # tests: another
        self.proc: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self.lost: str | None = None  # why the helper is gone, once it is

    def start(self) -> None:
        try:
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": str(Path(snakeswan.__file__).resolve().parents[1])},
            )
        except OSError as e:
            self._gone(f"could not start: {e.strerror}")
            return
        assert self.proc.stdin is not None and self.proc.stdout is not None
        os.set_blocking(self.proc.stdin.fileno(), False)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.loop.add_reader(self.proc.stdout.fileno(), self._readable)
        log.info("DH key pairs of groups %s made ahead by helper pid %d", self.stock.groups, self.proc.pid)
        self.refill()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.lost is None

    def refill(self) -> None:
        """Ask for what the stock wants (cheap when it wants nothing: call it after every input)."""
        if not self.running:
            return
        wanted = self.stock.wanted()
        if not wanted:
            return
        assert self.proc is not None and self.proc.stdin is not None
        request = b"".join(b"%d %d\n" % (g, n) for g, n in wanted.items())
        try:
            written = os.write(self.proc.stdin.fileno(), request)
        except BlockingIOError:
            written = 0
        except OSError as e:
            self._gone(f"pipe: {e.strerror}")
            return
        if written != len(request):  # a full pipe: the helper is far behind; ask again later
            self.stock.lost()
            if written:
                self._gone("request cut short")

    def _readable(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            data = os.read(self.proc.stdout.fileno(), 1 << 16)
        except BlockingIOError:
            return
        except OSError as e:
            self._gone(f"pipe: {e.strerror}")
            return
        if not data:  # its end of the pipe closed: it is exiting (its status comes a moment later)
            try:
                self._gone(f"exited ({self.proc.wait(1.0)})")
            except subprocess.TimeoutExpired:
                self._gone("closed its output")
            return
        *lines, self._buffer = (self._buffer + data).split(b"\n")
        if len(self._buffer) > MAX_LINE:
            self._gone("sent a malformed line")
            return
        for line in lines:
            try:
                group_text, x_text, public_text = line.split()
                self.stock.add(int(group_text), int(x_text, 16), bytes.fromhex(public_text.decode()))
            except (ValueError, UnicodeDecodeError, CryptoError):
                self._gone("sent a malformed line")
                return

    def _gone(self, why: str) -> None:
        if self.lost is not None:
            return
        self.lost = why
        self.stock.lost()
        log.warning("DH helper %s: key pairs are made in the daemon from now on", why)
        self._stop()

    def _stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.stdout is not None:
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_reader(proc.stdout.fileno())
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        try:
            proc.wait(1.0)  # the closed pipe ends it
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        if self.lost is None:
            self.lost = "stopped"
        self._stop()
        self.proc = None


def configured_groups(config: Config) -> list[int]:
    """The DH groups the configuration may use: its IKE proposals' and its children's PFS groups
    (the stock keeps the MODP ones)."""
    groups: list[int] = []
    for conn in config.connections:
        groups += [p.group for p in conn.proposals]
        for child in conn.children:
            groups += [p.pfs_group for p in child.proposals if p.pfs_group is not None]
    return list(dict.fromkeys(groups))


if __name__ == "__main__":
    sys.exit(serve())
