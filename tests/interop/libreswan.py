"""The real Libreswan 4.10 (pluto, Debian's package) as a test peer, one pluto per network namespace.

How it runs here (``scripts/setup_libreswan.sh`` prepares it):

* the package is unpacked (``apt-get download`` + ``dpkg -x``) into :data:`LIBRESWAN_ROOT`, not
  installed: it conflicts with strongSwan's starter;
* pluto hard-wires ``/usr/libexec/ipsec/addconn`` (its helper that loads ``auto=add``
  connections): inside the mount namespace ``ip netns exec`` creates, the unpacked
  ``usr/libexec/ipsec`` is bind-mounted on the (empty) ``/usr/libexec/ipsec`` mount point;
* everything else is per pluto in its work dir: ``ipsec.conf``, ``ipsec.secrets``, an NSS
  database (``certutil -N``), the log; the control socket and pid file live in a short private
  run dir (``--rundir``; a socket path must fit 108 bytes);
* ``leftupdown=/bin/true`` (the updown script would try to install routes/iptables);
* this kernel has XFRM but no ESP: pluto's XFRM NEWSA/UPDSA would fail and it would abandon the
  Quick Mode; an ``LD_PRELOAD`` shim (``libreswan_xfrm_shim.c``, compiled with gcc by
  :func:`build_shim`) answers them with success so the exchange completes on the wire. No ESP
  traffic flows: the cells check IKE (proposals, SPIs on both sides, Deletes both ways);
* Debian's pluto refuses IKEv1 unless ``config setup`` says ``ikev1-policy=accept``: the one
  global setting the tests change; connections otherwise keep Libreswan's defaults unless a cell
  says otherwise.

Everything has a timeout; :meth:`Pluto.stop` is SIGTERM (pluto deletes its SAs), then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.netns import Netns

LIBRESWAN_ROOT = Path(os.environ.get("SNAKESWAN_LIBRESWAN_ROOT", "/opt/snakeswan-libreswan"))
LIBEXEC = LIBRESWAN_ROOT / "usr/libexec/ipsec"
PLUTO_BIN = LIBEXEC / "pluto"
WHACK_BIN = LIBEXEC / "whack"
MOUNT_POINT = Path("/usr/libexec/ipsec")
SHIM_SOURCE = Path(__file__).with_name("libreswan_xfrm_shim.c")


class PlutoError(RuntimeError):
    pass


def libreswan_available() -> tuple[bool, str]:
    """(available, reason): the unpacked pluto, its mount point, certutil and gcc."""
    if not os.access(PLUTO_BIN, os.X_OK) or not os.access(WHACK_BIN, os.X_OK):
        return False, f"Libreswan not unpacked in {LIBRESWAN_ROOT} (bash scripts/setup.sh)"
    if not MOUNT_POINT.is_dir():
        return False, f"{MOUNT_POINT} (mount point for pluto's helpers) missing (bash scripts/setup.sh)"
    for tool in ("certutil", "gcc"):
        if shutil.which(tool) is None:
            return False, f"{tool} not installed (bash scripts/setup.sh)"
    return True, ""


def require_libreswan() -> None:
    """Skip the test (fail it when ``CI`` is set) unless Libreswan is unpacked and usable."""
    ok, reason = libreswan_available()
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def build_shim(outdir: Path) -> Path:
    """Compile the XFRM shim into ``outdir``; returns the shared object's path."""
    out = Path(outdir) / "libreswan_xfrm_shim.so"
    cmd = ["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-o", str(out), str(SHIM_SOURCE), "-ldl"]
    cp = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if cp.returncode != 0:
        raise PlutoError(f"building the XFRM shim failed:\n{cp.stderr}")
    return out


def conn_section(name: str, **options: str | None) -> str:
    """One ``conn`` section of ipsec.conf; options whose value is None are left out (defaults)."""
    lines = [f"conn {name}"]
    lines += [f"\t{key}={value}" for key, value in options.items() if value is not None]
    return "\n".join(lines) + "\n"


