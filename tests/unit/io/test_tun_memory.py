"""MemoryTun, the in-memory TUN double: same surface as Tun, no root needed."""

from __future__ import annotations

import asyncio
import select

import pytest

from snakeswan.errors import LocalError
from snakeswan.io.tun import MemoryTun, Tun, TunDevice, check_ifname


def readable(tun: MemoryTun) -> bool:
    return bool(select.select([tun], [], [], 0)[0])


def test_inject_then_read_in_order_and_in_batches() -> None:
    with MemoryTun() as tun:
        assert tun.read() == []
        assert not readable(tun)
        for i in range(5):
            assert tun.inject(bytes([0x45, i]))
        assert readable(tun)
        assert tun.read(2) == [b"\x45\x00", b"\x45\x01"]
        assert readable(tun)  # three still queued
        assert tun.read() == [b"\x45\x02", b"\x45\x03", b"\x45\x04"]
        assert not readable(tun)
        assert tun.read() == []


def test_write_records_and_refusal_counts_a_drop() -> None:
    with MemoryTun("mem1") as tun:
        assert tun.write(b"\x45abc")
        assert tun.write_many([b"\x45d", b"\x45e"]) == 2
        assert tun.written == [b"\x45abc", b"\x45d", b"\x45e"]
        assert all(type(p) is bytes for p in tun.written)
        assert tun.take_written() == [b"\x45abc", b"\x45d", b"\x45e"]
        assert tun.written == []
        tun.refuse_writes = True
        assert not tun.write(b"\x45x")
        assert tun.drops == 1 and tun.written == []


def test_queue_limit_drops_injections() -> None:
    with MemoryTun(queue_limit=2) as tun:
        assert tun.inject(b"1") and tun.inject(b"2")
        assert not tun.inject(b"3")
        assert tun.inject_drops == 1
        assert tun.read() == [b"1", b"2"]
        assert tun.inject(b"4")


def test_configure_is_recorded() -> None:
    with MemoryTun() as tun:
        tun.configure(mtu=1280, addresses=["10.231.8.1/24", "fd00::1/64"])
        assert (tun.mtu, tun.addresses, tun.up) == (1280, ["10.231.8.1/24", "fd00::1/64"], True)
        with pytest.raises(ValueError):
            tun.configure(addresses=["not an address"])


def test_closed_tun() -> None:
    tun = MemoryTun()
    tun.close()
    tun.close()  # twice is harmless
    assert tun.fileno() == -1
    for call in (tun.read, lambda: tun.write(b"x"), lambda: tun.inject(b"x")):
        with pytest.raises(LocalError, match="closed"):
            call()


def test_drives_an_asyncio_reader() -> None:
    """The daemon's pattern: add_reader on fileno(), drain with read(limit) in the callback."""

    async def main() -> list[list[bytes]]:
        loop = asyncio.get_running_loop()
        tun = MemoryTun()
        batches: list[list[bytes]] = []
        done = asyncio.Event()

        def on_readable() -> None:
            batch = tun.read(3)
            batches.append(batch)
            for p in batch:
                tun.write(p[::-1])
            if sum(map(len, batches)) == 7:
                done.set()

        loop.add_reader(tun.fileno(), on_readable)
        try:
            for i in range(7):
                tun.inject(bytes([i, 0xFF]))
            await asyncio.wait_for(done.wait(), 2)
            await asyncio.sleep(0.01)  # no spurious wake-ups once drained
            assert tun.written == [bytes([0xFF, i]) for i in range(7)]
        finally:
            loop.remove_reader(tun.fileno())
            tun.close()
        return batches

    batches = asyncio.run(main())
    assert [len(b) for b in batches] == [3, 3, 1]


def test_both_have_the_protocols_surface() -> None:
    members = ["read", "write", "write_many", "fileno", "close"]
    assert set(TunDevice.__annotations__) == {"name", "drops", "offload"}
    with MemoryTun() as mem:
        device: TunDevice = mem  # mypy checks this line
        for cls in (Tun, MemoryTun):
            assert all(callable(getattr(cls, m)) for m in members)
        assert device.name == "mem0" and device.drops == 0 and not device.offload


def test_interface_names() -> None:
    assert check_ifname("snakeswan0") == "snakeswan0"
    for bad in ("", "a" * 16, "a/b", "a b", "tun%d", ".", "x:1"):
        with pytest.raises(LocalError):
            check_ifname(bad)
