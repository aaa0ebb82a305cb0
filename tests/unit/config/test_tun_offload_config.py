"""``[daemon] tun_offload``: the TUN offloads of the data plane, on unless switched off."""

from __future__ import annotations

import pytest

from snakeswan.config.loader import parse_config
from snakeswan.config.model import DaemonConfig
from snakeswan.errors import ConfigError

CONN = '[connections.c]\nremote_addrs = ["%any"]\n'


def test_default_on_and_switched_off() -> None:
    assert DaemonConfig().tun_offload is True
    assert parse_config(CONN).daemon.tun_offload is True
    assert parse_config("[daemon]\ntun_offload = true\n" + CONN).daemon.tun_offload is True
    off = parse_config("[daemon]\ntun_offload = false\ntun_mtu = 1300\n" + CONN).daemon
    assert (off.tun_offload, off.tun_mtu) == (False, 1300)
    assert parse_config('[daemon]\ntun_offload = "no"\n' + CONN).daemon.tun_offload is False  # swanctl style


@pytest.mark.parametrize("value", ['"maybe"', "0", "1"])
def test_not_a_boolean(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(f"[daemon]\ntun_offload = {value}\n" + CONN, "snakeswan.toml")
    assert "daemon.tun_offload" in str(info.value)