# ``#2: "gw":500 STATE_QUICK_R2 (IPsec SA established); ...`` and the SPI line of an IPsec SA:
# ``#2: "gw":500 esp.8d2e5c1a@10.231.0.1 esp.c0ffee12@10.231.0.2 tun.0@... Traffic: ...``; an
# instance of a connection to %any names its peer: ``#2: "rw"[1] 10.231.0.1:500 STATE_QUICK_R2``
_INSTANCE = r'(?:\d+ )?#(?P<serial>\d+): "(?P<conn>[^"]+)"\S*(?: \d[\d.:]*)?'
_STATE = re.compile(rf"^{_INSTANCE} (?P<state>STATE_\w+)", re.M)
_ESP = re.compile(
    rf"^{_INSTANCE} esp\.(?P<out>[0-9a-f]+)@(?P<peer>\S+) "
    r"esp\.(?P<in>[0-9a-f]+)@(?P<us>\S+)",
    re.M,
)


@dataclass(frozen=True)
class PlutoState:
    serial: int
    conn: str
    state: str  # STATE_MAIN_R3, STATE_QUICK_I2, ...
    spi_out: int | None = None  # ESP SPI pluto sends with (our inbound SPI)
    spi_in: int | None = None  # ESP SPI pluto receives with (our outbound SPI)

    @property
    def ipsec(self) -> bool:
        return self.state.startswith("STATE_QUICK")

    @property
    def established(self) -> bool:
        return self.state in ("STATE_MAIN_R3", "STATE_MAIN_I4", "STATE_AGGR_R2", "STATE_AGGR_I2") or (
            self.state in ("STATE_QUICK_R2", "STATE_QUICK_I2")
        )


def parse_status(text: str) -> list[PlutoState]:
    """The states of ``whack --status`` (IKE and IPsec), with the ESP SPIs of IPsec states."""
    spis = {int(m["serial"]): (int(m["out"], 16), int(m["in"], 16)) for m in _ESP.finditer(text)}
    out: dict[int, PlutoState] = {}
    for m in _STATE.finditer(text):
        serial = int(m["serial"])
        s_out, s_in = spis.get(serial, (None, None))
        out.setdefault(serial, PlutoState(serial, m["conn"], m["state"], s_out, s_in))
    return list(out.values())


