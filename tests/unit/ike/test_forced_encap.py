"""``encap = true`` without a NAT (issue 17: IKE stayed on 500 while ESP-in-UDP went to port 500 and
nothing arrived): as strongSwan does, our NAT-D hash of our own address is random, so the peer sees
a NAT in front of us and both ends move IKE to UDP 4500 and encapsulate ESP there."""

from __future__ import annotations

import pytest

from snakeswan.ike.events import ChildSaEstablished, IkeSaEstablished
from tests.pair import A_ADDR, B_ADDR, Pair, site_config
from tests.unit.ike.test_pair_negative import LAN_A, LAN_B


def config(local: str, remote: str, lnet: str, rnet: str, encap: bool, aggressive: bool) -> str:
    ids = {"local_id": f"@{local}.test", "remote_id": f"@{remote}.test"} if aggressive else {}
    text = site_config(local, remote, lnet, rnet, aggressive=aggressive, **ids)  # type: ignore[arg-type]
    return text.replace("aggressive =", f"encap = {str(encap).lower()}\naggressive =", 1)


@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
@pytest.mark.parametrize("who", ["initiator", "responder"])
def test_forced_encap_floats_to_4500_without_a_nat(who: str, aggressive: bool) -> None:
    a = config(A_ADDR, B_ADDR, LAN_A, LAN_B, who == "initiator", aggressive)
    b = config(B_ADDR, A_ADDR, LAN_B, LAN_A, who == "responder", aggressive)
    p = Pair(a, b)
    p.a.engine.initiate("site", now=p.now)
    p.run()
    ia, ib = p.of(p.a, IkeSaEstablished)[0], p.of(p.b, IkeSaEstablished)[0]
    assert ia.local == (A_ADDR, 4500) and ia.remote == (B_ADDR, 4500)
    assert ib.local == (B_ADDR, 4500) and ib.remote == (A_ADDR, 4500)
    # the side that forces it looks "behind a NAT" to its peer; the forcing side saw no NAT (in
    # Aggressive Mode the responder checks AM3's NAT-D, sent from 4500, against the floated
    # addresses, so it believes both ends are behind one: still encapsulated, ports as asserted)
    forcing, other = (ia, ib) if who == "initiator" else (ib, ia)
    assert other.nat_remote
    if not aggressive:
        assert not other.nat_local and not forcing.nat_local and not forcing.nat_remote
    ca, cb = p.of(p.a, ChildSaEstablished)[0].child, p.of(p.b, ChildSaEstablished)[0].child
    assert ca.encap and cb.encap
    assert ca.remote == (B_ADDR, 4500) and cb.remote == (A_ADDR, 4500)
    # after the first exchange of NAT-D everything goes to 4500
    assert {d.dst[1] for _, d in p.wire[-4:]} == {4500}


def test_without_encap_nothing_floats() -> None:
    p = Pair(
        config(A_ADDR, B_ADDR, LAN_A, LAN_B, False, False), config(B_ADDR, A_ADDR, LAN_B, LAN_A, False, False)
    )
    p.a.engine.initiate("site", now=p.now)
    p.run()
    ca = p.of(p.a, ChildSaEstablished)[0].child
    assert not ca.encap and ca.remote == (B_ADDR, 500)
    assert {d.dst[1] for _, d in p.wire} == {500}
