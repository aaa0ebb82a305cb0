"""The SPD key a negotiated child's policies and SA get (daemon/childsa.py): the child's own,
per selector pair, per peer, or per SA narrower than its configured pair, and never the latter
for a route-based child (its interface finds its SA by the child's key)."""

from __future__ import annotations

from dataclasses import replace

from snakeswan.config.loader import parse_config
from snakeswan.daemon.childsa import child_of_key, policy_key
from snakeswan.ike.events import ChildSaEstablished, ChildSaInfo
from tests.pair import A_ADDR, B_ADDR, Pair, site_config

CHILD = """
[connections.site.children.{name}]
local_ts = [{lts}]
remote_ts = ["0.0.0.0/0"]
{extra}
"""


def _info() -> ChildSaInfo:
    p = Pair(
        site_config(A_ADDR, B_ADDR, "10.231.1.0/24", "10.231.2.0/24"),
        site_config(B_ADDR, A_ADDR, "10.231.2.0/24", "10.231.1.0/24"),
    )
    p.a.engine.initiate("site", now=p.now)
    p.run(max_time=1)
    return p.of(p.a, ChildSaEstablished)[0].child


def test_keys() -> None:
    base = site_config(A_ADDR, B_ADDR, "10.231.1.0/24", "10.231.2.0/24")
    text = base + CHILD.format(name="wide", lts='"10.231.1.0/24"', extra="")
    text += CHILD.format(name="two", lts='"10.231.1.0/24", "10.231.3.0/24"', extra="")
    text += CHILD.format(name="vti", lts='"0.0.0.0/0"', extra="if_id_in = 7\nif_id_out = 7")
    conn = parse_config(text, "t.toml").connection("site")
    info = _info()  # 10.231.1.0/24 === 10.231.2.0/24
    assert policy_key(conn, "net", info) == ("site", "net")  # exactly its configured pair
    assert policy_key(conn, "wide", replace(info, child="wide")) == (
        "site", "wide@10.231.1.0/24|10.231.2.0/24",
    )  # fmt: skip
    assert policy_key(conn, "two", replace(info, child="two", ts_pair=1)) == (
        "site", "two#1@10.231.1.0/24|10.231.2.0/24",
    )  # fmt: skip
    assert policy_key(conn, "two", None, 1) == ("site", "two#1")  # its trap policy
    assert policy_key(conn, "vti", replace(info, child="vti")) == ("site", "vti")
    assert [child_of_key(k) for k in ("net", "two#1", "wide@a|b", "two#1@a|b")] == [
        "net",
        "two",
        "wide",
        "two",
    ]
