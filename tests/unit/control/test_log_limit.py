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
    assert [lim.allow(key, 0.0) for _ in range(8)] == [True] * 5 + [False] * 3
    assert lim.allow(key, 0.05) is False  # half a token
    assert lim.allow(key, 0.1) is True  # one token back
    other = ("ike", "drop", "wrong address for this SA")
    assert lim.allow(other, 0.1) is True  # another reason has its own bucket
    for _ in range(3):
        lim.allow(key, 0.1)
    assert lim.summary(0.1) == [(key, 7)] and lim.summary(0.2) == []  # every one kept out, once
    assert lim.summary(100.0) == [] and not lim._buckets  # idle and full again: forgotten
    assert (
        describe(key, 7, 10.0)
        == "7 ike drop unknown cookies records not logged (over the log's limit of 10 a second)"
    )


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
    # nothing is said of them along the way (a line per token was noise of its own), every record
    # kept out is counted in the summary, one line per kind
    assert not [m for m in lines if "records not logged" in m]
    d.log_limit.log_summary(1e9)
    said = [r.getMessage() for r in caplog.records if "records not logged" in r.getMessage()]
    assert said == [
        f"{5000 - len(received)} ike received MM1 records not logged (over the log's limit of 50 a second)"
    ]


def test_stopping_with_many_sas_says_the_count_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A gateway deleting its SAs as it stops: the deletes over the limit are one line at the end,
    not a line with every record let through."""
    lim = LogLimiter()
    caplog.set_level(logging.INFO)
    for i in range(2000):  # 2,000 deletes over 1 s: 200 at once, then 50 a second
        lim.log(Record("ike", "ike_sa_deleted", {"sa": i, "reason": "daemon stopping"}), i / 2000)
    lim.log_summary(1.0)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    logged = [r for r in caplog.records if r.levelno == logging.INFO]
    assert 200 <= len(logged) <= 251
    assert warned == [
        f"{2000 - len(logged)} ike ike_sa_deleted daemon stopping records not logged"
        " (over the log's limit of 50 a second)"
    ]
