"""Retransmission of an exchange's last message, and duplicate detection.

Each exchange owns one :class:`Retransmitter`. A request we sent is resent with exponential backoff
until a reply comes or we give up (strongSwan's defaults: 4 s, factor 1.8, 5 retries). A message we
receive a second time byte for byte is a retransmission by the peer: it gets the reply we cached for
it and is not processed again (nothing changes state).
"""

from __future__ import annotations

from dataclasses import dataclass

from snakeswan.crypto.algorithms import HashAlg, hash_by_name

_DIGEST: HashAlg = hash_by_name("sha1")


@dataclass(frozen=True, slots=True)
class RetransmitPolicy:
    timeout: float = 4.0
    base: float = 1.8
    tries: int = 5

    def delay(self, attempt: int) -> float:
        return self.timeout * self.base**attempt

    def budget(self) -> float:
        """How long an exchange waits for an answer in all before it gives up."""
        return sum(self.delay(attempt) for attempt in range(self.tries + 1))


class Retransmitter:
    __slots__ = ("_attempt", "_due", "_has_reply", "_last_received", "_sent_flag", "last_sent", "policy")

    def __init__(self, policy: RetransmitPolicy) -> None:
        self.policy = policy
        self.last_sent: bytes | None = None
        self._due: float | None = None
        self._attempt = 0
        self._last_received: bytes | None = None
        self._sent_flag = False  # something was sent since the last processed message
        self._has_reply = False  # last_sent answers the last processed message

    def sent(self, data: bytes, now: float, *, expect_reply: bool) -> None:
        """We sent ``data``; if it is a request, arm the timer."""
        self.last_sent = data
        self._sent_flag = True
        self._attempt = 0
        self._due = now + self.policy.delay(0) if expect_reply else None

    def received(self, data: bytes) -> bool:
        """True if ``data`` repeats the last processed message (a retransmission by the peer)."""
        return _DIGEST.digest(data) == self._last_received

    def processed(self, data: bytes) -> None:
        """The message was accepted and acted upon: a later copy of it is a duplicate."""
        self._last_received = _DIGEST.digest(data)
        self._has_reply, self._sent_flag = self._sent_flag, False

    @property
    def has_reply(self) -> bool:
        """What we sent last answers the last message processed (a copy of it gets it again)."""
        return self._has_reply and self.last_sent is not None

    def reply_to_duplicate(self) -> bytes | None:
        """What to send again for a duplicate: our answer to it, if it had one (not after a final
        message such as MM6 or QM3, else two ends would bounce their last messages forever)."""
        return self.last_sent if self._has_reply else None

    def stop(self) -> None:
        self._due = None

    def due(self) -> float | None:
        return self._due

    def fire(self, now: float) -> bytes | None:
        """Timer expired: the bytes to send again, or None when we give up."""
        self._attempt += 1
        if self._attempt > self.policy.tries or self.last_sent is None:
            self._due = None
            return None
        self._due = now + self.policy.delay(self._attempt)
        return self.last_sent
