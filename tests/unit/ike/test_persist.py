"""Snapshots of established SAs and their restoration into a new engine (issue 14): the restored
engine goes on with the peer as if nothing happened (DPD, Quick Mode, Delete all authenticate),
and no new phase 1 is run."""

from __future__ import annotations

import json

import pytest

from snakeswan.config.loader import parse_config
from snakeswan.ike.engine import Engine
from snakeswan.ike.events import ChildSaEstablished, IkeSaDeleted, IkeSaEstablished, XauthResult
from snakeswan.ike.persist import export_all, export_sa, record_key, restore_sa
from snakeswan.ike.persist_codec import RecordError, decode_record, encode_record
from snakeswan.trace import Tracer
from snakeswan.wire.enums import ExchangeType
from snakeswan.wire.message import decode_header
from tests.pair import A_ADDR, B_ADDR, Pair, rng_for, site_config
from tests.ra import GW_ADDR, GW_NET, Hub, client_addr, client_config, gateway_config

LAN_A, LAN_B = "10.231.1.0/24", "10.231.2.0/24"
KEY = bytes(range(32))


def _pair() -> tuple[Pair, str, str]:
    a = site_config(A_ADDR, B_ADDR, LAN_A, LAN_B, dpd_delay="10s", dpd_timeout="30s")
    b = site_config(B_ADDR, A_ADDR, LAN_B, LAN_A, dpd_delay="10s", dpd_timeout="30s")
    p = Pair(a, b)
    p.a.engine.initiate("site", now=p.now)
    p.run(max_time=1)
    assert p.of(p.a, ChildSaEstablished) and p.of(p.b, ChildSaEstablished)
    return p, a, b


def _phase1_count(p: Pair, since: int = 0) -> int:
    return sum(
        1 for _, d in p.wire[since:] if decode_header(d.data).exchange == ExchangeType.IDENTITY_PROTECTION
    )


def _through_bytes(engine: Engine, offset: float) -> dict[str, dict]:  # type: ignore[type-arg]
    """Every record through its byte form (sealed and unsealed again)."""
    out = {}
    for n, (key, rec) in enumerate(export_all(engine, offset).items()):
        data = encode_record(key, rec, KEY, n.to_bytes(12, "big"))
        assert b"skeyid" not in data and rec["secret"]["enc_key"].encode() not in data  # sealed
        out[key] = decode_record(key, data, KEY)
    return out


def _restart(p: Pair, side: str, config: str, seed: int, offset: float = 0.0) -> list:  # type: ignore[type-arg]
    """Replace one side's engine by a new one restored from the old one's records."""
    old = getattr(p, side).engine
    records = _through_bytes(old, 0.0)
    new = Engine(parse_config(config, f"{side}.toml"), rng_for(seed), tracer=Tracer())
    restored = []
    for rec in records.values():
        sa, children = restore_sa(new, rec, p.now + offset, offset)
        restored.append((sa, children))
    getattr(p, side).engine = new
    return restored


@pytest.mark.parametrize("side", ["a", "b"])
def test_restored_engine_goes_on_without_a_new_phase1(side: str) -> None:
    p, ca, cb = _pair()
    old = getattr(p, side).engine
    old_sa = old.ike_sas[0]
    old_child = old_sa.children[0]
    restored = _restart(p, side, ca if side == "a" else cb, seed=77)
    ((sa, children),) = restored
    new = getattr(p, side).engine
    assert sa.cookies == old_sa.cookies and sa.initiator == old_sa.initiator
    assert sa.crypto is not None and old_sa.crypto is not None
    assert sa.crypto.keys == old_sa.crypto.keys and sa.crypto.enc_key == old_sa.crypto.enc_key
    assert [c.info.spi_in for c in children] == [old_child.spi_in]
    info = children[0].info
    assert (info.spi_out, info.keys_in, info.keys_out) == (
        old_child.spi_out,
        old_child.keys_in,
        old_child.keys_out,
    )
    assert info.ike_sa == sa.unique_id and old_child.spi_in in new.ctx.spis
    assert (
        new.timers.lifetimes.timers[info.spi_in].expire_at
        == old.timers.lifetimes.timers[info.spi_in].expire_at
    )
    assert new.table.by_cookies(*sa.cookies) is sa and new.table.of_conn("site") == [sa]
    assert sa.ready and sa.expire_at == old_sa.expire_at
    mark = len(p.wire)
    p.run(max_time=45)  # idle: both ends probe with DPD, each probe answered (keys and IVs work)
    for s in (p.a, p.b):
        acks = s.engine.tracer.find("dpd_ack")
        assert acks, f"no DPD answer on {s.addr}"
        assert not [e for e in s.events if isinstance(e, IkeSaDeleted)]
    new.rekey_child(sa.unique_id, info.spi_in, p.now)  # a Quick Mode on the restored SA
    p.run(max_time=10)
    assert len(p.of(p.a, ChildSaEstablished)) == 2 and len(p.of(p.b, ChildSaEstablished)) == 2
    assert _phase1_count(p, mark) == 0  # never a new Main Mode
    assert len(p.of(p.a, IkeSaEstablished)) == 1


