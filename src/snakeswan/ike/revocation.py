"""Revocation of the peer's certificate beyond the configured CRLs: OCSP (RFC 6960) with swanctl's
policy (``remote.revocation``), without ever blocking the engine.

When the peer's path is valid (``ike/pubkey.py``), :func:`assess` decides:

- the issuer of the peer's certificate has a configured CRL: that CRL was checked, done;
- no OCSP responder (``remote.ocsp_uris``, those of an ``[authorities.<name>]`` whose ``cacert``
  issued it, and the certificate's AIA when ``remote.ocsp_aia``):
  done, except under ``strict``, which fails (no revocation information);
- an answer for it is in the cache (:class:`OcspCache`, kept until its nextUpdate): decided at
  once, so a revoked certificate fails phase 1 itself (INVALID-CERTIFICATE);
- otherwise an :class:`OcspQuery` (request and nonce) waits on the phase 1 state.

Once that phase 1 is established the engine holds the SA as not *ready* (:class:`OcspGate`: no
Quick Mode, no XAUTH/Mode Config, QM1 dropped), emits ``OcspCheck`` and the daemon POSTs the
request (``io/ocsp.py``) and hands the response to ``Engine.ocsp_verdict``; :func:`conclude`
verifies it (``crypto/ocsp.py``) and applies the policy. A revoked certificate always fails; an
unknown status, an unbelievable response or no answer fail under ``strict`` and ``ifuri`` (a
responder was configured, so a definite answer was expected) and are traced and accepted under
``relaxed``. A failure deletes the ISAKMP SA (Delete sent, ``NegotiationFailed`` "ocsp").
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cryptography import x509

from snakeswan.config.model import ConnectionConfig
from snakeswan.crypto.ocsp import OcspError, OcspRequest, OcspStatus, aia_urls, build_request, check_response
from snakeswan.errors import AuthenticationError
from snakeswan.ike.events import OcspCheck
from snakeswan.wire.enums import NotifyType

if TYPE_CHECKING:
    from snakeswan.ike.context import Context
    from snakeswan.ike.sa import IkeSa

NONCE_SIZE = 16
CACHE_LIMIT = 1024


@dataclass(frozen=True, slots=True)
class OcspQuery:
    """What to ask about the peer's certificate, and the policy its answer meets."""

    cert: x509.Certificate
    issuer: x509.Certificate
    urls: tuple[str, ...]
    request: OcspRequest
    policy: str

    @property
    def subject(self) -> str:
        return self.cert.subject.rfc4514_string()


@dataclass(slots=True)
class OcspGate:
    """An established SA waiting for (or past) the OCSP answer about its peer's certificate."""

    query: OcspQuery
    asked: bool = False
    passed: bool = False


class OcspCache:
    """Believed answers by (issuer, serial), kept until their nextUpdate (an answer without one is
    never cached); bounded, the oldest entry goes first."""

    def __init__(self, limit: int = CACHE_LIMIT) -> None:
        self.limit = limit
        self._entries: OrderedDict[tuple[bytes, int], OcspStatus] = OrderedDict()

    @staticmethod
    def _key(cert: x509.Certificate, issuer: x509.Certificate) -> tuple[bytes, int]:
        return issuer.subject.public_bytes() + issuer.signature, cert.serial_number

    def get(self, cert: x509.Certificate, issuer: x509.Certificate, when: datetime) -> OcspStatus | None:
        key = self._key(cert, issuer)
        status = self._entries.get(key)
        if status is None or status.next_update is None or status.next_update < when:
            self._entries.pop(key, None)
            return None
        return status

    def put(self, cert: x509.Certificate, issuer: x509.Certificate, status: OcspStatus) -> None:
        if status.next_update is None:
            return
        self._entries[self._key(cert, issuer)] = status
        while len(self._entries) > self.limit:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def decide(policy: str, status: OcspStatus | None, failure: str, subject: str) -> str | None:
    """None when the certificate is accepted, else why not. ``failure``: why there is no status."""
    if status is not None and status.status == "revoked":
        return f'certificate "{subject}" was {status.describe()}'
    if status is not None and status.status == "good":
        return None
    why = failure if status is None else f"OCSP status unknown ({status.responder})"
    if policy in ("strict", "ifuri"):
        return f'revocation = {policy}: no good status for "{subject}": {why}'
    return None


