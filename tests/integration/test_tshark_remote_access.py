"""Wireshark decodes every Transaction message (XAUTH and Mode Config) between a snakeswan
gateway and client, given the gateway's keylog line; without it, nothing inside shows."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from snakeswan.ike.events import ChildSaEstablished, KeyLog
from tests.integration.test_tshark_decode import HASH, parse_frames, tshark
from tests.pcap import write_pcap
from tests.ra import Hub, client_addr, client_config, gateway_config

if shutil.which("tshark") is None:
    if os.environ.get("CI"):
        pytest.fail("tshark is required in CI (apt-get install tshark)", pytrace=False)
    pytest.skip("tshark is not installed", allow_module_level=True)

pytestmark = pytest.mark.tshark
TRANSACTION, ATTRIBUTE = 6, 14


@pytest.mark.parametrize("pull", [True, False], ids=["pull", "push"])
def test_tshark_decodes_xauth_and_mode_config(pull: bool, tmp_path: Path) -> None:
    h = Hub(gateway_config(pull=pull), [client_config(client_addr(0), pull=pull)], keylog=True)
    h.clients[0].initiate("home", now=h.now)
    h.run(30)
    assert h.of(h.gateway, ChildSaEstablished)
    [line] = [e.ikev1_line for e in h.of(h.gateway, KeyLog) if e.ikev1_line]
    ike = [d for d in h.wire if not d.keepalive]
    pcap = write_pcap(
        tmp_path / "ra.pcap", [(h.now + n * 0.001, d.src, d.dst, d.data) for n, d in enumerate(ike)]
    )

    text = tshark(pcap, tmp_path, "-o", f"uat:ikev1_decryption_table:{line}")
    frames = [f for f in parse_frames(text) if f.exchange == TRANSACTION]
    assert len(frames) == 6  # XAUTH request/reply, status set/ack, Mode Config request/reply (or set/ack)
    for f in frames:
        assert f.encrypted and f.clear == [] and f.decrypted == [HASH, ATTRIBUTE], f"frame {f.number}"
    assert "Malformed" not in text and "Expert Info (Error" not in text
    for name in ("XAUTH_USER_NAME", "XAUTH_USER_PASSWORD", "XAUTH_STATUS", "INTERNAL_IP4_ADDRESS"):
        assert name in text, name
    assert "ISAKMP_CFG_REQUEST" in text and "ISAKMP_CFG_SET" in text
    assert ("ISAKMP_CFG_REPLY" in text) and ("ISAKMP_CFG_ACK" in text)

    plain = tshark(pcap, tmp_path)
    assert "XAUTH_USER_NAME" not in plain and "alice" not in plain
