"""What every exchange has: a name, a message ID, a retransmitter, and a ``handle`` for messages."""

from __future__ import annotations

from abc import ABC, abstractmethod

from snakeswan.errors import PeerError
from snakeswan.ike.context import Context
from snakeswan.ike.retransmit import Retransmitter
from snakeswan.ike.sa import IkeSa
from snakeswan.wire.enums import NotifyType, name_of
from snakeswan.wire.message import Message


class Exchange(ABC):
    """One exchange under way on an ISAKMP SA (Main, Aggressive, Quick Mode, ...)."""

    name: str = "exchange"

    def __init__(self, sa: IkeSa, ctx: Context, message_id: int) -> None:
        self.sa = sa
        self.ctx = ctx
        self.message_id = message_id
        self.retx = Retransmitter(ctx.retransmit)
        self.done = False
        self.done_at: float | None = None  # when the engine saw it done (ike/linger.py)
        self.rejected = 0  # messages dropped because they failed authentication or were unacceptable
        self.last_rejection: PeerError | None = None
        # error Notifies nothing authenticated, received while this (phase 1) exchange waited: they
        # do not end it (anyone who sees the cookies can forge them), they explain its timeout
        self.peer_notify = 0
        self.peer_notifies = 0

    @property
    def answered(self) -> bool:
        """The peer answered one of our messages (a responder's first answer reached it: its
        address is real). Phase 1 exchanges say so past their first message."""
        return True

    def peer_said(self) -> str:
        """What the unauthenticated error Notifies received during this exchange said."""
        times = f", {self.peer_notifies} times" if self.peer_notifies > 1 else ""
        return f"peer sent {name_of(NotifyType, self.peer_notify)} (unauthenticated{times})"

    def expected(self) -> str:
        """The name of the message this exchange waits for now (``MM3``, ``QM2``...), for traces."""
        return self.name

    @abstractmethod
    def handle(self, msg: Message, ciphertext: bytes | None, data: bytes, now: float) -> None:
        """Process a received message of this exchange (decrypted, not yet authenticated)."""

    def late(self, data: bytes, now: float) -> bool:
        """A message of this exchange that arrived after it completed and is no duplicate; True
        if the exchange took it (the engine drops it otherwise)."""
        return False

    def rechain(self, base: bytes, now: float) -> None:  # noqa: B027 - a no-op unless overridden
        """Phase 1 turned out to have another possible end, ``base`` (its final message came in two
        authenticated forms): a first message of ours still unanswered goes again, chained from it.
        Nothing to do for most exchanges."""

    def send(self, data: bytes, now: float, *, expect_reply: bool) -> None:
        self.retx.sent(data, now, expect_reply=expect_reply)
        self.ctx.send(data, self.sa.local, self.sa.remote)

    def trace(self, event: str, **fields: object) -> None:
        self.ctx.tracer.emit("ike", event, sa=self.sa.unique_id, exchange=self.name, **fields)
