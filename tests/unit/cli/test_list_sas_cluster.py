"""list-sas in a cluster: each SA names the node serving it and its share (text and JSON)."""

from __future__ import annotations

from typing import Any

from snakeswan.daemon.views import render_sas


def sa(**extra: Any) -> dict[str, Any]:
    return {
        "id": 1, "conn": "gw", "state": "ESTABLISHED", "role": "responder", "mode": "main",
        "local": "10.231.9.10:4500", "remote": "10.231.9.20:4500", "local_id": "10.231.9.10",
        "remote_id": "10.231.9.20", "icookie": "aa", "rcookie": "bb", "proposal": None,
        "nat_local": False, "nat_remote": False, "encap": False, "age": None, "children": [], **extra,
    }  # fmt: skip


def test_node_and_share_shown() -> None:
    text = render_sas([sa(node="gw2", share="vip"), sa(node="gw2", share=None)])
    assert "  node gw2, share vip\n" in text
    assert "  node gw2, no share" in text


def test_no_cluster_no_node_line() -> None:
    assert "node" not in render_sas([sa()])
