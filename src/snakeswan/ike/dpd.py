"""Dead Peer Detection (RFC 3706) for one ISAKMP SA: when nothing came from the peer for
``delay`` seconds, send R-U-THERE (again every ``delay`` while unanswered); no answer within
``timeout`` of the first probe means the peer is dead. Answering the peer's R-U-THERE is always done
by the engine, whatever this state says."""

from __future__ import annotations

from dataclasses import dataclass

# strongSwan's IKEv1 default when dpd_timeout is not set
DEFAULT_TIMEOUT = 150.0


@dataclass
class DpdState:
    delay: float
    timeout: float
    last_inbound: float
    seq: int
    outstanding: int | None = None  # sequence number of the unanswered R-U-THERE
    deadline: float | None = None
    next_probe: float | None = None

    def due(self) -> float | None:
        if self.outstanding is None:
            return self.last_inbound + self.delay
        times = [t for t in (self.next_probe, self.deadline) if t is not None]
        return min(times) if times else None

    def inbound(self, now: float) -> None:
        """Anything authenticated from the peer (IKE or ESP) proves it is alive."""
        self.last_inbound = max(self.last_inbound, now)
        self.outstanding = self.deadline = self.next_probe = None

    def ack(self, seq: int, now: float) -> bool:
        if self.outstanding is None or seq != self.outstanding:
            return False
        self.inbound(now)
        return True

    def on_timer(self, now: float) -> str | None:
        """``"probe"``: send R-U-THERE with :attr:`outstanding`; ``"dead"``: give up on the peer."""
        if self.deadline is not None and now >= self.deadline:
            return "dead"
        if self.outstanding is None:
            if now < self.last_inbound + self.delay:
                return None
            self.seq = (self.seq + 1) & 0xFFFFFFFF
            self.outstanding = self.seq
            self.deadline = now + self.timeout
            self.next_probe = now + self.delay
            return "probe"
        if self.next_probe is not None and now >= self.next_probe:
            self.seq = (self.seq + 1) & 0xFFFFFFFF
            self.outstanding = self.seq
            self.next_probe = now + self.delay
            return "probe"
        return None