def test_times_survive_another_clock() -> None:
    """Records carry wall-clock times: a new process whose monotonic clock differs by 5000 s
    finds the same deadlines, moved by that much."""
    p, ca, _ = _pair()
    old_sa = p.a.engine.ike_sas[0]
    spi = old_sa.children[0].spi_in
    old_expire = p.a.engine.timers.lifetimes.timers[spi].expire_at
    records = _through_bytes(p.a.engine, 2_000_000_000.0)
    new = Engine(parse_config(ca, "a.toml"), rng_for(5), tracer=Tracer())
    sa, children = restore_sa(new, next(iter(records.values())), p.now - 5000, 2_000_000_000.0 + 5000)
    assert sa.expire_at is not None and old_sa.expire_at is not None
    assert sa.expire_at == pytest.approx(old_sa.expire_at - 5000)
    assert new.timers.lifetimes.timers[spi].expire_at == pytest.approx(old_expire - 5000)
    assert children[0].age == pytest.approx(1.0, abs=0.01)  # established 1 s before the snapshot


def test_restore_twice_keeps_the_first() -> None:
    p, ca, _ = _pair()
    rec = next(iter(_through_bytes(p.a.engine, 0.0).values()))
    new = Engine(parse_config(ca, "a.toml"), rng_for(5), tracer=Tracer())
    first, _ = restore_sa(new, rec, p.now, 0.0)
    again, children = restore_sa(new, rec, p.now, 0.0)
    assert again is first and children == [] and len(new.ike_sas) == 1


def test_connection_gone_is_refused_and_engine_unchanged() -> None:
    p, _, _ = _pair()
    rec = next(iter(_through_bytes(p.a.engine, 0.0).values()))
    other = site_config(A_ADDR, B_ADDR, LAN_A, LAN_B).replace("connections.site", "connections.other")
    new = Engine(parse_config(other, "a.toml"), rng_for(5), tracer=Tracer())
    with pytest.raises(RecordError, match="no longer configured"):
        restore_sa(new, rec, p.now, 0.0)
    assert new.ike_sas == []


def test_damaged_record_is_refused() -> None:
    p, ca, _ = _pair()
    rec = next(iter(_through_bytes(p.a.engine, 0.0).values()))
    del rec["proposal"]
    new = Engine(parse_config(ca, "a.toml"), rng_for(5), tracer=Tracer())
    with pytest.raises(RecordError, match="unusable"):
        restore_sa(new, rec, p.now, 0.0)
    assert new.ike_sas == []


def test_sealing_binds_the_key_and_the_version() -> None:
    p, _, _ = _pair()
    sa = p.a.engine.ike_sas[0]
    rec = export_sa(p.a.engine, sa, 0.0)
    assert rec is not None
    key = record_key(sa)
    data = encode_record(key, rec, KEY, bytes(12))
    assert decode_record(key, data, KEY)["secret"] == rec["secret"]
    public = decode_record(key, data, None)  # listing without the key: no secrets
    assert "secret" not in public and public["conn"] == "site"
    with pytest.raises(RecordError, match="unseal"):
        decode_record("ike/" + "00" * 16, data, KEY)  # moved under another key
    with pytest.raises(RecordError, match="unseal"):
        decode_record(key, data, bytes(32))  # another sealing key
    tampered = json.loads(data)
    tampered["sealed"] = tampered["sealed"][:-4] + "AAAA"
    with pytest.raises(RecordError, match="unseal"):
        decode_record(key, json.dumps(tampered).encode(), KEY)
    old = json.loads(data)
    old["v"] = 0
    with pytest.raises(RecordError, match="version 0"):
        decode_record(key, json.dumps(old).encode(), KEY)
    with pytest.raises(RecordError, match="not a JSON"):
        decode_record(key, b"\x00garbage", KEY)


def test_half_open_sas_are_not_written() -> None:
    a = site_config(A_ADDR, B_ADDR, LAN_A, LAN_B)
    b = site_config(B_ADDR, A_ADDR, LAN_B, LAN_A)
    p = Pair(a, b)
    p.a.engine.initiate("site", now=p.now)
    assert export_all(p.a.engine, 0.0) == {}


