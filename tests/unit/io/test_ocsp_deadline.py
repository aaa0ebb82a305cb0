"""daemon/revocation.py: the fetch runs off the loop and the engine gets exactly one verdict, the
answer or, when the responders hold on too long, "no answer" at the deadline."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from snakeswan.daemon import revocation
from snakeswan.ike.events import OcspCheck
from snakeswan.io.ocsp import OcspAnswer


class Engine:
    def __init__(self) -> None:
        self.verdicts: list[tuple[int, bytes | None, str]] = []

    def ocsp_verdict(self, sa_id: int, response: bytes | None, reason: str, now: float) -> None:
        self.verdicts.append((sa_id, response, reason))


def _run(fetch: Any, monkeypatch: pytest.MonkeyPatch, wait: float) -> Engine:
    monkeypatch.setattr(revocation, "fetch", fetch)
    monkeypatch.setattr(revocation, "TIMEOUT", 0.1)
    monkeypatch.setattr(revocation, "DEADLINE_SLACK", 0.1)
    engine = Engine()
    pumps: list[int] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        check = OcspCheck(7, "gw", ("http://127.0.0.1:1/",), b"REQ")
        revocation.ask_ocsp(loop, engine, check, lambda: 0.0, lambda: pumps.append(1))  # type: ignore[arg-type]
        await asyncio.sleep(wait)

    asyncio.run(main())
    assert len(pumps) == len(engine.verdicts)
    return engine


def test_the_answer_is_handed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _run(lambda urls, req: OcspAnswer(b"DER", "OCSP responder x"), monkeypatch, 0.3)
    assert engine.verdicts == [(7, b"DER", "OCSP responder x")]


def test_a_responder_that_holds_on_meets_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(urls: tuple[str, ...], req: bytes) -> OcspAnswer:
        time.sleep(0.8)  # past the 0.2 s deadline, answered while the loop still runs
        return OcspAnswer(b"LATE", "too late")

    engine = _run(slow, monkeypatch, 1.0)
    assert engine.verdicts == [(7, None, "no OCSP answer within 0.2 s")]


def test_no_loop_means_no_answer() -> None:
    engine = Engine()
    check = OcspCheck(3, "gw", ("http://127.0.0.1:1/",), b"REQ")
    revocation.ask_ocsp(None, engine, check, lambda: 0.0, lambda: None)  # type: ignore[arg-type]
    assert engine.verdicts and engine.verdicts[0][1] is None
