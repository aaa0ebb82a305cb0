"""Impairments: misbehave on purpose, to test peers (ours or other vendors' in a lab) the way
Libreswan's ``--impair`` does, but scriptable. Off unless asked for; every use is traced loudly.

An :class:`Impairer` sits between the engine and the wire. It watches datagrams both ways
(:meth:`Impairer.inbound` for what arrives, :meth:`Impairer.outbound` for what the engine sends) to
name each message as the RFCs do (``MM1``..``MM6``, ``AM1``..``AM3``, ``QM1``..``QM3``, ``INFO1``..,
``TR1``..), then applies the rules that match a message we send. A rule is ``ACTION:MESSAGE`` or
``ACTION:MESSAGE:COUNT`` (COUNT transmissions of that message are impaired, ``*`` for all; default
1, so that a retransmission can repair the damage):

- ``drop``       not sent
- ``duplicate``  sent twice
- ``corrupt``    one byte in the middle of the body flipped (for an encrypted message: ciphertext,
                 so the peer's decryption or its HASH check fails)
- ``truncate``   the body cut to half its length (the header's length no longer matches)
- ``wrong-spi``  the responder cookie (the ISAKMP SPI) changed: the peer knows no such SA
- ``replay``     sent, then sent again after the next datagram of the same ISAKMP SA (an old
                 message replayed)

Pure logic (no I/O, no clock, no randomness): usable from tests with two engines back to back, from
the library, and as ``snakeswan daemon --impair RULE`` (repeatable).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from snakeswan.errors import ConfigError, DecodeError
from snakeswan.ike.events import Datagram
from snakeswan.trace import Tracer
from snakeswan.wire.enums import ExchangeType, PayloadType
from snakeswan.wire.message import HEADER_SIZE, decode_header

ACTIONS = ("drop", "duplicate", "corrupt", "truncate", "wrong-spi", "replay")
_PREFIX = {
    ExchangeType.IDENTITY_PROTECTION: "MM",
    ExchangeType.AGGRESSIVE: "AM",
    ExchangeType.QUICK_MODE: "QM",
    ExchangeType.INFORMATIONAL: "INFO",
    ExchangeType.TRANSACTION: "TR",
}
_ONE_WAY = {"INFO"}  # numbered in the order we send them, whoever started


@dataclass
class Rule:
    action: str
    message: str
    count: int | None = 1  # None: every transmission
    used: int = 0

    def applies(self, name: str) -> bool:
        return name == self.message and (self.count is None or self.used < self.count)

    def __str__(self) -> str:
        return f"{self.action}:{self.message}:{'*' if self.count is None else self.count}"


def parse_rule(text: str) -> Rule:
    """``ACTION:MESSAGE[:COUNT]``; ConfigError naming what is wrong."""
    parts = text.strip().split(":")
    if len(parts) not in (2, 3) or not parts[1]:
        raise ConfigError(f"impairment {text!r}: expected ACTION:MESSAGE[:COUNT], e.g. drop:MM3")
    action, message = parts[0].lower(), parts[1].upper()
    if action not in ACTIONS:
        raise ConfigError(f"impairment {text!r}: unknown action {action!r} (known: {', '.join(ACTIONS)})")
    prefix = message.rstrip("0123456789")
    if prefix not in _PREFIX.values() or prefix == message:
        raise ConfigError(f"impairment {text!r}: message must be MM1..6, AM1..3, QM1..3, INFO<n> or TR<n>")
    count: int | None = 1
    if len(parts) == 3:
        if parts[2] == "*":
            count = None
        elif parts[2].isdigit() and int(parts[2]) > 0:
            count = int(parts[2])
        else:
            raise ConfigError(f"impairment {text!r}: COUNT must be a positive number or *")
    return Rule(action, message, count)


@dataclass
class _Exchange:
    we_started: bool
    sent: list[bytes] = field(default_factory=list)  # distinct messages we sent, in order


class Impairer:
    def __init__(self, rules: list[Rule], tracer: Tracer | None = None) -> None:
        self.rules = rules
        self.tracer = tracer
        self._exchanges: dict[tuple[bytes, int, int], _Exchange] = {}
        self._replay: dict[bytes, list[Datagram]] = {}  # by initiator cookie: to send again later
        self.applied: list[tuple[str, str]] = []  # (action, message), in order
        self.names: deque[str] = deque(maxlen=1000)  # the names of the last datagrams sent

    @classmethod
    def from_texts(cls, texts: list[str], tracer: Tracer | None = None) -> Impairer:
        return cls([parse_rule(t) for t in texts], tracer)

    def inbound(self, data: bytes) -> None:
        """A datagram arrived (before the engine sees it): who started its exchange."""
        key = _key(data)
        if key is not None and key not in self._exchanges:
            self._exchanges[key] = _Exchange(we_started=False)

    def outbound(self, d: Datagram) -> list[Datagram]:
        """What goes on the wire instead of ``d``."""
        key = _key(d.data) if not d.keepalive else None
        if key is None:
            return [d]
        ex = self._exchanges.setdefault(key, _Exchange(we_started=True))
        if d.data not in ex.sent:
            ex.sent.append(d.data)
        name = _name(key[2], ex, ex.sent.index(d.data))
        self.names.append(name)
        out = [d]
        for rule in self.rules:
            if rule.applies(name):
                rule.used += 1
                out = self._apply(rule.action, name, d, out)
        pending = self._replay.pop(key[0], [])
        return out + pending

    def _apply(self, action: str, name: str, d: Datagram, out: list[Datagram]) -> list[Datagram]:
        self.applied.append((action, name))
        if self.tracer is not None:
            self.tracer.emit("impair", action, msg=name, dst=d.dst, note="IMPAIRMENT (test only)")
        data = d.data
        if action == "drop":
            return [x for x in out if x is not d]
        if action == "duplicate":
            return [*out, d]
        if action == "replay":
            self._replay.setdefault(data[:8], []).append(d)
            return out
        body = len(data) - HEADER_SIZE
        if action == "corrupt" and body > 0:
            i = HEADER_SIZE + body // 2
            data = data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1 :]
        elif action == "truncate":
            data = data[: HEADER_SIZE + body // 2]
        elif action == "wrong-spi":
            data = data[:8] + bytes(b ^ 0xFF for b in data[8:16]) + data[16:]
        changed = Datagram(data, d.src, d.dst, d.keepalive)
        return [changed if x is d else x for x in out]


def _key(data: bytes) -> tuple[bytes, int, int] | None:
    """(initiator cookie, message ID, exchange type) of an ISAKMP datagram, None if it is not one."""
    try:
        h = decode_header(data)
    except DecodeError:  # not ISAKMP: never impaired
        return None
    if h.exchange not in _PREFIX or h.next_payload == PayloadType.FRAGMENT:
        return None  # IKE fragments (ike/fragments.py) are not named nor impaired
    return h.icookie, h.message_id, int(h.exchange)


def _name(exchange: int, ex: _Exchange, index: int) -> str:
    prefix = _PREFIX[ExchangeType(exchange)]
    if prefix in _ONE_WAY:
        return f"{prefix}{index + 1}"
    return f"{prefix}{2 * index + (1 if ex.we_started else 2)}"
