"""State snapshots (issue 14) of what Quick Mode now negotiates: an AH+ESP bundle's AH half (its
keys sealed with the ESP ones, never in the clear part) and a child's selector pair survive a
restart, and the restored bundle is deleted with both its Deletes."""

from __future__ import annotations

from snakeswan.ike.events import ChildSaDeleted, ChildSaEstablished
from snakeswan.ike.persist import export_all
from snakeswan.ike.persist_codec import encode_record
from tests.pair import A_ADDR, B_ADDR, Pair
from tests.unit.ike.test_pair_bundle import bundle_config
from tests.unit.ike.test_persist import KEY, _restart

LAN_A, LAN_B = "10.231.1.0/24", "10.231.2.0/24"


def test_a_bundle_survives_a_restart_with_its_ah_keys_sealed() -> None:
    esp, ah = "aes128-sha256-modp2048", "sha256-modp2048"
    a = bundle_config(A_ADDR, B_ADDR, LAN_A, LAN_B, esp, ah)
    b = bundle_config(B_ADDR, A_ADDR, LAN_B, LAN_A, esp, ah)
    p = Pair(a, b)
    p.a.engine.initiate("site", now=p.now)
    p.run(max_time=1)
    [ea] = p.of(p.a, ChildSaEstablished)
    assert ea.child.ah is not None
    [(key, rec)] = export_all(p.a.engine, 0.0).items()
    clear = {k: v for k, v in rec.items() if k != "secret"}
    assert ea.child.ah.keys_out.integrity.hex() not in str(clear)
    assert ea.child.ah.keys_out.integrity.hex() not in encode_record(key, rec, KEY, bytes(12)).decode(
        "latin-1"
    )
    restored = _restart(p, "a", a, seed=9)
    [(_sa, [child])] = restored
    assert child.info.ah == ea.child.ah and child.info.ts_pair == ea.child.ts_pair
    (sa_a,) = p.a.engine.ike_sas
    p.a.engine.delete_child(sa_a.unique_id, ea.child.spi_in, p.now)
    p.run(max_time=1)
    [gone] = p.of(p.b, ChildSaDeleted)
    assert gone.reason == "deleted by peer"
    assert not list(p.b.engine.tracer.find("delete_unknown_spi"))  # the AH Delete named its SA
