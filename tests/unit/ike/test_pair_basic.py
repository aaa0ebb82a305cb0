from snakeswan.ike.events import ChildSaEstablished, IkeSaEstablished
from tests.pair import A_ADDR, B_ADDR, Pair, site_config


def test_main_mode_quick_mode_psk() -> None:
    a = site_config(A_ADDR, B_ADDR, "10.231.1.0/24", "10.231.2.0/24")
    b = site_config(B_ADDR, A_ADDR, "10.231.2.0/24", "10.231.1.0/24")
    p = Pair(a, b)
    p.a.engine.initiate("site", now=p.now)
    p.run()
    for r in list(p.a.engine.tracer.records)[-30:]:
        print("A", r.subsystem, r.render())
    for r in list(p.b.engine.tracer.records)[-30:]:
        print("B", r.subsystem, r.render())
    assert len(p.of(p.a, IkeSaEstablished)) == 1
    assert len(p.of(p.b, IkeSaEstablished)) == 1
    ca = p.of(p.a, ChildSaEstablished)[0].child
    cb = p.of(p.b, ChildSaEstablished)[0].child
    assert ca.spi_in == cb.spi_out and ca.spi_out == cb.spi_in
    assert ca.keys_in == cb.keys_out and ca.keys_out == cb.keys_in


def test_secrets_not_kept_after_exchanges() -> None:
    a = site_config(A_ADDR, B_ADDR, "10.231.1.0/24", "10.231.2.0/24")
    b = site_config(B_ADDR, A_ADDR, "10.231.2.0/24", "10.231.1.0/24")
    p = Pair(a, b)
    p.a.engine.initiate("site", now=p.now)
    p.run()
    for side in (p.a, p.b):
        sa = side.engine.ike_sas[0]
        assert sa.phase1 is not None and sa.phase1.p1.dh is None and sa.phase1.p1.psk is None  # type: ignore[attr-defined]
        for ex in sa.exchanges.values():
            assert ex.dh is None and ex.gqm is None  # type: ignore[attr-defined]
