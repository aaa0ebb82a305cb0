"""The loader's checks for authentication with public key encryption (RFC 2409 5.2, 5.3):
``auth = "pubkey-enc"`` (method 4) and ``auth = "pubkey-enc-revised"`` (method 5).

Both ends encrypt to each other's RSA key, so both sides name the same method; the keys are known
before the exchange (the initiator encrypts its nonce and identity to the responder's key in its
third message): ``local.certs`` (our certificate) or ``local.pubkeys`` (our raw public key), with
the private key in ``[secrets.private-*]``; ``remote.certs`` (pinned peer certificates) or
``remote.pubkeys`` (raw public keys). What the engine would not act on is refused: CA
certificates and CRLs (no path is validated: the keys are pinned), XAUTH rounds, non-RSA keys.
"""

from __future__ import annotations

from dataclasses import replace

from cryptography.hazmat.primitives.asymmetric import rsa

from snakeswan.config._fields import Table
from snakeswan.config.credentials import Credentials, cert_contains, public_key_of, subject_identity
from snakeswan.config.model import AuthConfig, ConnectionConfig
from snakeswan.errors import ConfigError

PKE_AUTH = ("pubkey-enc", "pubkey-enc-revised")


def check_rounds(
    conn: Table,
    local: AuthConfig,
    remote: AuthConfig,
    local_xauth: AuthConfig | None,
    remote_xauth: AuthConfig | None,
) -> None:
    """Both sides name the same public-key-encryption method, without XAUTH, CAs or CRLs."""
    if local.auth not in PKE_AUTH and remote.auth not in PKE_AUTH:
        return
    side, ours = ("local", local) if local.auth in PKE_AUTH else ("remote", remote)
    other_side, other = ("remote", remote) if side == "local" else ("local", local)
    if other.auth != ours.auth:
        raise conn.error(
            f"{other_side}.auth",
            f'public key encryption authenticates both ends alike: {side}.auth is "{ours.auth}", '
            f'so this must be too, got "{other.auth}"',
        )
    if local_xauth is not None or remote_xauth is not None:
        raise conn.error("local.auth", f'"{local.auth}" with an XAUTH round is not implemented')
    for key in ("cacerts", "crls"):
        if getattr(remote, key):
            raise conn.error(
                f"remote.{key}",
                f'not used with "{remote.auth}": the peer\'s key is pinned (remote.certs or '
                "remote.pubkeys) and no certificate path is validated",
            )
    for side, auth in (("local", local), ("remote", remote)):
        if not auth.certs and not auth.pubkeys:
            what = (
                "our certificate or raw public key"
                if side == "local"
                else "the peer's certificates or raw public keys"
            )
            raise conn.error(f"{side}.certs", f'"{auth.auth}" needs {side}.certs or {side}.pubkeys: {what}')
        if auth.certs and auth.pubkeys:
            raise conn.error(f"{side}.pubkeys", f"either {side}.certs or {side}.pubkeys, not both")
    if len(local.certs) > 1 or len(local.pubkeys) > 1:
        raise conn.error("local.certs", "one key of ours: no intermediate CA certificates are sent with it")


def check_keys(conn: ConnectionConfig, creds: Credentials, where: str) -> ConnectionConfig:
    """RSA keys only; a private key for ours; our ID in our certificate (its subject by default)."""
    local, remote = conn.local, conn.remote
    if local.auth not in PKE_AUTH:
        return conn
    for side, auth in (("local", local), ("remote", remote)):
        for key, names in (("certs", auth.certs), ("pubkeys", auth.pubkeys)):
            for index, name in enumerate(names):
                public = public_key_of(creds.cert(name)) if key == "certs" else creds.pubkey(name)
                if not isinstance(public, rsa.RSAPublicKey):
                    raise ConfigError(
                        f'"{auth.auth}" encrypts with RSA: expected an RSA key',
                        f"{where}.{side}.{key}[{index}]",
                    )
    at = f"{where}.local.{'certs' if local.certs else 'pubkeys'}[0]"
    if local.certs:
        cert = creds.cert(local.certs[0])
        private = creds.key_for(cert)
    else:
        cert, private = None, creds.key_for_public(creds.pubkey(local.pubkeys[0]))
    if private is None:
        raise ConfigError(
            "no private key for this key: expected a [secrets.private-<name>] section whose file "
            "holds it (the peer encrypts to it; we could not decrypt)",
            at,
        )
    if cert is not None and local.id is None:
        return replace(conn, local=replace(local, id=subject_identity(cert)))
    if cert is not None and local.id is not None and not cert_contains(cert, local.id):
        raise ConfigError(
            f"identity {local.id} is neither the subject nor a subjectAltName of the certificate", at
        )
    return conn