# ---- remote access ------------------------------------------------------------------------------


def test_gateway_restores_xauth_user_and_leases() -> None:
    gw_text = gateway_config(users={"alice": "alice-password", "bob": "bob-password"})
    h = Hub(
        gw_text,
        [client_config(client_addr(0)), client_config(client_addr(1), user="bob", password="bob-password")],
    )
    h.clients[0].initiate("home", now=h.now)
    h.run(30)
    assert [e for e in h.events[id(h.gateway)] if isinstance(e, XauthResult) and e.ok]
    records = _through_bytes(h.gateway, 0.0)
    assert len(records) == 1
    rec = next(iter(records.values()))
    assert rec["ra"] == {
        "user": "alice",
        "vips": ["10.231.100.1"],
        "leased": [["rwpool", "10.231.100.1"]],
        "split": [],
    }
    new = Engine(parse_config(gw_text, "gw.toml"), rng_for(99), tracer=Tracer())
    sa, children = restore_sa(new, rec, h.now, 0.0)
    assert sa.ready and sa.remote_access is not None and sa.remote_access.user == "alice"
    assert len(children) == 1 and children[0].info.remote_ts == "10.231.100.1/32"
    [pool] = new.leases.listing()
    assert pool["leases"] == [{"identity": "alice", "address": "10.231.100.1", "online": True}]
    # the restored gateway serves the next client, who gets another address
    h.engines[GW_ADDR] = h.gateway = new
    h.events[id(new)] = []
    h.clients[1].initiate("home", now=h.now)
    h.run(30)
    assert [c for c in new.ike_sas if c.remote_access and c.remote_access.user == "bob"]
    bob = next(c for c in new.ike_sas if c.remote_access and c.remote_access.user == "bob")
    assert [str(v) for v in bob.remote_access.vips] == ["10.231.100.2"]  # type: ignore[union-attr]


def test_sa_still_in_its_xauth_round_is_not_written() -> None:
    """Fail closed: restored, an SA counts as having passed XAUTH; one that has not is not kept."""
    h = Hub(gateway_config(), [client_config(client_addr(0))])
    h.drop = lambda d: (
        d.src[0] == client_addr(0) and decode_header(d.data).exchange == ExchangeType.TRANSACTION
    )
    h.clients[0].initiate("home", now=h.now)
    h.run(5)
    [sa] = h.gateway.ike_sas
    assert sa.state.value == "established" and not sa.ready
    assert export_sa(h.gateway, sa, 0.0) is None and export_all(h.gateway, 0.0) == {}


def test_client_restores_its_virtual_ip_and_split_networks() -> None:
    h = Hub(gateway_config(), [client_config(client_addr(0))])
    h.clients[0].initiate("home", now=h.now)
    h.run(30)
    client = h.clients[0]
    rec = next(iter(_through_bytes(client, 0.0).values()))
    assert rec["ra"]["vips"] == ["10.231.100.1"] and rec["ra"]["split"] == [GW_NET]
    new = Engine(parse_config(client_config(client_addr(0)), "c.toml"), rng_for(5), tracer=Tracer())
    sa, children = restore_sa(new, rec, h.now, 0.0)
    ra = sa.remote_access
    assert ra is not None and ra.client_cfg and [str(v) for v in ra.vips] == ["10.231.100.1"]
    assert ra.modecfg is not None and [str(n) for n in ra.modecfg.split_include] == [GW_NET]
    assert children[0].info.local_ts == "10.231.100.1/32"


def test_sa_whose_lifetime_ended_meanwhile_expires_at_once() -> None:
    """A state file older than the SA's lifetime (a reboot): restored, it is deleted at once and
    the peer told, instead of being used past its lifetime."""
    p, ca, _ = _pair()
    rec = next(iter(_through_bytes(p.a.engine, 0.0).values()))
    new = Engine(parse_config(ca, "a.toml"), rng_for(5), tracer=Tracer())
    later = p.now + 5 * 3600  # past the ISAKMP SA's and the IPsec SA's lifetimes
    sa, _ = restore_sa(new, rec, later, 0.0)
    assert sa.expire_at is not None and sa.expire_at < later
    assert new.get_timer() is not None and new.get_timer() <= later  # type: ignore[operator]
    new.handle_timer(later)
    events = []
    while (ev := new.next_event()) is not None:
        events.append(ev)
    assert any(isinstance(e, IkeSaDeleted) for e in events) and new.ike_sas == []
    assert new.datagrams_to_send(later)  # the Deletes go out
