"""How ``snakeswan analyze`` shows a capture: per IKE SA its messages (explained), the problems
found, and the same sequence diagram as a live run (:mod:`snakeswan.analysis.diagram`)."""

from __future__ import annotations

from collections import Counter

from snakeswan.analysis.capture import Analysed, Report
from snakeswan.analysis.diagram import Step
from snakeswan.analysis.explain import explain_message


def _addr(a: tuple[str, int]) -> str:
    return f"[{a[0]}]:{a[1]}" if ":" in a[0] else f"{a[0]}:{a[1]}"


def _state(m: Analysed) -> str:
    if m.retransmission:
        return "retransmission"
    if m.encrypted:
        return "decrypted" if m.decrypted else "encrypted"
    return ""


def steps(report: Report, sa: int | None = None) -> list[Step]:
    """Diagram steps: the initiator on the left."""
    out = []
    for m in report.messages:
        if sa is not None and m.sa != sa:
            continue
        detail = m.payloads or ("(encrypted)" if m.encrypted else "")
        why = "" if m.retransmission else (explain_message(m.label, m.payloads) or "")
        label = f"{m.label} (retransmit)" if m.retransmission else m.label
        out.append(Step("out" if m.from_initiator else "in", label, detail, str(m.sa), m.retransmission, why))
    return out


def render_text(report: Report, skipped: Counter[str], explain: bool = False, reassembled: int = 0) -> str:
    lines = [f"capture: {len(report.messages)} IKE messages in {len(report.sas)} IKE SA(s)"]
    if reassembled:
        lines[0] += f", {reassembled} reassembled from IP fragments"
    if skipped:
        lines[0] += " (also seen: " + ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())) + ")"
    t0 = report.messages[0].time if report.messages else 0.0
    for sa in report.sas:
        lines.append("")
        lines.append(
            f"IKE SA #{sa.number}: {_addr(sa.initiator)} (initiator) <-> {_addr(sa.responder)}, "
            f"cookies {sa.icookie.hex()}/{sa.rcookie.hex() or '0' * 16}, {sa.mode or '?'} mode"
            + (f", {sa.choice}" if sa.choice else "")
        )
        for m in (m for m in report.messages if m.sa == sa.number):
            arrow = "->" if m.from_initiator else "<-"
            state = _state(m)
            notes = "; ".join(([state] if state else []) + m.notes)
            lines.append(
                f"  frame {m.frame:<5} {m.time - t0:8.3f}s {arrow} {m.label:<12} {m.payloads}"
                + (f"  [{notes}]" if notes else "")
            )
            why = explain_message(m.label, m.payloads) if explain and not m.retransmission else None
            if why:
                lines.append(f"{'':27}= {why}")
    lines.append("")
    if report.problems:
        lines.append(f"problems ({len(report.problems)}):")
        lines += [f"  {p}" for p in report.problems]
    else:
        lines.append("problems: none found")
    return "\n".join(lines) + "\n"
