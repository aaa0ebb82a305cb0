"""Several selectors per child: one Quick Mode per local_ts x remote_ts pair of one address family
(IKEv1 IDs carry one selector a side; strongSwan does the same), each SA knowing its pair, each
rekeyed on its own with its own selectors."""

from __future__ import annotations

from snakeswan.config.traffic import TrafficSelector
from snakeswan.ike.events import ChildSaEstablished
from snakeswan.ike.selectors import selector_pairs
from tests.pair import A_ADDR, B_ADDR, Pair, site_config


def _config(local: str, remote: str, lts: list[str], rts: list[str], life: str = "1h") -> str:
    text = site_config(local, remote, lts[0], rts[0], life_time=life)
    text = text.replace(f'local_ts = ["{lts[0]}"]', "local_ts = [" + ", ".join(f'"{t}"' for t in lts) + "]")
    return text.replace(f'remote_ts = ["{rts[0]}"]', "remote_ts = [" + ", ".join(f'"{t}"' for t in rts) + "]")


def _pair(a_l: list[str], a_r: list[str], b_l: list[str], b_r: list[str], life: str = "1h") -> Pair:
    p = Pair(_config(A_ADDR, B_ADDR, a_l, a_r, life), _config(B_ADDR, A_ADDR, b_l, b_r, life))
    p.a.engine.initiate("site", now=p.now)
    p.run(max_time=1)
    return p


def test_selector_pairs_of_one_family_in_configuration_order() -> None:
    ts = TrafficSelector.from_text
    v4a, v4b, v6a, v6b = ts("10.1.0.0/24"), ts("10.3.0.0/24"), ts("fd00:1::/64"), ts("fd00:2::/64")
    assert selector_pairs([v4a, v6a], [v4b, v6b]) == [(v4a, v4b), (v6a, v6b)]
    assert selector_pairs([v4a, v4b], [v6a]) == [(v4a, v6a)]  # nothing pairs: the first of each


def test_one_quick_mode_per_pair_both_sides_agree() -> None:
    lans_a = ["10.231.1.0/24", "10.231.3.0/24"]
    p = _pair(lans_a, ["10.231.2.0/24"], ["10.231.2.0/24"], lans_a)
    got_a = sorted(
        (e.child.ts_pair, e.child.local_ts, e.child.remote_ts) for e in p.of(p.a, ChildSaEstablished)
    )
    got_b = sorted(
        (e.child.ts_pair, e.child.local_ts, e.child.remote_ts) for e in p.of(p.b, ChildSaEstablished)
    )
    assert got_a == [(0, "10.231.1.0/24", "10.231.2.0/24"), (1, "10.231.3.0/24", "10.231.2.0/24")]
    assert got_b == [(0, "10.231.2.0/24", "10.231.1.0/24"), (1, "10.231.2.0/24", "10.231.3.0/24")]
    assert len({e.child.spi_in for e in p.of(p.a, ChildSaEstablished)}) == 2
    p.a.engine.initiate("site", now=p.now)  # `up` again: both pairs exist, nothing new
    p.run(max_time=1)
    assert len(p.of(p.a, ChildSaEstablished)) == 2
    assert len(list(p.a.engine.tracer.find("child_exists"))) == 2


def test_dual_stack_child_negotiates_a_pair_per_family() -> None:
    p = _pair(
        ["10.231.1.0/24", "fd00:231:1::/64"], ["10.231.2.0/24", "fd00:231:2::/64"],
        ["10.231.2.0/24", "fd00:231:2::/64"], ["10.231.1.0/24", "fd00:231:1::/64"],
    )  # fmt: skip
    got = sorted((e.child.ts_pair, e.child.remote_ts) for e in p.of(p.a, ChildSaEstablished))
    assert got == [(0, "10.231.2.0/24"), (1, "fd00:231:2::/64")]


def test_each_pair_rekeys_with_its_own_selectors() -> None:
    lans_a = ["10.231.1.0/24", "10.231.3.0/24"]
    p = _pair(lans_a, ["10.231.2.0/24"], ["10.231.2.0/24"], lans_a, life="100s")
    p.run(max_time=95)
    est = [e.child for e in p.of(p.a, ChildSaEstablished)]
    assert len(est) == 4
    first, rekeyed = est[:2], est[2:]
    for new in rekeyed:
        old = next(c for c in first if c.spi_in == new.replaces)
        assert (new.ts_pair, new.local_ts, new.remote_ts) == (old.ts_pair, old.local_ts, old.remote_ts)
    (sa_a,) = p.a.engine.ike_sas
    assert sorted(c.ts_pair for c in sa_a.children) == [0, 1]
