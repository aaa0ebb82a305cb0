"""Padding after the last payload of a plaintext message (Libreswan's ``ikepad=yes``, its default,
pads every IKE message to a multiple of 4 bytes) is accepted within the header's length; every
dropped message is traced with its reason (the daemon logs trace records at INFO, its default)."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from snakeswan.ike.events import ChildSaEstablished, Datagram, IkeSaEstablished
from snakeswan.trace import Record, Tracer
from snakeswan.wire.enums import Flag
from snakeswan.wire.message import HEADER_SIZE, decode_header
from tests.pair import A_ADDR, B_ADDR, Pair, site_config


def _pad(d: Datagram, n: int, extra: int = 3) -> Datagram:
    """Append ``extra`` zero bytes to a plaintext message and fix the header's length."""
    if decode_header(d.data).flags & Flag.ENCRYPTION:
        return d
    data = d.data + bytes(extra)
    data = data[:24] + len(data).to_bytes(4, "big") + data[28:]
    return dataclasses.replace(d, data=data)


def _configs(aggressive: bool) -> tuple[str, str]:
    kw = {"aggressive": aggressive}
    if aggressive:
        kw |= {"local_id": "a.example.org", "remote_id": "b.example.org"}
    a = site_config(A_ADDR, B_ADDR, "10.231.1.0/24", "10.231.2.0/24", **kw)  # type: ignore[arg-type]
    if aggressive:
        kw |= {"local_id": "b.example.org", "remote_id": "a.example.org"}
    b = site_config(B_ADDR, A_ADDR, "10.231.2.0/24", "10.231.1.0/24", **kw)  # type: ignore[arg-type]
    return a, b


@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
def test_padded_plaintext_messages_accepted_both_ways(aggressive: bool) -> None:
    p = Pair(*_configs(aggressive))
    p.rewrite = _pad
    p.a.engine.initiate("site", now=p.now)
    p.run()
    assert len(p.of(p.a, IkeSaEstablished)) == 1 and len(p.of(p.b, IkeSaEstablished)) == 1
    ca, cb = p.of(p.a, ChildSaEstablished)[0].child, p.of(p.b, ChildSaEstablished)[0].child
    assert ca.spi_in == cb.spi_out and ca.spi_out == cb.spi_in
    for side in (p.a, p.b):
        padded = [r for r in side.engine.tracer.find("received") if r.fields.get("padding") == 3]
        assert padded, "the padding was seen and traced"
        assert not list(side.engine.tracer.find("drop"))


def test_padding_beyond_the_header_length_is_dropped_with_reason() -> None:
    """Bytes past the header's length are not padding: the datagram is dropped, and said why."""
    p = Pair(*_configs(False))
    p.rewrite = lambda d, n: dataclasses.replace(d, data=d.data + b"\0\0\0") if n == 0 else d
    p.a.engine.initiate("site", now=p.now)
    p.step()
    drops = list(p.b.engine.tracer.find("drop"))
    assert drops and "header length" in drops[0].fields["reason"]
    assert not p.b.engine.ike_sas


def test_garbage_in_a_payload_chain_is_dropped_with_reason() -> None:
    """A plaintext message whose payload overruns the header's length: dropped and traced."""
    p = Pair(*_configs(False))

    def corrupt(d: Datagram, n: int) -> Datagram:
        if n != 0:
            return d
        data = bytearray(d.data)
        data[HEADER_SIZE + 2 : HEADER_SIZE + 4] = (0xFFF0).to_bytes(2, "big")  # first payload's length
        return dataclasses.replace(d, data=bytes(data))

    p.rewrite = corrupt
    p.a.engine.initiate("site", now=p.now)
    p.step()
    drops = list(p.b.engine.tracer.find("drop"))
    assert drops and "overruns" in drops[0].fields["reason"]


def test_every_drop_reaches_the_log_at_info(caplog: pytest.LogCaptureFixture) -> None:
    """A sink like the daemon's (it logs every record at INFO, its default level) shows the drop."""

    def sink(rec: Record) -> None:
        logging.getLogger(f"snakeswan.{rec.subsystem}").info("%s", rec.render())

    p = Pair(*_configs(False))
    p.b.engine.tracer.sink = sink
    assert isinstance(p.b.engine.tracer, Tracer)
    p.rewrite = lambda d, n: dataclasses.replace(d, data=d.data + b"\0") if n == 0 else d
    with caplog.at_level(logging.INFO, logger="snakeswan"):
        p.a.engine.initiate("site", now=p.now)
        p.step()
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any(m.startswith("drop reason=") and "but datagram has" in m for m in logged), logged
