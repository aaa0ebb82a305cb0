"""The OCSP fetch (RFC 6960 appendix A.1: an HTTP POST of the DER request, content type
``application/ocsp-request``). Blocking: the daemon runs :func:`fetch` in a worker thread and hands
the answer to the engine (:meth:`~snakeswan.ike.engine.Engine.ocsp_verdict`), which verifies it.

Only ``http://`` URLs (the loader refuses others; AIA entries are filtered), no proxy from the
environment (the request goes where the configuration says), a bounded answer, a timeout per URL.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass

TIMEOUT = 5.0  # seconds per responder
MAX_RESPONSE = 64 * 1024
CONTENT_TYPE = "application/ocsp-request"

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True, slots=True)
class OcspAnswer:
    response: bytes | None  # the DER OCSPResponse, None when no responder gave one
    reason: str  # which responder answered, or why none did


def fetch(urls: tuple[str, ...], request: bytes, timeout: float = TIMEOUT) -> OcspAnswer:
    """POST ``request`` to each URL in turn; the first HTTP 200 answer is returned."""
    failures: list[str] = []
    for url in urls:
        if not url.lower().startswith("http://"):
            failures.append(f"{url}: not an http:// URL")
            continue
        post = urllib.request.Request(
            url, data=request, method="POST", headers={"Content-Type": CONTENT_TYPE}
        )
        try:
            with _OPENER.open(post, timeout=timeout) as reply:
                body: bytes = reply.read(MAX_RESPONSE + 1)
        except urllib.error.HTTPError as e:
            failures.append(f"{url}: HTTP {e.code}")
            continue
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            failures.append(f"{url}: {reason}")
            continue
        if len(body) > MAX_RESPONSE:
            failures.append(f"{url}: answer larger than {MAX_RESPONSE} bytes")
            continue
        return OcspAnswer(body, f"OCSP responder {url}")
    return OcspAnswer(None, "no OCSP answer: " + "; ".join(failures or ["no responder"]))
