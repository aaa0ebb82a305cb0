"""The loader's part for certificates and private keys: read the files, check them, fill in IDs.

Files are named as in swanctl.conf: ``local.certs`` (our certificate, then the intermediate CA
certificates sent with it, each issuing the one before), ``remote.certs`` (pinned peer
certificates), ``remote.cacerts`` (the CAs trusted for the peer), ``remote.crls`` (their CRLs, a
snakeswan key: files, nothing is fetched), ``remote.ocsp_uris`` / ``ocsp_aia`` / ``revocation``
(OCSP responders and the revocation policy; refused where no peer certificate is checked) and
``[secrets.private<suffix>]``
(also ``rsa``, ``ecdsa``, ``pkcs8``) sections with ``file`` (the private key) and an optional
``secret`` (its passphrase). A relative file name is taken from the configuration file's directory.
"""

from __future__ import annotations

import os
from dataclasses import replace

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from snakeswan.config._connections import ocsp_uris
from snakeswan.config._fields import Table
from snakeswan.config._pke import PKE_AUTH, check_keys
from snakeswan.config.credentials import (
    Credentials,
    PrivateKey,
    cert_contains,
    load_certificate,
    load_private_key,
    load_public_key,
    subject_identity,
)
from snakeswan.config.model import AuthConfig, ConnectionConfig
from snakeswan.crypto.certs import CertError, parse_crl
from snakeswan.crypto.signatures import PublicKeyType, auth_method_for
from snakeswan.errors import ConfigError
from snakeswan.wire.enums import AuthMethod

KEY_PREFIXES = ("private", "rsa", "ecdsa", "pkcs8")
KEY_KEYS = ("file", "secret")
AUTHORITY_KEYS = ("cacert", "ocsp_uris")


def is_key_section(name: str) -> bool:
    return name.startswith(KEY_PREFIXES)


def _read(path: str, base: str, where: str) -> tuple[bytes, str]:
    full = path if os.path.isabs(path) else os.path.join(base, path)
    try:
        with open(full, "rb") as stream:
            return stream.read(), full
    except OSError as exc:
        raise ConfigError(f"cannot read {full!r}: {exc.strerror}", where) from None


def _keys(top: Table, base: str) -> list[PrivateKey]:
    keys: list[PrivateKey] = []
    for name, table in top.subtables("secrets"):
        if not is_key_section(name):
            continue
        table.check_keys(KEY_KEYS)
        file = table.string("file")
        if not file:
            raise table.error("file", "required: the private key file (PEM or DER)")
        secret = table.string("secret")
        where = f"{top.source}: {table.key_path('file')}"
        data, full = _read(file, base, where)
        keys.append(load_private_key(data, f"{where} ({full})", secret.encode() if secret else None))
    return keys


def _certs(
    auth: AuthConfig, where: str, base: str, loaded: dict[str, x509.Certificate], *, ca: bool = False
) -> None:
    names = auth.cacerts if ca else auth.certs
    key = "cacerts" if ca else "certs"
    for index, name in enumerate(names):
        at = f"{where}.{key}[{index}]"
        if name not in loaded:
            data, full = _read(name, base, at)
            loaded[name] = load_certificate(data, f"{at} ({full})")
        if ca:
            try:
                bc = loaded[name].extensions.get_extension_for_class(x509.BasicConstraints).value
            except (x509.ExtensionNotFound, ValueError):
                bc = None
            if bc is None or not bc.ca:
                raise ConfigError("expected a CA certificate (basicConstraints cA = true)", at)


def _local(conn: ConnectionConfig, creds: Credentials, where: str) -> ConnectionConfig:
    """Checks of our own side: a private key for the certificate, the ID in the certificate."""
    local = conn.local
    if (local.pubkeys or conn.remote.pubkeys) and local.auth not in PKE_AUTH:
        raise ConfigError(
            'raw public keys (pubkeys) work with auth = "pubkey-enc" / "pubkey-enc-revised" only; '
            "use certs and cacerts",
            where,
        )
    if local.method not in ("pubkey", "rsa", "ecdsa") or not local.certs:
        return conn
    cert = creds.cert(local.certs[0])
    key = creds.key_for(cert)
    at = f"{where}.local.certs[0]"
    if key is None:
        raise ConfigError(
            "no private key for this certificate: expected a [secrets.private-<name>] section "
            "whose file holds its key",
            at,
        )
    is_rsa = auth_method_for(key.key) == AuthMethod.RSA_SIGNATURES
    if (local.method == "rsa" and not is_rsa) or (local.method == "ecdsa" and is_rsa):
        raise ConfigError(f'auth = "{local.method}" but the certificate holds another kind of key', at)
    if local.id is None:
        return replace(conn, local=replace(local, id=subject_identity(cert)))
    if not cert_contains(cert, local.id):
        raise ConfigError(
            f"identity {local.id} is neither the subject nor a subjectAltName of the certificate", at
        )
    return conn


