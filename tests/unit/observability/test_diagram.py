"""Issue 12: explanations of each message, log lines parsed back into records, and the sequence
diagram of a run listing every message in order (text, SVG, HTML)."""

from __future__ import annotations

import io
import json
import logging
import pathlib

import pytest

from snakeswan.analysis import diagram
from snakeswan.analysis.explain import explain
from snakeswan.analysis.records import from_record, parse_fields, parse_line
from snakeswan.cli.logsetup import ExplainFilter, JsonFormatter
from tests.pair import A_ADDR, B_ADDR, Pair, site_config

SRC = pathlib.Path(__file__).parents[3] / "src" / "snakeswan"


def run_pair(**kw: object) -> Pair:
    p = Pair(
        site_config(A_ADDR, B_ADDR, "10.231.1.0/24", "10.231.2.0/24", **kw),  # type: ignore[arg-type]
        site_config(B_ADDR, A_ADDR, "10.231.2.0/24", "10.231.1.0/24", **kw),  # type: ignore[arg-type]
    )
    p.a.engine.initiate("site", now=p.now)
    p.run(30)
    return p


def messages(p: Pair) -> list[tuple[str, str]]:
    """(direction, label) of every message side A sent or received, as its tracer has them."""
    out = []
    for r in p.a.engine.tracer.records:
        if r.event in ("sent", "received"):
            out.append(("out" if r.event == "sent" else "in", str(r.fields["msg"])))
    return out


def test_every_record_of_runs_round_trips_through_its_text() -> None:
    from snakeswan.trace import Record  # noqa: PLC0415

    ok = run_pair(dpd_delay="10s", dpd_timeout="30s")
    refused = Pair(
        site_config(A_ADDR, B_ADDR, "10.231.1.0/24", "10.231.2.0/24", ike="aes128-sha1-modp1024"),
        site_config(B_ADDR, A_ADDR, "10.231.2.0/24", "10.231.1.0/24", ike="aes256-sha256-modp2048"),
    )
    refused.a.engine.initiate("site", now=refused.now)
    refused.run(30)
    refused.a.engine.receive_datagram(b"garbage", ("10.231.0.9", 500), (A_ADDR, 500), refused.now)
    records = [*ok.a.engine.tracer.records, *ok.b.engine.tracer.records]
    records += [*refused.a.engine.tracer.records, *refused.b.engine.tracer.records]
    assert {"informational_sent", "exchange_failed", "drop"} <= {r.event for r in records}
    assert any(" keylen=" in str(r.fields.get("reason")) for r in records)
    for r in records:
        expected = {k: Record("", "e", {k: v}).render().partition("=")[2] for k, v in r.fields.items()}
        assert from_record(r).fields == expected, r
        line = parse_line(f"2026-11-30T00:00:00.000 INFO    snakeswan.{r.subsystem}: {r.render()}")
        assert line is not None and (line.event, line.fields) == (r.event, expected)


def test_fields_with_spaces_and_reasons_round_trip() -> None:
    f = parse_fields("sa=1 msg=QM1 mid=5 payloads=HASH SA No KE ID ID encrypted=True")
    assert f == {"sa": "1", "msg": "QM1", "mid": "5", "payloads": "HASH SA No KE ID ID", "encrypted": "True"}
    # a reason holds "key=" and "mode=" of its own; a trailing count is split off
    f = parse_fields("sa=2 exchange=main_mode notify=NO_PROPOSAL_CHOSEN reason=x [keylen=1 mode=2] count=3")
    assert f["reason"] == "x [keylen=1 mode=2]" and f["count"] == "3" and f["notify"] == "NO_PROPOSAL_CHOSEN"


def test_log_line_formats() -> None:
    text = "2026-11-30T03:54:48.123 INFO    snakeswan.ike: sent sa=1 exchange=main_mode msg=MM1 payloads=SA V"
    e = parse_line(text)
    assert e is not None and (e.subsystem, e.event, e.get("msg"), e.get("payloads")) == (
        "ike",
        "sent",
        "MM1",
        "SA V",
    )
    assert e.time == "2026-11-30T03:54:48.123"
    e = parse_line("ike: received sa=1 msg=MM2 mid=0 payloads=SA V encrypted=False src=10.231.0.2,500")
    assert e is not None and e.get("src") == "10.231.0.2,500"
    e = parse_line(
        json.dumps({"time": "t", "level": "info", "logger": "snakeswan.ike", "message": "sent sa=3 msg=QM3"})
    )
    assert e is not None and (e.event, e.get("sa")) == ("sent", "3")
    assert parse_line("Traceback (most recent call last):") is None


