"""The three error families of snakeswan and their fixed outcomes (DESIGN.md principle 7).

- :class:`DecodeError`: a packet could not be parsed. The engine drops it and traces why.
- :class:`PeerError`: the peer sent something we refuse. The engine answers with ``notify``.
- :class:`LocalError` / :class:`ConfigError`: the caller asked for something impossible; raised to it.

This module imports nothing from snakeswan, so every layer may use it.
"""

from __future__ import annotations


class SnakeswanError(Exception):
    """Base class of every error snakeswan raises on purpose."""


class DecodeError(SnakeswanError):
    """Malformed input: ``what`` went wrong at byte ``offset`` of the message (or of ``where``)."""

    def __init__(self, what: str, offset: int = 0, where: str = "message") -> None:
        self.what = what
        self.offset = offset
        self.where = where
        super().__init__(f"{where}: {what} at offset {offset}")


class PeerError(SnakeswanError):
    """The peer's message is well formed but unacceptable; answer with Notify ``notify``.

    ``notify`` is the ISAKMP Notify Message Type number (RFC 2408 section 3.14.1), for example
    14 (NO-PROPOSAL-CHOSEN) or 24 (AUTHENTICATION-FAILED). ``data`` goes into the Notify payload.
    """

    def __init__(self, notify: int, what: str, data: bytes = b"") -> None:
        self.notify = notify
        self.what = what
        self.data = data
        super().__init__(f"{what} (notify {notify})")


class AuthenticationError(PeerError):
    """The message failed authentication (a HASH mismatch, or a phase 1 body that does not decrypt).

    Anybody can forge such a message, so it is dropped and does not end the exchange at once; the
    exchange fails with ``notify`` only when it happens repeatedly or the exchange times out.
    """


class LocalError(SnakeswanError):
    """A local request cannot be carried out (unknown connection, no SA, wrong state)."""


class ConfigError(LocalError):
    """Configuration is invalid: ``where`` names the file and key, ``what`` what was expected."""

    def __init__(self, what: str, where: str = "") -> None:
        self.what = what
        self.where = where
        super().__init__(f"{where}: {what}" if where else what)


class CryptoError(SnakeswanError):
    """A cryptographic operation failed on input that is not a plain decode problem.

    For example an invalid Diffie-Hellman public value. Exchanges turn it into a ``PeerError``.
    """