def assess(
    ctx: Context, conn: ConnectionConfig, path: Sequence[x509.Certificate], when: datetime
) -> OcspQuery | None:
    """After the path of the peer's certificate (``path[0]``) validated: an OCSP question to ask
    the daemon, or None; an :class:`AuthenticationError` when the answer is already known to be no."""
    remote = conn.remote
    cert, issuer = path[0], (path[1] if len(path) > 1 else None)
    subject = cert.subject.rfc4514_string()
    crls = [ctx.config.credentials.crl(name) for name in remote.crls]
    if issuer is not None and any(crl.issuer == issuer.subject for crl in crls):
        return None  # its issuer's CRL was checked (crypto.certs.check_revocation)
    per_ca = ctx.config.credentials.ocsp_uris_for(issuer) if issuer is not None else ()
    urls = tuple(dict.fromkeys(remote.ocsp_uris + per_ca + (aia_urls(cert) if remote.ocsp_aia else ())))
    if issuer is None or not urls:
        if remote.revocation == "strict":
            raise AuthenticationError(
                NotifyType.INVALID_CERTIFICATE,
                f'revocation = strict: no CRL and no OCSP responder for "{subject}"',
            )
        return None
    cached = ctx.ocsp_cache.get(cert, issuer, when)
    if cached is not None:
        ctx.tracer.emit("ike", "ocsp_cached", subject=subject, status=cached.status)
        refusal = decide(remote.revocation, cached, "", subject)
        if refusal is not None:
            raise AuthenticationError(NotifyType.INVALID_CERTIFICATE, refusal)
        return None
    request = build_request(cert, issuer, ctx.rng(NONCE_SIZE))
    return OcspQuery(cert, issuer, urls, request, remote.revocation)


def gate_of(sa: IkeSa) -> OcspGate | None:
    """The SA's gate, made the first time from the question its phase 1 left (if any)."""
    if sa.revocation is None:
        p1 = getattr(sa.phase1, "p1", None)
        query = getattr(getattr(p1, "pubkey", None), "ocsp", None)
        if isinstance(query, OcspQuery):
            sa.revocation = OcspGate(query)
    return sa.revocation


def asked(ctx: Context, sa: IkeSa) -> bool:
    """True unless the peer's certificate waits for an OCSP answer (the driver is asked once)."""
    gate = gate_of(sa)
    if gate is None or gate.passed:
        return True
    if not gate.asked:
        gate.asked = True
        q = gate.query
        ctx.tracer.emit("ike", "ocsp_check", sa=sa.unique_id, subject=q.subject, urls=" ".join(q.urls))
        ctx.emit(OcspCheck(sa.unique_id, sa.name, q.urls, q.request.der))
    return False


def waiting(sa: IkeSa) -> bool:
    gate = sa.revocation
    return gate is not None and gate.asked and not gate.passed


def conclude(ctx: Context, sa: IkeSa, response: bytes | None, reason: str, now: float) -> str | None:
    """The daemon's answer for a :func:`waiting` SA: None when it may go on, else why not."""
    gate = sa.revocation
    assert gate is not None
    query = gate.query
    status: OcspStatus | None = None
    failure = reason or "no OCSP response"
    if ctx.wall_offset is None:
        failure = "no wall-clock time to check the OCSP response by"
    elif response is not None:
        when = datetime.fromtimestamp(now + ctx.wall_offset, UTC)
        try:
            status = check_response(response, query.cert, query.issuer, query.request.nonce, when)
        except OcspError as e:
            failure = f"{reason}: {e.what}" if reason else e.what
        else:
            ctx.ocsp_cache.put(query.cert, query.issuer, status)
    refusal = decide(query.policy, status, failure, query.subject)
    ctx.tracer.emit(
        "ike",
        "ocsp_status",
        sa=sa.unique_id,
        subject=query.subject,
        status=status.status if status is not None else "none",
        policy=query.policy,
        accepted=refusal is None,
        reason=status.describe() if status is not None else failure,
    )
    gate.passed = refusal is None
    return refusal
