"""Issue 12: the ``[daemon] metrics`` key (validated at load: fail closed) and the Prometheus
families the daemon exposes, computed from trace records and from the data plane's counters."""

from __future__ import annotations

from collections import deque
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from snakeswan.config.loader import parse_config
from snakeswan.daemon.metrics import Metrics
from snakeswan.errors import ConfigError
from snakeswan.trace import Record
from tests.pair import A_ADDR, B_ADDR, Pair, site_config


def test_metrics_key_parsed() -> None:
    assert parse_config('[daemon]\nmetrics = "127.0.0.1:9400"\n', "m.toml").daemon.metrics == (
        "127.0.0.1",
        9400,
    )
    assert parse_config('[daemon]\nmetrics = "[::1]:9401"\n', "m.toml").daemon.metrics == ("::1", 9401)
    assert parse_config("[daemon]\n", "m.toml").daemon.metrics is None


@pytest.mark.parametrize(
    "value", ['"localhost:9400"', '"127.0.0.1"', '"127.0.0.1:0"', '"127.0.0.1:70000"', "9400", '"::1:9400"']
)
def test_bad_metrics_key_refused_at_load(value: str) -> None:
    with pytest.raises(ConfigError, match=r"m\.toml: daemon\.metrics: expected"):
        parse_config(f"[daemon]\nmetrics = {value}\n", "m.toml")


def samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(m.scrape().decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


class FakeDataPlane:
    """What the collector reads of DataPlane: children, counters(), drops()."""

    def __init__(self) -> None:
        self.children = {0xA1: SimpleNamespace(conn="site", child="net")}
        waiting = SimpleNamespace(queue=deque([b"p1", b"p2"]))
        spd = SimpleNamespace(
            children={("site", "net"): waiting, ("site", "idle"): SimpleNamespace(queue=deque())}
        )
        self.processor = SimpleNamespace(drops={"no_sa": 3, "replay": 1}, spd=spd)
        self.traffic = 0

    def drops(self) -> dict[str, int]:
        return dict(self.processor.drops)

    def counters(self) -> dict[int, dict[str, int]]:
        n = self.traffic
        return {
            0xA1: {
                "bytes_in": 100 * n,
                "packets_in": n,
                "bytes_out": 50 * n,
                "packets_out": n,
                "drop_replay": 1,
            }
        }


def test_counters_follow_the_trace_and_the_data_plane() -> None:
    p = Pair(
        site_config(A_ADDR, B_ADDR, "10.231.1.0/24", "10.231.2.0/24", dpd_delay="10s", dpd_timeout="30s"),
        site_config(B_ADDR, A_ADDR, "10.231.2.0/24", "10.231.1.0/24", dpd_delay="10s", dpd_timeout="30s"),
    )
    dp = FakeDataPlane()
    clock = [0.0]
    m = Metrics(lambda: (p.a.engine, dp), lambda: clock[0])  # type: ignore[arg-type,return-value]
    p.a.engine.tracer.sink = m.on_record
    p.a.engine.initiate("site", now=p.now)
    clock[0] = 0.25  # the "network" takes 250 ms
    p.run(25)
    s = samples(m)
    assert s[("snakeswan_ike_sas", (("state", "established"),))] == 1
    assert s[("snakeswan_established_total", (("conn", "site"), ("kind", "ike")))] == 1
    assert s[("snakeswan_ike_handshake_seconds_count", (("role", "initiator"),))] == 1
    assert s[("snakeswan_ike_handshake_seconds_bucket", (("le", "0.25"), ("role", "initiator")))] == 1
    assert s[("snakeswan_ike_handshake_seconds_bucket", (("le", "0.1"), ("role", "initiator")))] == 0
    assert s[("snakeswan_dpd_events_total", (("event", "probe"),))] >= 1
    assert s[("snakeswan_dpd_events_total", (("event", "ack"),))] >= 1
    assert s[("snakeswan_dataplane_drops_total", (("reason", "no_sa"),))] == 3
    assert s[("snakeswan_dataplane_queued_packets", (("policy", "site/net"),))] == 2
    assert ("snakeswan_dataplane_queued_packets", (("policy", "site/idle"),)) not in s
    key = (("child", "net"), ("conn", "site"), ("direction", "in"), ("spi_in", "000000a1"))
    assert s[("snakeswan_ipsec_packets_total", key)] == 0
    dp.traffic = 7  # traffic flows: the per-SA counters move
    s = samples(m)
    assert s[("snakeswan_ipsec_packets_total", key)] == 7 and s[("snakeswan_ipsec_bytes_total", key)] == 700
    assert (
        s[
            (
                "snakeswan_ipsec_sa_drops_total",
                (("child", "net"), ("conn", "site"), ("reason", "replay"), ("spi_in", "000000a1")),
            )
        ]
        == 1
    )


def test_failures_by_reason_and_retransmissions() -> None:
    m = Metrics(lambda: (SimpleNamespace(ike_sas=[]), None), lambda: 0.0)  # type: ignore[arg-type,return-value]
    m.on_record(
        Record("ike", "exchange_failed", {"sa": 1, "exchange": "main_mode", "notify": 14, "reason": "x"})
    )
    m.on_record(Record("ike", "give_up", {"sa": 2, "exchange": "quick_mode"}))
    m.on_record(Record("ike", "retransmit", {"sa": 2, "exchange": "quick_mode", "mid": 5}))
    m.on_record(Record("ike", "child_rekey", {"sa": 2, "child": "net"}))
    s = samples(m)
    assert s[("snakeswan_failures_total", (("exchange", "main_mode"), ("reason", "NO_PROPOSAL_CHOSEN")))] == 1
    assert s[("snakeswan_failures_total", (("exchange", "quick_mode"), ("reason", "timeout")))] == 1
    assert s[("snakeswan_retransmissions_total", (("exchange", "quick_mode"),))] == 1
    assert s[("snakeswan_rekeys_total", (("kind", "ipsec"),))] == 1
