"""The daemon's side of OCSP: an :class:`~snakeswan.ike.events.OcspCheck` is fetched in a worker
thread (``io/ocsp.py``) and its answer handed to the engine, which verifies it and decides; the
event loop never waits for a responder."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from snakeswan.ike.engine import Engine
from snakeswan.ike.events import OcspCheck
from snakeswan.io.ocsp import TIMEOUT, OcspAnswer, fetch

log = logging.getLogger("snakeswan.daemon")
DEADLINE_SLACK = 2.0  # seconds beyond the per-responder timeouts


def ask_ocsp(
    loop: asyncio.AbstractEventLoop | None,
    engine: Engine,
    ev: OcspCheck,
    now: Callable[[], float],
    pump: Callable[[], None],
) -> None:
    """Fetch the answer for ``ev`` off the loop; the engine gets it when it comes."""
    if loop is None:  # not running: nobody could fetch, so nobody answered (the policy decides)
        engine.ocsp_verdict(ev.ike_sa, None, "no OCSP fetch outside the event loop", now())
        return
    log.info("IKE SA #%d %s: asking OCSP %s", ev.ike_sa, ev.conn, ", ".join(ev.urls))
    future = loop.run_in_executor(None, fetch, ev.urls, ev.request)
    answered = False

    def verdict(answer: OcspAnswer) -> None:
        nonlocal answered
        if answered:
            return
        answered = True
        timer.cancel()
        if answer.response is None:
            log.warning("IKE SA #%d %s: %s", ev.ike_sa, ev.conn, answer.reason)
        engine.ocsp_verdict(ev.ike_sa, answer.response, answer.reason, now())
        pump()

    def done(f: asyncio.Future[OcspAnswer]) -> None:
        try:
            answer = f.result()
        except Exception as e:  # a bug in the fetch must not leave the SA waiting silently
            answer = OcspAnswer(None, f"OCSP fetch failed: {e!r}")
        verdict(answer)

    # a responder that trickles its answer cannot hold the SA longer than this: no answer, then
    budget = DEADLINE_SLACK + TIMEOUT * len(ev.urls)
    timer = loop.call_later(budget, verdict, OcspAnswer(None, f"no OCSP answer within {budget:g} s"))
    future.add_done_callback(done)