def test_each_message_of_a_run_is_explained_in_reference_terms() -> None:
    p = run_pair()
    entries = [from_record(r) for r in p.a.engine.tracer.records]
    by_msg = {e.get("msg"): explain(e) for e in entries if e.event in ("sent", "received")}
    assert set(by_msg) == {"MM1", "MM2", "MM3", "MM4", "MM5", "MM6", "QM1", "QM2", "QM3"}
    assert "cookie" in by_msg["MM1"] and "SA offer" in by_msg["MM1"]  # type: ignore[operator]
    assert "KE" in by_msg["MM3"] and "nonce" in by_msg["MM3"] and "NAT-D" in by_msg["MM3"]  # type: ignore[operator]
    assert "SKEYID" in by_msg["MM4"]  # type: ignore[operator]
    assert "HASH_I" in by_msg["MM5"] and "HASH_R" in by_msg["MM6"]  # type: ignore[operator]
    assert "HASH(1)" in by_msg["QM1"] and "HASH(2)" in by_msg["QM2"] and "HASH(3)" in by_msg["QM3"]  # type: ignore[operator]
    assert "proxy IDs" in by_msg["QM1"] and "KEYMAT" in by_msg["QM3"]  # type: ignore[operator]


def test_text_diagram_lists_every_message_in_order() -> None:
    p = run_pair()
    expected = messages(p)
    assert len(expected) == 9
    entries = [from_record(r) for r in p.a.engine.tracer.records]
    text = diagram.render_text(diagram.steps(entries), "us", "peer")
    arrows = [line for line in text.splitlines() if line.rstrip().endswith(("->|", "--|"))]
    got = [
        ("out" if a.endswith(">|") else "in", a.split("|", 1)[1].strip("-<>| ").split(" ")[0]) for a in arrows
    ]
    assert got == expected
    assert "* IKE SA #1 established" in text and "* IPsec SA net up" in text


def test_diagram_from_a_saved_log_and_svg_html() -> None:
    p = run_pair(dpd_delay="10s", dpd_timeout="30s")
    # the daemon's own text log, as logsetup writes it
    lines = [
        f"2026-11-30T00:00:00.000 INFO    snakeswan.{r.subsystem}: {r.render()}"
        for r in p.a.engine.tracer.records
    ]
    entries = [e for e in map(parse_line, lines) if e is not None]
    items = diagram.steps(entries, sa="1")
    labels = [s.label for s in items if s.direction != "note"]
    assert labels[:9] == [m for _, m in messages(p)]
    assert "INFO" in labels  # the DPD probes and their answers are informational exchanges
    svg = diagram.render_svg(items, "us", "peer")
    assert svg.startswith("<svg") and svg.count('class="message"') == len(labels)
    page = diagram.render_html(items, "us", "peer", "IKE SA #1")
    assert page.count("<tr><td>") == len(items) and "HASH(3)" in page
    assert [label for label in labels if label.startswith(("MM", "QM"))] == [m for _, m in messages(p)]


def test_daemon_explain_filter_adds_the_purpose_under_a_message() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(ExplainFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("snakeswan.ike")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    try:
        logger.info("%s", "sent sa=1 exchange=quick_mode msg=QM1 mid=7 payloads=HASH SA No ID ID")
        logger.info("%s", "nothing_to_explain sa=1")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    first, second = (json.loads(line)["message"] for line in out.getvalue().splitlines())
    assert first.startswith("sent sa=1") and "\n    = Quick Mode 1/3" in first and "HASH(1)" in first
    assert second == "nothing_to_explain sa=1"


def test_in_memory_demo_prints_its_diagram_explained(capsys: pytest.CaptureFixture[str]) -> None:
    from snakeswan.cli.main import main  # noqa: PLC0415

    assert main(["demo", "--in-memory"]) == 0
    out = capsys.readouterr().out
    assert "== sequence diagram (west's view, each message explained)" in out
    part = out.split("== sequence diagram")[1]
    labels = [line.split("|", 1)[1].strip("-<>| ").split(" ")[0] for line in part.splitlines()
              if line.rstrip().endswith(("->|", "--|"))]  # fmt: skip
    assert labels == ["MM1", "MM2", "MM3", "MM4", "MM5", "MM6", "QM1", "QM2", "QM3"]
    assert part.count("     = ") >= 9 and "HASH(2)" in part
