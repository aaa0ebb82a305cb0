"""The DH helper process (daemon/dh_worker.py), for real: it answers requests with pairs whose
public value is g^x; the daemon's side keeps the stock topped up as pairs are taken; a helper that
dies or talks nonsense is logged once and the exchanges make their own pairs from then on."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from snakeswan.config.loader import parse_config
from snakeswan.crypto.dh_primes import MODP_PRIMES
from snakeswan.crypto.dh_stock import DhStock
from snakeswan.daemon.dh_worker import DhWorker, configured_groups
from snakeswan.wire.enums import DhGroup

MODP2048, MODP3072 = int(DhGroup.MODP_2048), int(DhGroup.MODP_3072)


def helper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "snakeswan.daemon.dh_worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )


def test_the_helper_answers_with_pairs_of_the_group() -> None:
    proc = helper()
    out, _ = proc.communicate(b"14 3\n15 1\n", timeout=30)
    lines = [line.split() for line in out.splitlines()]
    assert [int(g) for g, _, _ in lines] == [MODP2048] * 3 + [MODP3072]
    for g, x, public in lines:
        assert pow(2, int(x, 16), MODP_PRIMES[int(g)]) == int(public, 16)
        assert len(bytes.fromhex(public.decode())) == (MODP_PRIMES[int(g)].bit_length() + 7) // 8
    assert len({x for _, x, _ in lines}) == 4 and proc.returncode == 0


@pytest.mark.parametrize("request_", [b"19 2\n", b"14 0\n", b"14 99999\n", b"hello\n"])
def test_the_helper_stops_at_a_request_it_does_not_take(request_: bytes) -> None:
    proc = helper()  # ECP-256 (19) is cheap and not stocked; counts out of range; not a request
    out, _ = proc.communicate(request_, timeout=30)
    assert out == b"" and proc.returncode == 2


def run_until(loop: asyncio.AbstractEventLoop, done: object, timeout: float = 30.0) -> None:
    async def wait() -> None:
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:  # type: ignore[operator]
            await asyncio.sleep(0.01)

    loop.run_until_complete(wait())
    assert done(), "timed out"  # type: ignore[operator]


def test_the_stock_is_topped_up_as_pairs_are_taken() -> None:
    loop = asyncio.new_event_loop()
    stock = DhStock([MODP2048], depth=8)
    worker = DhWorker(loop, stock)
    try:
        worker.start()
        run_until(loop, lambda: len(stock._ready[MODP2048]) == 8)
        taken = {stock.take(MODP2048).public for _ in range(6)}  # type: ignore[union-attr]
        worker.refill()
        run_until(loop, lambda: len(stock._ready[MODP2048]) == 8)
        left = {stock.take(MODP2048).public for _ in range(8)}  # type: ignore[union-attr]
        assert len(taken | left) == 14  # never the same pair twice
    finally:
        worker.close()
        loop.close()
    assert worker.proc is None


def test_a_helper_that_dies_is_said_once_and_the_exchanges_make_their_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.new_event_loop()
    stock = DhStock([MODP2048], depth=4)
    worker = DhWorker(loop, stock)
    caplog.set_level(logging.INFO)
    try:
        worker.start()
        run_until(loop, lambda: len(stock._ready[MODP2048]) == 4)
        assert worker.proc is not None
        os.kill(worker.proc.pid, 9)
        run_until(loop, lambda: worker.lost is not None)
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warned) == 1 and warned[0].startswith("DH helper exited (-9)")
        for _ in range(4):
            assert stock.take(MODP2048) is not None  # what came before still serves
        assert stock.take(MODP2048) is None
        worker.refill()  # asks nobody now
        assert worker.proc is not None and worker.proc.poll() is not None
    finally:
        worker.close()
        loop.close()


@pytest.mark.parametrize(
    "said",
    ["14 2 00ff\n", "14 zz 00\n", "nonsense\n", "1" * 5000],  # the last: no end of line
)
def test_a_helper_that_talks_nonsense_is_dropped(said: str) -> None:
    """A line that is no pair of the group (a short public value, not hex, not three fields, longer
    than any answer)."""
    loop = asyncio.new_event_loop()
    stock = DhStock([MODP2048], depth=2)
    code = f"import sys, time; sys.stdout.write({said!r}); sys.stdout.flush(); time.sleep(30)"
    worker = DhWorker(loop, stock, [sys.executable, "-c", code])
    try:
        worker.start()
        run_until(loop, lambda: worker.lost is not None)
        assert worker.lost == "sent a malformed line" and stock.take(MODP2048) is None
        assert worker.proc is not None and worker.proc.poll() is not None  # stopped, not left behind
    finally:
        worker.close()
        loop.close()


def test_the_configured_groups() -> None:
    config = parse_config(
        """
[connections.a]
remote_addrs = ["10.231.0.2"]
proposals = ["aes128-sha256-modp2048", "aes256-sha256-ecp256"]
local = { auth = "psk" }
remote = { auth = "psk" }
[connections.a.children.c]
remote_ts = ["10.231.2.0/24"]
esp_proposals = ["aes128gcm16-modp3072", "aes128gcm16"]
[secrets.ike-a]
secret = "x"
"""
    )
    assert configured_groups(config) == [MODP2048, int(DhGroup.ECP_256), MODP3072]


def test_the_helper_leaves_quietly_when_the_daemon_stops_reading() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakeswan.daemon.dh_worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the daemon gone from the reading end, the helper still writing
    proc.stdin.write(b"14 4096\n")
    proc.stdin.close()
    assert proc.wait(30) == 0 and proc.stderr.read() == b""  # no traceback in the daemon's log


def test_the_daemon_starts_replaces_and_stops_its_helper(tmp_path: Path) -> None:
    """At start for the configured MODP groups; a reload replaces a lost helper, follows the
    groups, and `dh_precompute = false` stops it (the exchanges then make their own pairs)."""
    from snakeswan.daemon.daemon import Daemon  # noqa: PLC0415
    from tests.unit.cli.test_cli import GOOD  # noqa: PLC0415

    conf = tmp_path / "d.toml"
    conf.write_text(GOOD)
    d = Daemon(str(conf), control_path=str(tmp_path / "c.sock"))
    loop = asyncio.new_event_loop()
    d._loop = loop
    try:
        d._dh_helper()
        first = d.dh_worker
        assert first is not None and d.engine.ctx.dh_stock is first.stock
        assert first.stock.groups == [MODP2048]  # IKE and PFS both modp2048
        run_until(loop, lambda: len(first.stock._ready[MODP2048]) == first.stock.depth)
        assert first.proc is not None
        os.kill(first.proc.pid, 9)
        run_until(loop, lambda: first.lost is not None)
        conf.write_text(GOOD.replace("aes128gcm16-modp2048", "aes128gcm16-modp3072"))
        d._reload()
        second = d.dh_worker
        assert second is not None and second is not first and second.running
        assert d.engine.ctx.dh_stock is second.stock and second.stock.groups == [MODP2048, MODP3072]
        run_until(loop, lambda: len(second.stock._ready[MODP3072]) == second.stock.depth)
        conf.write_text(GOOD.replace("[connections.gw]", "[daemon]\ndh_precompute = false\n[connections.gw]"))
        d._reload()
        assert d.dh_worker is None and d.engine.ctx.dh_stock is None
        assert second.proc is None and not second.running
    finally:
        if d.dh_worker is not None:
            d.dh_worker.close()
        loop.close()
