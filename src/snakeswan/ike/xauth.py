"""XAUTH (draft-beaulieu-ike-xauth-02), generic user name and password: what the gateway (the
XAUTH server) asks and how it checks the answer, and what a client answers.

The messages travel in Transaction exchanges (:mod:`snakeswan.ike.transaction`), in the order
strongSwan and Cisco use once phase 1 is up:

    server -> client  REQUEST(XAUTH-USER-NAME, XAUTH-USER-PASSWORD)   (empty values)
    client -> server  REPLY(XAUTH-USER-NAME=user, XAUTH-USER-PASSWORD=password)
    server -> client  SET(XAUTH-STATUS=1 OK | 0 FAIL)                  (a new message ID)
    client -> server  ACK(XAUTH-STATUS)

One try, as strongSwan: a wrong password ends the IKE SA (no retry prompt).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from snakeswan.config.identity import Identity
from snakeswan.config.model import AuthConfig, Secrets
from snakeswan.errors import ConfigError
from snakeswan.wire.attributes import Attribute, find
from snakeswan.wire.enums import ConfigAttr

A = ConfigAttr
TYPE_GENERIC = 0
STATUS_FAIL = 0
STATUS_OK = 1


def server_request() -> tuple[Attribute, ...]:
    return (Attribute.variable(A.XAUTH_USER_NAME, b""), Attribute.variable(A.XAUTH_USER_PASSWORD, b""))


@dataclass(frozen=True, slots=True)
class Verdict:
    user: str
    ok: bool
    reason: str


def check_reply_fields(attrs: tuple[Attribute, ...], round_cfg: AuthConfig) -> tuple[str, bytes] | Verdict:
    """(user, password) of a client's REPLY, or the Verdict that refuses it without asking any
    backend (no user name, no password, a user other than the round's ``xauth_id``)."""
    name, password = find(attrs, A.XAUTH_USER_NAME), find(attrs, A.XAUTH_USER_PASSWORD)
    user = name.value.decode("utf-8", "replace") if name is not None else ""
    if name is None or not user:
        return Verdict(user, False, "no user name in the reply")
    if password is None:
        return Verdict(user, False, "no password in the reply")
    if round_cfg.xauth_id is not None and user != round_cfg.xauth_id:
        return Verdict(user, False, f"user is not the configured {round_cfg.xauth_id!r}")
    return user, password.value


def check_reply(attrs: tuple[Attribute, ...], round_cfg: AuthConfig, secrets: Secrets) -> Verdict:
    """The gateway's check of a client's REPLY against ``[secrets.xauth-*]`` (and the round's
    ``xauth_id``, the one user this connection accepts, when it is set)."""
    fields = check_reply_fields(attrs, round_cfg)
    if isinstance(fields, Verdict):
        return fields
    user, password = fields
    try:
        expected = secrets.xauth_for(Identity.parse(user))
    except ConfigError:  # a user name that is no valid identity cannot have a secret
        expected = None
    if expected is None:
        return Verdict(user, False, "no XAUTH secret for this user")
    if not hmac.compare_digest(expected, password):
        return Verdict(user, False, "wrong password")
    return Verdict(user, True, "password matches")


def status(ok: bool) -> tuple[Attribute, ...]:
    return (Attribute.basic(A.XAUTH_STATUS, STATUS_OK if ok else STATUS_FAIL),)


def status_of(attrs: tuple[Attribute, ...]) -> bool | None:
    """OK (True), FAIL (False), or None when a SET carries no XAUTH-STATUS."""
    a = find(attrs, A.XAUTH_STATUS)
    return None if a is None else a.as_int() == STATUS_OK


def client_user(round_cfg: AuthConfig, local_id: Identity | None) -> str:
    """The user name a client sends: ``xauth_id``, else its IKE identity (as strongSwan)."""
    if round_cfg.xauth_id:
        return round_cfg.xauth_id
    return str(local_id) if local_id is not None else ""


def client_reply(attrs: tuple[Attribute, ...], user: str, secrets: Secrets) -> tuple[Attribute, ...] | None:
    """A client's REPLY to a server's REQUEST; None when it asks for what we cannot give (another
    XAUTH type, a challenge or next PIN) or we have no password for ``user``."""
    kind = find(attrs, A.XAUTH_TYPE)
    if kind is not None and kind.as_int() != TYPE_GENERIC:
        return None
    if any(a.type in (A.XAUTH_CHALLENGE, A.XAUTH_NEXT_PIN) for a in attrs):
        return None
    password = secrets.xauth_for(user) if user else None
    if password is None:
        return None
    out: list[Attribute] = []
    for a in attrs:
        if a.type == A.XAUTH_USER_NAME:
            out.append(Attribute.variable(A.XAUTH_USER_NAME, user.encode()))
        elif a.type in (A.XAUTH_USER_PASSWORD, A.XAUTH_PASSCODE):
            out.append(Attribute.variable(a.type, password))
        elif a.type == A.XAUTH_TYPE:
            out.append(Attribute.basic(A.XAUTH_TYPE, TYPE_GENERIC))
    return tuple(out)


def ack() -> tuple[Attribute, ...]:
    return (Attribute.variable(A.XAUTH_STATUS, b""),)
