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
- ``delay[=S]``  held for S seconds (default 1), then sent
- ``reorder[=S]`` held until the next other datagram to the same peer has gone, and
                 ``REORDER_GAP`` (50 ms) more (at most S seconds in all, default 1): AM3 after the
                 QM1 that follows it, one of two QM1s after the other. The gap makes the order hold
                 at a peer whose worker threads take datagrams in parallel (charon's): sent back
                 to back, the held one was sometimes handled first

Payload rules name a payload of the message, ``ACTION:MESSAGE.PAYLOAD[:COUNT]``, and change the
message before it is encoded and encrypted (``ike/impair_payloads.py``): ``omit``, ``duplicate``,
``corrupt`` (``omit:QM1.KE``, ``corrupt:MM3.NAT-D``); ``bad-hash:MSG`` and ``bad-sig:MSG`` corrupt
its HASH or SIG. They need :meth:`Impairer.attach` (the engine's ``Context.payload_hook``).

Pure logic (no I/O, no clock, no randomness; the driver passes ``now`` and asks :meth:`release`
for held datagrams when :meth:`get_timer` is due): usable from tests with two engines back to
back, from the library, and as ``snakeswan daemon --impair RULE`` (repeatable).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from snakeswan.errors import ConfigError, DecodeError
from snakeswan.ike import impair_payloads
from snakeswan.ike.context import Context
from snakeswan.ike.events import Datagram
from snakeswan.ike.impair_payloads import MissingPayload, Rehash
from snakeswan.trace import Tracer
from snakeswan.wire.enums import ExchangeType, PayloadType
from snakeswan.wire.message import HEADER_SIZE, decode_header
from snakeswan.wire.payloads import Payload

ACTIONS = ("drop", "duplicate", "corrupt", "truncate", "wrong-spi", "replay", "delay", "reorder")
PAYLOAD_ACTIONS = (*impair_payloads.ACTIONS, *impair_payloads.SHORTCUTS)
_TIMED = {"delay": 1.0, "reorder": 1.0}  # actions with a time (default seconds)
REORDER_GAP = 0.05  # a reordered datagram goes this long after the one it was held behind
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
    payload: str | None = None  # a payload rule: the payload's name (KE, HASH, NAT-D...)
    seconds: float | None = None  # delay, reorder

    def applies(self, name: str) -> bool:
        return name == self.message and (self.count is None or self.used < self.count)

    def __str__(self) -> str:
        action = self.action if self.seconds is None else f"{self.action}={self.seconds:g}"
        target = self.message if self.payload is None else f"{self.message}.{self.payload}"
        return f"{action}:{target}:{'*' if self.count is None else self.count}"


def parse_rule(text: str) -> Rule:
    """``ACTION[=SECONDS]:MESSAGE[.PAYLOAD][:COUNT]``; ConfigError naming what is wrong."""
    parts = text.strip().split(":")
    if len(parts) not in (2, 3) or not parts[1]:
        raise ConfigError(f"impairment {text!r}: expected ACTION:MESSAGE[:COUNT], e.g. drop:MM3")
    action, _, value = parts[0].lower().partition("=")
    message, _, payload = parts[1].upper().partition(".")
    if action in impair_payloads.SHORTCUTS:
        if payload:
            raise ConfigError(f"impairment {text!r}: {action} names a message, not a payload")
        action, payload = "corrupt", impair_payloads.SHORTCUTS[action]
    if payload:
        if action not in impair_payloads.ACTIONS:
            known = ", ".join(PAYLOAD_ACTIONS)
            raise ConfigError(f"impairment {text!r}: {action!r} is no payload action (known: {known})")
        if payload not in impair_payloads.NAMES:
            known = ", ".join(impair_payloads.NAMES)
            raise ConfigError(f"impairment {text!r}: unknown payload {payload!r} (known: {known})")
    elif action in impair_payloads.ACTIONS and action not in ACTIONS:
        raise ConfigError(f"impairment {text!r}: {action} needs a payload, e.g. {action}:QM1.KE")
    elif action not in ACTIONS:
        known = ", ".join(dict.fromkeys((*ACTIONS, *PAYLOAD_ACTIONS)))
        raise ConfigError(f"impairment {text!r}: unknown action {action!r} (known: {known})")
    seconds = _seconds(text, action, value)
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
    return Rule(action, message, count, payload=payload or None, seconds=seconds)


def _seconds(text: str, action: str, value: str) -> float | None:
    if action not in _TIMED:
        if value:
            raise ConfigError(f"impairment {text!r}: {action} takes no value")
        return None
    if not value:
        return _TIMED[action]
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 600:
        raise ConfigError(f"impairment {text!r}: {action}=SECONDS must be a number of seconds in (0, 600]")
    return seconds


@dataclass
class _Exchange:
    we_started: bool
    sent: list[bytes] = field(default_factory=list)  # distinct messages we sent, in order


@dataclass
class _Held:
    due: float
    d: Datagram
    reorder: bool  # else delay


class Impairer:
    def __init__(self, rules: list[Rule], tracer: Tracer | None = None) -> None:
        self.rules = rules
        self.tracer = tracer
        self._exchanges: dict[tuple[bytes, int, int], _Exchange] = {}
        self._replay: dict[bytes, list[Datagram]] = {}  # by initiator cookie: to send again later
        self._held: list[_Held] = []  # delayed and reordered datagrams, in the order they came
        self.applied: list[tuple[str, str]] = []  # (action, message[.payload]), in order
        self.names: deque[str] = deque(maxlen=1000)  # the names of the last datagrams sent

    @classmethod
    def from_texts(cls, texts: list[str], tracer: Tracer | None = None) -> Impairer:
        return cls([parse_rule(t) for t in texts], tracer)

    def attach(self, ctx: Context) -> None:
        """Let the payload rules act on the messages the engine of ``ctx`` builds."""
        ctx.payload_hook = self.payloads

    def inbound(self, data: bytes) -> None:
        """A datagram arrived (before the engine sees it): who started its exchange."""
        key = _key(data)
        if key is not None and key not in self._exchanges:
            self._exchanges[key] = _Exchange(we_started=False)

    def payloads(
        self, icookie: bytes, exchange: int, message_id: int, payloads: list[Payload], rehash: Rehash | None
    ) -> list[Payload]:
        """The payload rules, on a message about to be encoded (``Context.payload_hook``)."""
        if exchange not in _PREFIX:
            return payloads
        ex = self._exchanges.setdefault((icookie, message_id, exchange), _Exchange(we_started=True))
        name = _name(exchange, ex, len(ex.sent))  # the next distinct message of the exchange
        for rule in self.rules:
            if rule.payload is None or not rule.applies(name):
                continue
            try:
                payloads = impair_payloads.impair(rule.action, rule.payload, payloads, rehash)
            except MissingPayload:
                continue  # not in this form of the message: the rule waits for one that has it
            rule.used += 1
            self._record(rule.action, f"{name}.{rule.payload}", None)
        return payloads

    def outbound(self, d: Datagram, now: float = 0.0) -> list[Datagram]:
        """What goes on the wire instead of ``d`` now (held datagrams come from :meth:`release`)."""
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
            if rule.payload is None and rule.applies(name):
                rule.used += 1
                out = self._apply(rule, name, d, out, now)
        pending = self._replay.pop(key[0], [])
        if out:  # a datagram left: what waits to go after the next one to that peer goes soon
            for h in self._held:
                if h.reorder and h.d.dst == d.dst and h.d.data != d.data:
                    h.due, h.reorder = min(h.due, now + REORDER_GAP), False
        return out + pending

    def get_timer(self) -> float | None:
        """When the next held datagram is due (None: nothing held)."""
        return min((h.due for h in self._held), default=None)

    def release(self, now: float) -> list[Datagram]:
        """The held datagrams due by ``now``, in the order they were held."""
        return self._take(lambda h: h.due <= now)

    def _take(self, which: Callable[[_Held], bool]) -> list[Datagram]:
        out = [h.d for h in self._held if which(h)]
        if out:
            self._held = [h for h in self._held if not which(h)]
        return out

    def _record(self, action: str, what: str, dst: object) -> None:
        self.applied.append((action, what))
        if self.tracer is not None:
            self.tracer.emit("impair", action, msg=what, dst=dst, note="IMPAIRMENT (test only)")

    def _apply(self, rule: Rule, name: str, d: Datagram, out: list[Datagram], now: float) -> list[Datagram]:
        action = rule.action
        self._record(action, name, d.dst)
        data = d.data
        if action == "drop":
            return [x for x in out if x is not d]
        if action == "duplicate":
            return [*out, d]
        if action == "replay":
            self._replay.setdefault(data[:8], []).append(d)
            return out
        if action in _TIMED:
            self._held.append(_Held(now + (rule.seconds or _TIMED[action]), d, action == "reorder"))
            return [x for x in out if x is not d]
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
