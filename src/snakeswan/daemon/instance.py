"""One daemon per control socket: a lock file next to the socket, and a socket path that is only
ever taken over when nobody answers on it (charon refuses to start twice the same way, with its
pid file).

The lock is ``flock(LOCK_EX | LOCK_NB)`` on ``<control>.lock``, which holds the pid of its owner; the
kernel releases it when the process ends however it ends, so a crashed daemon never blocks the next
one. The lock file itself is left in place (removing it would let a third daemon lock a fresh file
while a second still holds the old one).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import stat
from pathlib import Path

from snakeswan.errors import LocalError

_HINT = "run as root, or pass --control PATH in a directory you can write"


class InstanceLock:
    """The lock of the daemon that serves ``control_path``."""

    def __init__(self, control_path: str) -> None:
        self.control_path = control_path
        self.path = control_path + ".lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise LocalError naming the daemon that holds it."""
        directory = Path(self.control_path).parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise LocalError(f"cannot create {e.filename or self.path}: {e.strerror} ({_HINT})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise LocalError(
                f"another snakeswan daemon (pid {pid}) is running with control socket {self.control_path}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None


def claim_socket_path(path: str) -> None:
    """Make ``path`` free for a new control socket: a stale socket (nobody listening) is removed; a
    live one, or anything that is not a socket, is an error (never unlink another daemon's socket)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise LocalError(f"cannot use control socket {path}: {e.strerror} ({_HINT})") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise LocalError(f"{path} exists and is not a socket; not removing it")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            pass  # nobody listens: a socket left behind by a daemon that died
        except OSError as e:  # e.g. a full backlog: somebody is there, or we cannot tell
            raise LocalError(f"cannot tell whether a daemon answers on {path}: {e.strerror or e}") from None
        else:
            raise LocalError(f"a daemon is answering on {path}; not replacing its control socket")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
