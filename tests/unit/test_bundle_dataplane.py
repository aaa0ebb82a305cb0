"""An AH+ESP bundle negotiated by two engines and installed in two data planes as the daemon
installs them: outbound is ESP then AH (IP | AH | ESP on the wire), inbound checks AH then ESP;
ESP without its AH, a tampered AH, or an AH carrying another ESP SA are dropped."""

from __future__ import annotations

import pytest

from snakeswan.config.traffic import TrafficSelector
from snakeswan.daemon.childsa import bundle_params
from snakeswan.daemon.dataplane import sa_params
from snakeswan.ike.events import ChildSaEstablished
from snakeswan.ipsec import Processor
from snakeswan.ipsec.ah import encapsulate_transport
from snakeswan.ipsec.events import Deliver, SendPacket
from snakeswan.ipsec.packet import address_bytes, build_ipv4_header
from snakeswan.ipsec.spd import Policy, policy_priority
from tests.pair import A_ADDR, B_ADDR, Pair
from tests.unit.ike.test_pair_bundle import bundle_config
from tests.unit.ipsec.helpers import counter_rng, deliver_to, ip_packet

LAN_A, LAN_B = "10.231.1.0/24", "10.231.2.0/24"


def install(p: Pair, side: object) -> Processor:
    [ev] = p.of(side, ChildSaEstablished)  # type: ignore[arg-type]
    info = ev.child
    child = side.engine.config.connection("site").child("net")  # type: ignore[attr-defined]
    proc = Processor(counter_rng())
    lts, rts = TrafficSelector.from_text(info.local_ts), TrafficSelector.from_text(info.remote_ts)
    proc.add_policy(Policy(lts, rts, "protect", ("site", "net"), policy_priority("protect", lts, rts)))
    proc.install(
        sa_params(info.spi_in, info.keys_in, info, child),
        sa_params(info.spi_out, info.keys_out, info, child),
        ("site", "net"),
        now=0.0,
        ah=bundle_params(info, child),
    )
    return proc


@pytest.fixture(params=["tunnel", "transport"])
def bundle(request: pytest.FixtureRequest) -> tuple[Processor, Processor, str]:
    mode = request.param
    la, lb = (LAN_A, LAN_B) if mode == "tunnel" else (f"{A_ADDR}/32", f"{B_ADDR}/32")
    esp, ah = "aes128-sha256-modp2048", "sha256-modp2048"
    p = Pair(
        bundle_config(A_ADDR, B_ADDR, la, lb, esp, ah, mode=mode),
        bundle_config(B_ADDR, A_ADDR, lb, la, esp, ah, mode=mode),
    )
    p.a.engine.initiate("site", now=p.now)
    p.run()
    return install(p, p.a), install(p, p.b), mode


def _addresses(mode: str) -> tuple[str, str]:
    return ("10.231.1.5", "10.231.2.7") if mode == "tunnel" else (A_ADDR, B_ADDR)


def test_ping_through_the_bundle_both_ways(bundle: tuple[Processor, Processor, str]) -> None:
    a, b, mode = bundle
    src, dst = _addresses(mode)
    packet = ip_packet(src, dst, data=b"through AH and ESP")
    [out] = a.outbound(packet, 0.0)
    assert isinstance(out, SendPacket) and out.packet[9] == 51  # IP | AH ...
    hlen = (out.packet[0] & 15) * 4
    assert out.packet[hlen] == 50  # ... whose next header is ESP
    assert b"through AH and ESP" not in out.packet
    [got] = deliver_to(b, out)
    assert isinstance(got, Deliver) and got.ip_packet == packet
    back = ip_packet(dst, src, data=b"and back")
    [out] = b.outbound(back, 0.0)
    [got] = deliver_to(a, out)
    assert isinstance(got, Deliver) and got.ip_packet == back


def test_esp_without_its_ah_is_dropped(bundle: tuple[Processor, Processor, str]) -> None:
    a, b, mode = bundle
    [out] = a.outbound(ip_packet(*_addresses(mode), data=b"x"), 0.0)
    assert isinstance(out, SendPacket)
    hlen = (out.packet[0] & 15) * 4
    ah_len = (out.packet[hlen + 1] + 2) * 4
    esp_alone = out.packet[hlen + ah_len :]
    assert b.inbound(esp_alone, 50, A_ADDR, B_ADDR, 0.0) == []
    assert b.drops.get("policy") == 1
    [got] = deliver_to(b, out)  # the same ESP inside its AH still passes: the drop moved nothing
    assert isinstance(got, Deliver)


def test_tampered_ah_and_foreign_esp_are_dropped(bundle: tuple[Processor, Processor, str]) -> None:
    a, b, mode = bundle
    [out] = a.outbound(ip_packet(*_addresses(mode), data=b"y"), 0.0)
    assert isinstance(out, SendPacket)
    bad = bytearray(out.packet)
    bad[-1] ^= 1  # the ESP ICV's last byte: AH covers it, so AH fails first
    assert deliver_to(b, SendPacket(out.src, out.dst, bytes(bad))) == []
    assert b.drops.get("icv") == 1
    counters = [b.counters(spi, "in") for spi in (int.from_bytes(out.packet[24:28], "big"),)]
    assert counters[0].get("drop_icv") == 1  # counted on the AH SA
    ah_sa = next(sa for sa in b.sad.all() if sa.direction == "in" and sa.ah is not None)
    assert ah_sa.ah is not None
    foreign = build_ipv4_header(address_bytes(A_ADDR), address_bytes(B_ADDR), 50, 24, 7)
    foreign += (0x12345678).to_bytes(4, "big") + (1).to_bytes(4, "big") + bytes(16)
    forged = encapsulate_transport(ah_sa.ah, foreign, 99)  # a valid AH around another ESP SA
    assert b.inbound(forged, 51, A_ADDR, B_ADDR, 0.0) == []
    assert b.drops.get("policy") == 1


def test_removing_a_bundle_removes_its_ah_sas(bundle: tuple[Processor, Processor, str]) -> None:
    a, _b, _mode = bundle
    [esp_in] = [sa for sa in a.sad.all() if sa.direction == "in" and sa.esp is not None]
    assert len(a.sad.all()) == 4
    a.remove(esp_in.spi)
    assert a.sad.all() == []