def load_credentials(
    top: Table, conns: list[ConnectionConfig], source: str
) -> tuple[Credentials, list[ConnectionConfig]]:
    """Load every certificate and private key the configuration names; return them and the
    connections with the local ID defaulted to the certificate's subject."""
    base = os.path.dirname(source) if source and not source.startswith("<") else ""
    keys = _keys(top, base)
    loaded: dict[str, x509.Certificate] = {}
    pubkeys: dict[str, PublicKeyType] = {}
    for conn in conns:
        for side, auth in (("local", conn.local), ("remote", conn.remote)):
            where = f"{source}: connections.{conn.name}.{side}"
            _certs(auth, where, base, loaded)
            _certs(auth, where, base, loaded, ca=True)
            for index, name in enumerate(auth.pubkeys):
                if name not in pubkeys:
                    data, full = _read(name, base, f"{where}.pubkeys[{index}]")
                    pubkeys[name] = load_public_key(data, f"{where}.pubkeys[{index}] ({full})")
    crls: dict[str, x509.CertificateRevocationList] = {}
    for conn in conns:
        where = f"{source}: connections.{conn.name}"
        if conn.local.cacerts or conn.local.crls:
            key = "cacerts" if conn.local.cacerts else "crls"
            raise ConfigError(
                f"{key} belong to the remote side (the CAs trusted for the peer); intermediate CA "
                "certificates to send go after our certificate in local.certs",
                f"{where}.local.{key}",
            )
        _revocation_keys(conn, where)
        _chain(conn.local, loaded, f"{where}.local.certs")
        for index, name in enumerate(conn.remote.crls):
            if name not in crls:
                data, full = _read(name, base, f"{where}.remote.crls[{index}]")
                try:
                    crls[name] = parse_crl(data)
                except CertError as e:
                    raise ConfigError(f"{e.what} ({full})", f"{where}.remote.crls[{index}]") from None
    authorities = _authorities(top, base, loaded)
    creds = Credentials(
        tuple(loaded.items()), tuple(keys), tuple(crls.items()), authorities, pubkeys=tuple(pubkeys.items())
    )
    checked = [_local(conn, creds, f"{source}: connections.{conn.name}") for conn in conns]
    return creds, [check_keys(conn, creds, f"{source}: connections.{conn.name}") for conn in checked]


def _authorities(
    top: Table, base: str, loaded: dict[str, x509.Certificate]
) -> tuple[tuple[x509.Certificate, tuple[str, ...]], ...]:
    """``[authorities.<name>]`` as swanctl's: ``cacert`` and the ``ocsp_uris`` asked about the
    certificates it issued (trust stays with each connection's ``remote.cacerts``)."""
    result = []
    for _, table in top.subtables("authorities"):
        table.check_keys(AUTHORITY_KEYS)
        file = table.string("cacert")
        where = f"{top.source}: {table.key_path('cacert')}"
        if not file:
            raise table.error("cacert", "required: the CA certificate file (PEM or DER)")
        uris = ocsp_uris(table)
        if not uris:
            raise table.error("ocsp_uris", "required: an authority here only names OCSP responders")
        if file not in loaded:
            data, full = _read(file, base, where)
            loaded[file] = load_certificate(data, f"{where} ({full})")
        try:
            bc = loaded[file].extensions.get_extension_for_class(x509.BasicConstraints).value
        except (x509.ExtensionNotFound, ValueError):
            bc = None
        if bc is None or not bc.ca:
            raise ConfigError("expected a CA certificate (basicConstraints cA = true)", where)
        result.append((loaded[file], uris))
    return tuple(result)


def _revocation_keys(conn: ConnectionConfig, where: str) -> None:
    """Fail closed: revocation keys where no peer certificate is checked would do nothing."""
    for side, auth in (("local", conn.local), ("remote", conn.remote)):
        set_keys = [
            key
            for key, is_set in (
                ("ocsp_uris", bool(auth.ocsp_uris)),
                ("ocsp_aia", auth.ocsp_aia),
                ("revocation", auth.revocation != "relaxed"),
            )
            if is_set
        ]
        if not set_keys:
            continue
        if side == "local":
            raise ConfigError(
                "revocation checking belongs to the remote side (the peer's certificate)",
                f"{where}.local.{set_keys[0]}",
            )
        if auth.method not in ("pubkey", "rsa", "ecdsa"):
            raise ConfigError(
                f'no certificate to check: remote.auth is "{auth.auth}", not pubkey',
                f"{where}.remote.{set_keys[0]}",
            )


def _chain(local: AuthConfig, loaded: dict[str, x509.Certificate], where: str) -> None:
    """After our certificate, ``local.certs`` may list the CA certificates that issued it, in order."""
    for index in range(1, len(local.certs)):
        cert, issuer = loaded[local.certs[index - 1]], loaded[local.certs[index]]
        try:
            bc = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
        except (x509.ExtensionNotFound, ValueError):
            bc = None
        if bc is None or not bc.ca:
            raise ConfigError("expected an intermediate CA certificate after our own", f"{where}[{index}]")
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            raise ConfigError(
                f"does not issue {local.certs[index - 1]!r}: the chain goes from our certificate upwards",
                f"{where}[{index}]",
            ) from None