class Pluto:
    """One pluto in a namespace: ``start()``, ``whack(...)``, ``states()``, ``stop()``."""

    def __init__(
        self,
        ns: Netns,
        workdir: Path,
        shim: Path,
        *,
        conns: str,
        secrets: str,
        setup: str = "",
        debug: bool = False,
    ) -> None:
        self.ns = ns
        self.workdir = Path(workdir).absolute()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.shim = shim
        self.conf_path = self.workdir / "ipsec.conf"
        self.secrets_path = self.workdir / "ipsec.secrets"
        self.nss_dir = self.workdir / "nss"
        self.log_path = self.workdir / "pluto.log"
        self.stdout_path = self.workdir / "pluto.stdout"
        self.run_dir = Path(tempfile.mkdtemp(prefix="ssw-pluto-"))  # short: the socket path
        self.ctl = self.run_dir / "pluto.ctl"
        self.proc: subprocess.Popen[Any] | None = None
        self.nss_dir.mkdir(exist_ok=True)
        if not (self.nss_dir / "cert9.db").exists():
            subprocess.run(
                ["certutil", "-N", "-d", f"sql:{self.nss_dir}", "--empty-password"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            )
        debug_line = "\tplutodebug=all\n" if debug else ""
        self.conf_path.write_text(
            "config setup\n"
            f"\tlogfile={self.log_path}\n"
            "\tlogappend=no\n"
            f"\tdumpdir={self.run_dir}\n"
            "\tikev1-policy=accept\n"
            f"{debug_line}{setup}\n{conns}"
        )
        self.secrets_path.write_text(secrets)
        self.secrets_path.chmod(0o600)

    def __repr__(self) -> str:
        return f"Pluto({self.ns.name}, pid={self.proc.pid if self.proc else None})"

    # -- credentials ------------------------------------------------------------------------------
    def add_ca(self, cert: Path, nickname: str = "ca") -> None:
        """Trust ``cert`` (PEM) as a CA in pluto's NSS database (before :meth:`start`)."""
        self._nss("certutil", "-A", "-n", nickname, "-t", "CT,,", "-i", str(cert))

    def add_identity(self, p12: Path, password: str) -> None:
        """Import a PKCS#12 file (certificate + private key, its friendly name is the nickname
        ``leftcert=`` names) into pluto's NSS database (before :meth:`start`)."""
        self._nss("pk12util", "-i", str(p12), "-W", password)

    def _nss(self, tool: str, *args: str) -> None:
        cmd = [tool, "-d", f"sql:{self.nss_dir}", *args]
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
        if cp.returncode != 0:
            raise PlutoError(f"{' '.join(cmd)} failed: {cp.stdout}{cp.stderr}")

    # -- life cycle -----------------------------------------------------------------------------
    def start(self, timeout: float = 15) -> Pluto:
        if self.proc is not None:
            raise PlutoError("already started")
        q = shlex.quote
        inner = (
            f"mount --bind {q(str(LIBEXEC))} {q(str(MOUNT_POINT))} && exec env LD_PRELOAD={q(str(self.shim))} "
            f"{q(str(PLUTO_BIN))} --nofork --config {q(str(self.conf_path))} "
            f"--secretsfile {q(str(self.secrets_path))} --ipsecdir {q(str(self.workdir))} "
            f"--nssdir {q(str(self.nss_dir))} --rundir {q(str(self.run_dir))}"
        )
        with self.stdout_path.open("wb") as out:
            self.proc = self.ns.popen("sh", "-c", inner, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PlutoError(
                    f"pluto in {self.ns.name} exited ({self.proc.returncode}):\n"
                    f"{self.stdout_path.read_text(errors='replace')[-3000:]}\n{self._log_tail()}"
                )
            # addconn (forked by pluto) loads the auto=add connections once pluto listens
            if (
                self.ctl.exists()
                and "listening for IKE messages" in self.log()
                and self.whack("--status", check=False, timeout=5).returncode == 0
                and self._conns_loaded()
            ):
                return self
            time.sleep(0.05)
        self.stop(grace=0)
        raise PlutoError(f"pluto in {self.ns.name} did not come up within {timeout}s\n{self._log_tail()}")

    def _conns_loaded(self) -> bool:
        want = re.findall(r"^conn (\S+)", self.conf_path.read_text(), re.M)
        log = self.log()
        failed = re.search(r'"([^"]+)": failed to add .*', log)
        if failed:
            raise PlutoError(f"pluto refused connection {failed[1]}: {failed[0]}")
        return all(f'"{name}": added' in log for name in want)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 5) -> int | None:
        """SIGTERM (pluto sends Deletes), SIGKILL after ``grace`` seconds. Returns the exit code."""
        p = self.proc
        if p is None:
            return None
        if p.poll() is None:
            if grace > 0:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=grace)
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=5)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        return p.returncode

    # -- whack ------------------------------------------------------------------------------------
    def whack(self, *args: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        """``whack --ctlsocket <ours> args...`` (run on the host: the socket is a file)."""
        cmd = [str(WHACK_BIN), "--ctlsocket", str(self.ctl), *args]
        try:
            cp = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as e:
            raise PlutoError(f"timed out after {timeout}s: {' '.join(cmd)}\n{self._log_tail()}") from e
        if check and cp.returncode != 0:
            raise PlutoError(
                f"exit {cp.returncode}: {' '.join(cmd)}\nstdout: {cp.stdout[-2000:]}\n"
                f"stderr: {cp.stderr[-2000:]}\n{self._log_tail()}"
            )
        return cp

    def initiate(self, conn: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Negotiate ``conn`` (ISAKMP SA and IPsec SA); returns when whack does."""
        return self.whack("--name", conn, "--initiate", timeout=timeout)

    def terminate(self, conn: str) -> subprocess.CompletedProcess[str]:
        """Delete ``conn``'s SAs (pluto sends Delete for the IPsec SAs and the ISAKMP SA)."""
        return self.whack("--name", conn, "--terminate")

    def states(self) -> list[PlutoState]:
        return parse_status(self.whack("--status").stdout)

    def wait_states(
        self, pred: Callable[[list[PlutoState]], Any], timeout: float = 15, interval: float = 0.1
    ) -> list[PlutoState]:
        """Poll :meth:`states` until ``pred(states)`` is true; returns them (raises on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.states()
            if pred(states):
                return states
            if time.monotonic() >= deadline:
                status = self.whack("--status", check=False).stdout[-3000:]
                raise PlutoError(
                    f"{self.ns.name}: states never matched within {timeout}s: {states}\n{status}\n"
                    f"{self._log_tail()}"
                )
            time.sleep(interval)

    # -- log --------------------------------------------------------------------------------------
    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _log_tail(self, lines: int = 60) -> str:
        tail = "\n".join(self.log().splitlines()[-lines:])
        return f"--- last lines of {self.log_path} ---\n{tail}"
