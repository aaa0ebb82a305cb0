"""Rate-limited logging of trace records (per kind and reason): a flood of one kind is cut to a
burst and a rate with a count of what was kept out; other kinds are untouched; waiters see all."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from snakeswan.daemon.daemon import Daemon
from snakeswan.daemon.loglimit import LogLimiter, describe, record_key
from snakeswan.trace import Record
from tests.unit.cli.test_operator import CONF


def test_bucket_burst_rate_and_counts() -> None:
    lim = LogLimiter(rate=10.0, burst=5)
    key = ("ike", "drop", "unknown cookies")
    assert [lim.allow(key, 0.0) for _ in range(8)] == [(True, 0)] * 5 + [(False, 0)] * 3
    assert lim.allow(key, 0.05) == (False, 0)  # half a token
    assert lim.allow(key, 0.1) == (True, 4)  # one token back: logged, saying 4 were not
    other = ("ike", "drop", "wrong address for this SA")
    assert lim.allow(other, 0.1) == (True, 0)  # another reason has its own bucket
    for _ in range(3):
        lim.allow(key, 0.1)
    assert lim.summary(0.1) == [(key, 3)] and lim.summary(0.2) == []
    assert lim.summary(100.0) == [] and not lim._buckets  # idle and full again: forgotten
    assert describe(key, 3) == "3 ike drop unknown cookies records not logged (rate limit, a flood?)"


def test_keys_are_bounded() -> None:
    lim = LogLimiter(rate=0.0, burst=1, max_keys=2)
    for i in range(100):  # variable reasons share one bucket past the limit
        lim.allow(("ike", "drop", f"bad length {i}"), 0.0)
    assert len(lim._buckets) == 3 and ("ike", "drop", "*") in lim._buckets


def test_record_key() -> None:
    assert record_key(Record("ike", "received", {"sa": 1, "msg": "MM1"})) == ("ike", "received", "MM1")
    assert record_key(Record("ike", "drop", {"reason": "x", "msg": "y"})) == ("ike", "drop", "x")
    assert record_key(Record("ike", "ike_sa_deleted", {"sa": 1})) == ("ike", "ike_sa_deleted", "")


def test_a_flood_of_records_is_cut_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "d.toml"
    path.write_text(CONF)
    d = Daemon(str(path), control_path=str(tmp_path / "c.sock"))
    seen: list[Record] = []
    d.waiters.on_record = seen.append  # type: ignore[method-assign]
    caplog.set_level(logging.INFO)
    for i in range(5000):  # a spoofed MM1 flood, all within one instant of the limiter's clock
        d.tracer.emit("ike", "received", sa=i, msg="MM1")
    d.tracer.emit("ike", "ike_sa_established", sa=1)
    lines = [r.getMessage() for r in caplog.records]
    received = [m for m in lines if m.startswith("received sa=")]
    assert d.log_limit.burst <= len(received) < d.log_limit.burst + 100  # the burst, a few refills
    assert "ike_sa_established sa=1" in lines  # another kind is not touched
    assert len(seen) == 5001  # waiters see every record
    # every record kept out is counted: in the warnings logged along the way and the summary
    said = [int(m.split()[0]) for m in lines if m.endswith("records not logged (rate limit, a flood?)")]
    ((key, left),) = d.log_limit.summary(1e9)
    assert key == ("ike", "received", "MM1") and sum(said) + left == 5000 - len(received)
