"""Several connections to one peer (issue 10): each stays up when another comes; Quick Mode picks
the child by its proxy IDs across the connections that share an ISAKMP SA; INITIAL-CONTACT goes
out only when no SA to the peer exists; ``unique`` as in swanctl (ike/unique.py)."""

from __future__ import annotations

import pytest

from snakeswan.config.identity import Identity
from snakeswan.config.loader import parse_config
from snakeswan.ike import unique
from snakeswan.ike.engine import Engine
from snakeswan.ike.events import ChildSaEstablished, IkeSaDeleted
from snakeswan.ike.sa import IkeSa, IkeState
from snakeswan.trace import Tracer
from tests.pair import A_ADDR, B_ADDR, PSK, Pair, rng_for

NETS = {"site": ("10.231.1.0/24", "10.231.2.0/24"), "site2": ("10.231.11.0/24", "10.231.12.0/24")}


def config(side: str, order: tuple[str, ...] = ("site", "site2"), unique_policy: str | None = None) -> str:
    local, remote = (A_ADDR, B_ADDR) if side == "a" else (B_ADDR, A_ADDR)
    out = []
    for name in order:
        lnet, rnet = NETS[name] if side == "a" else NETS[name][::-1]
        policy = f'unique = "{unique_policy}"' if unique_policy else ""
        out.append(f"""
[connections.{name}]
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
proposals = ["aes128-sha256-modp2048"]
over_time = "0s"
{policy}
local = {{ auth = "psk" }}
remote = {{ auth = "psk" }}
[connections.{name}.children.net]
local_ts = ["{lnet}"]
remote_ts = ["{rnet}"]
esp_proposals = ["aes128gcm16-modp2048"]
""")
    out.append(f'[secrets.ike-1]\nid = ["{local}", "{remote}"]\nsecret = "{PSK}"\n')
    return "".join(out)


def sent_initial_contact(p: Pair) -> list[bool]:
    """Per MM5 A sent: did it carry INITIAL-CONTACT (B's trace of what it received)."""
    return [
        "INITIAL_CONTACT" in r.fields["payloads"]
        for r in p.b.engine.tracer.find("received")
        if r.fields.get("msg") == "MM5"
    ]


def test_second_connection_to_the_same_peer_keeps_the_first() -> None:
    p = Pair(config("a"), config("b"))
    p.a.engine.initiate("site", now=p.now)
    p.run(max_time=5)
    p.a.engine.initiate("site2", now=p.now)
    p.run(max_time=5)
    assert sent_initial_contact(p) == [True, False]  # only when no SA to the peer existed
    assert not p.of(p.b, IkeSaDeleted) and not p.of(p.a, IkeSaDeleted)
    assert len(p.a.engine.ike_sas) == len(p.b.engine.ike_sas) == 2
    got = sorted((e.child.conn, e.child.local_ts) for e in p.of(p.b, ChildSaEstablished))
    assert got == [("site", "10.231.2.0/24"), ("site2", "10.231.12.0/24")]


def test_quick_mode_finds_the_child_of_a_connection_sharing_the_isakmp_sa() -> None:
    """B lists site2 first: A's ISAKMP SA for "site" is bound to site2 on B (same peer, same
    identities), yet its Quick Mode for site's subnets gets site's child."""
    p = Pair(config("a"), config("b", order=("site2", "site")))
    p.a.engine.initiate("site", now=p.now)
    p.run(max_time=5)
    (sa_b,) = p.b.engine.ike_sas
    assert sa_b.conn is not None and sa_b.conn.name == "site2"
    (eb,) = p.of(p.b, ChildSaEstablished)
    (ea,) = p.of(p.a, ChildSaEstablished)
    assert (eb.child.conn, eb.child.child, eb.child.local_ts) == ("site", "net", "10.231.2.0/24")
    assert ea.child.spi_in == eb.child.spi_out
    # its timers work from site's child configuration: it rekeys, nothing breaks
    p.run(max_time=4000)
    assert not [r for s in (p.a, p.b) for r in s.engine.tracer.find("internal_error")]
    assert [c.conn for c in p.b.engine.ike_sas[0].children] == ["site"]


def test_rebooted_peer_initial_contact_respects_unique_never() -> None:
    for policy, survives in (("no", False), ("never", True)):
        p = Pair(config("a"), config("b", unique_policy=policy))
        p.a.engine.initiate("site", now=p.now)
        p.run(max_time=5)
        old = p.b.engine.ike_sas[0].unique_id
        p.a.engine = Engine(parse_config(config("a")), rng_for(99), tracer=Tracer())  # A reboots
        p.a.engine.initiate("site", now=p.now)
        p.run(max_time=5)
        assert (old in [s.unique_id for s in p.b.engine.ike_sas]) is survives, policy


# ---- the unique policy itself ---------------------------------------------------------------


def _sa(uid: int, conn: str, remote: str, policy: str = "no") -> IkeSa:
    sa = IkeSa(uid, False, bytes([uid]) * 8, (B_ADDR, 500), (remote, 500))
    sa.conn = parse_config(config("b", unique_policy=policy)).connection(conn)
    sa.local_id, sa.remote_id = Identity.parse(B_ADDR), Identity.parse("@road")
    sa.state = IkeState.ESTABLISHED
    return sa


@pytest.mark.parametrize(
    ("policy", "ic", "removed", "cancel"),
    [
        ("no", False, [], False),
        ("no", True, [1, 2, 3], False),  # INITIAL-CONTACT: every SA of the ID pair
        ("never", True, [], False),
        ("replace", False, [1], False),  # same connection, another address
        ("keep", False, [], True),
    ],
)
def test_unique_policy(policy: str, ic: bool, removed: list[int], cancel: bool) -> None:
    old_other_addr = _sa(1, "site", "10.231.0.9", policy)
    old_same_addr = _sa(2, "site", A_ADDR, policy)  # an IKEv1 re-authentication: renewal.py's
    other_conn = _sa(3, "site2", "10.231.0.9", policy)
    new = _sa(4, "site", A_ADDR, policy)
    verdict = unique.on_established(new, [old_other_addr, old_same_addr, other_conn, new], ic)
    assert sorted(s.unique_id for s in verdict.remove) == removed
    assert verdict.cancel is cancel


def test_initial_contact_only_without_sa_to_the_peer() -> None:
    sa = _sa(1, "site", A_ADDR)
    assert unique.sends_initial_contact("no", [])
    assert not unique.sends_initial_contact("no", [sa])
    sa.state = IkeState.CONNECTING  # one under way counts too
    assert not unique.sends_initial_contact("no", [sa])
    assert not unique.sends_initial_contact("never", [])
    sa.state = IkeState.DELETED
    assert unique.sends_initial_contact("replace", [sa])


def test_two_connections_started_at_once_send_one_initial_contact() -> None:
    p = Pair(config("a"), config("b"))
    p.a.engine.initiate("site", now=p.now)
    p.a.engine.initiate("site2", now=p.now)  # before the first is up
    p.run(max_time=5)
    assert sorted(sent_initial_contact(p)) == [False, True]
    assert len(p.b.engine.ike_sas) == 2 and not p.of(p.b, IkeSaDeleted)
