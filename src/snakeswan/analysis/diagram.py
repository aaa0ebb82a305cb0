"""Sequence diagrams of IKE SAs' lives (phase 1, phase 2, Transactions, DPD, deletes,
retransmissions) from one side's trace records: as terminal text, SVG, or an HTML page with the
diagram and the explanation of each message.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from snakeswan.analysis.explain import explain
from snakeswan.analysis.records import Entry


@dataclass(frozen=True, slots=True)
class Step:
    """An arrow (``direction`` "out": we sent, "in": we received) or a note ("note")."""

    direction: str
    label: str
    detail: str = ""
    sa: str = ""
    dashed: bool = False  # a retransmission, a duplicate
    explanation: str = ""


_NOTES = {
    "ike_sa_established": "IKE SA #{sa} established",
    "child_sa_established": "IPsec SA {child} up (SPI in {spi_in}, out {spi_out})",
    "exchange_failed": "{exchange} FAILED: {reason}",
    "message_rejected": "{exchange}: message rejected: {reason}",
    "give_up": "{exchange}: gave up (no answer)",
    "ike_sa_deleted": "IKE SA #{sa} deleted: {reason}",
    "dpd_probe": "DPD: peer silent, probing",
    "dpd_timeout": "DPD: peer dead",
    "nat_detection": "NAT-D: we behind NAT={local_behind}, peer behind NAT={remote_behind}",
    "ike_rekey": "ISAKMP SA renewal",
    "ike_renewed": "IKE SA #{old} renewed as #{new}",
    "duplicate": "{exchange}: duplicate received, answered from cache",
}


def _fmt(template: str, e: Entry) -> str:
    class _D(dict[str, str]):
        def __missing__(self, key: str) -> str:
            return "?"

    return template.format_map(_D(e.fields))


def steps(entries: Iterable[Entry], sa: str | None = None) -> list[Step]:
    """The diagram's steps from trace records, in order; ``sa`` keeps one IKE SA's (by unique id)."""
    out: list[Step] = []
    for e in entries:
        if sa is not None and e.get("sa", e.get("old")) != sa:
            continue
        why = explain(e) or ""
        s = e.get("sa")
        if e.event in ("sent", "received"):
            out.append(
                Step("out" if e.event == "sent" else "in", e.get("msg"), e.get("payloads"), s, False, why)
            )
        elif e.event == "informational_sent":
            out.append(Step("out", "INFO", e.get("summary") or e.get("payloads"), s, False, why))
        elif e.event == "notify_received":
            out.append(Step("in", "INFO", f"N({e.get('type')})", s, False, why))
        elif e.event == "retransmit":
            out.append(Step("out", f"{e.get('exchange')} (retransmit)", f"mid={e.get('mid')}", s, True, why))
        elif e.event in _NOTES:
            out.append(Step("note", _fmt(_NOTES[e.event], e), "", s, e.event == "duplicate", why))
    return out


def peer_of(entries: Iterable[Entry]) -> str:
    for e in entries:
        if e.event == "received" and e.get("src"):
            return e.get("src").split(",")[0]
        if e.event == "initiate" and e.get("remote"):
            return e.get("remote").split(",")[0]
    return "peer"


# ---- text ----------------------------------------------------------------------------------------

WIDTH = 64


def render_text(items: Sequence[Step], left: str = "us", right: str = "peer", explain: bool = False) -> str:
    """``|--- MM1 SA V ---->|`` lines between two lifelines; notes in between."""
    lines = [f"{'':6}{left:<{WIDTH // 2}}{right:>{WIDTH // 2}}"]
    for st in items:
        tag = f"#{st.sa}" if st.sa else ""
        if st.direction == "note":
            lines.append(f"{tag:<6}|  * {st.label}")
        else:
            text = f" {st.label} {st.detail} ".replace("  ", " ")
            fill = "." if st.dashed else "-"
            body = text if len(text) <= WIDTH - 6 else text[: WIDTH - 9] + "... "
            pad = WIDTH - 2 - len(body) - 2
            if st.direction == "out":
                lines.append(f"{tag:<6}|{fill * 2}{body}{fill * pad}>|")
            else:
                lines.append(f"{tag:<6}|<{fill * pad}{body}{fill * 2}|")
        if explain and st.explanation:
            lines.append(f"{'':6}|     = {st.explanation}")
    return "\n".join(lines) + "\n"


# ---- SVG / HTML ----------------------------------------------------------------------------------

_ROW = 34
_LEFT_X, _RIGHT_X, _SVG_W = 120, 620, 740


def render_svg(items: Sequence[Step], left: str = "us", right: str = "peer") -> str:
    """A standalone SVG: two lifelines, one arrow or note per step, the label over each arrow."""
    height = 70 + _ROW * (len(items) + 1)
    e = html.escape
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_SVG_W}" height="{height}" '
        'font-family="monospace" font-size="12">',
        '<defs><marker id="arrow" markerWidth="10" markerHeight="8" refX="10" refY="4" orient="auto">'
        '<path d="M0,0 L10,4 L0,8 z"/></marker></defs>',
        f'<text x="{_LEFT_X}" y="20" text-anchor="middle" font-weight="bold">{e(left)}</text>',
        f'<text x="{_RIGHT_X}" y="20" text-anchor="middle" font-weight="bold">{e(right)}</text>',
        f'<line x1="{_LEFT_X}" y1="30" x2="{_LEFT_X}" y2="{height - 10}" stroke="#888"/>',
        f'<line x1="{_RIGHT_X}" y1="30" x2="{_RIGHT_X}" y2="{height - 10}" stroke="#888"/>',
    ]
    for i, st in enumerate(items):
        y = 60 + _ROW * i
        title = f"<title>{e(st.explanation)}</title>" if st.explanation else ""
        if st.direction == "note":
            parts.append(
                f'<g class="note">{title}<text x="{_LEFT_X + 10}" y="{y}" fill="#064">'
                f"{e(st.label)}</text></g>"
            )
            continue
        x1, x2 = (_LEFT_X, _RIGHT_X) if st.direction == "out" else (_RIGHT_X, _LEFT_X)
        dash = ' stroke-dasharray="4,3"' if st.dashed else ""
        parts.append(
            f'<g class="message">{title}'
            f'<text x="{(_LEFT_X + _RIGHT_X) // 2}" y="{y - 6}" text-anchor="middle">'
            f"{e(st.label)} <tspan fill='#555'>{e(st.detail)}</tspan></text>"
            f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="black"{dash} marker-end="url(#arrow)"/>'
            "</g>"
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def render_html(items: Sequence[Step], left: str = "us", right: str = "peer", title: str = "IKE SA") -> str:
    """An HTML page: the SVG, then the steps with their explanations."""
    rows = "\n".join(
        f"<tr><td>{html.escape(st.sa)}</td><td>{html.escape(_arrow(st))}</td>"
        f"<td>{html.escape(st.label)}</td><td>{html.escape(st.detail)}</td>"
        f"<td>{html.escape(st.explanation)}</td></tr>"
        for st in items
    )
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif} td{vertical-align:top;padding:2px 8px} "
        "table{border-collapse:collapse} tr:nth-child(even){background:#f4f4f4}</style></head><body>\n"
        f"<h1>{html.escape(title)}</h1>\n{render_svg(items, left, right)}"
        "<table><tr><th>SA</th><th></th><th>message</th><th>payloads</th><th>what it is for</th></tr>\n"
        f"{rows}\n</table></body></html>\n"
    )


def _arrow(st: Step) -> str:
    return {"out": "->", "in": "<-"}.get(st.direction, "*")
