"""ESP suites beyond GCM and CBC, negotiated by two engines and installed in two data planes as
the daemon installs them: a packet goes each way and arrives intact."""

from __future__ import annotations

import pytest

from snakeswan.config.proposals import RUNNABLE_INTEGRITY, parse_ah_proposal, parse_esp_proposal
from snakeswan.config.traffic import TrafficSelector
from snakeswan.daemon.dataplane import sa_params
from snakeswan.errors import ConfigError
from snakeswan.ike.events import ChildSaEstablished
from snakeswan.ipsec import Processor
from snakeswan.ipsec.algorithms import _HMACS
from snakeswan.ipsec.events import Deliver
from snakeswan.ipsec.spd import Policy, policy_priority
from tests.pair import A_ADDR, B_ADDR, Pair, site_config
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
    )
    return proc


@pytest.mark.parametrize(
    "esp",
    ["aes128ctr-sha256", "aes256ctr-sha1", "aes128ccm16", "aes256ccm8", "aes128gmac", "chacha20poly1305"],
)
def test_suite_negotiated_and_carried(esp: str) -> None:
    p = Pair(
        site_config(A_ADDR, B_ADDR, LAN_A, LAN_B, esp=esp), site_config(B_ADDR, A_ADDR, LAN_B, LAN_A, esp=esp)
    )
    p.a.engine.initiate("site", now=p.now)
    p.run()
    a, b = install(p, p.a), install(p, p.b)
    packet = ip_packet("10.231.1.5", "10.231.2.7", data=b"through " + esp.encode())
    [out] = a.outbound(packet, 0.0)
    [got] = deliver_to(b, out)
    assert isinstance(got, Deliver) and got.ip_packet == packet
    back = ip_packet("10.231.2.7", "10.231.1.5", data=b"and back")
    [out] = b.outbound(back, 0.0)
    [got] = deliver_to(a, out)
    assert isinstance(got, Deliver) and got.ip_packet == back


def test_what_the_data_plane_cannot_run_is_refused_at_load() -> None:
    assert set(_HMACS) == set(RUNNABLE_INTEGRITY)  # the loader's list follows the data plane
    with pytest.raises(ConfigError, match="AES_XCBC"):
        parse_esp_proposal("aes128-aesxcbc")
    with pytest.raises(ConfigError, match="extended sequence numbers"):
        parse_esp_proposal("aes128gcm16-esn")
    with pytest.raises(ConfigError, match="extended sequence numbers"):
        parse_ah_proposal("sha256-esn")
    assert parse_esp_proposal("aes128ctr-sha256-noesn")
