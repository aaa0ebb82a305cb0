"""Checkpoints of an IPsec SA pair's counters, and resuming from one after a restart (issue 14).

A checkpoint holds what changes with every packet and is not in the IKE record: the outbound
sequence number, the inbound replay window's top, byte and packet counts. The daemon writes one
per SA pair every :data:`INTERVAL` seconds (when something moved) and on restore:

- the **outbound sequence number jumps ahead** by :func:`margin`: more than could have been sent
  since the checkpoint, so no sequence number is used twice under one key (the peer's replay
  window would drop it, and reusing one is a nonce reuse for AES-GCM/CTR). The checkpoint timer
  runs on the loop that also sends the packets, so between two checkpoints at most one interval
  plus one batch of packets went out; the margin is the larger of :data:`MIN_MARGIN` (2^20: a
  million packets a second for a whole interval, several times what this userspace data plane
  sends) and eight times what the SA sent in its last interval before the checkpoint (a burst
  growing that fast still fits). strongSwan's HA plugin does the same with its ``seq`` jump.
- the **inbound replay window restarts at the checkpointed top with every sequence number at or
  below it marked seen**: nothing received before the checkpoint can be replayed; packets from
  the peer that were in flight just below the top are lost once (the peer's next ones are above
  it). What arrived between the checkpoint and the crash (at most one interval) could be replayed
  once into the restored SA: that is the window the interval bounds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from snakeswan.ipsec.sad import SEQ_MAX, SecurityAssociation

__all__ = ["INTERVAL", "MIN_MARGIN", "Checkpoint", "margin", "resume", "take"]

INTERVAL = 1.0  # seconds between checkpoints of the counters
MIN_MARGIN = 1 << 20
BURST_FACTOR = 8


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq_out: int
    replay_top: int
    bytes_in: int
    bytes_out: int
    packets_in: int
    packets_out: int
    sent_last_interval: int = 0  # outbound packets since the checkpoint before (for the margin)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Checkpoint:
        names = cls.__dataclass_fields__
        return cls(**{k: int(v) for k, v in data.items() if k in names})


def take(sa_in: SecurityAssociation, sa_out: SecurityAssociation, previous: Checkpoint | None) -> Checkpoint:
    """The pair's counters now; ``previous`` (the last checkpoint) gives the recent send rate."""
    sent = sa_out.seq - previous.seq_out if previous is not None else sa_out.seq
    return Checkpoint(
        sa_out.seq, sa_in.replay.top, sa_in.bytes, sa_out.bytes, sa_in.packets, sa_out.packets, max(sent, 0)
    )


def margin(cp: Checkpoint) -> int:
    """How far the outbound sequence number jumps past ``cp`` on restore (module docstring)."""
    return max(MIN_MARGIN, BURST_FACTOR * cp.sent_last_interval)


def resume(sa_in: SecurityAssociation, sa_out: SecurityAssociation, cp: Checkpoint | None) -> int:
    """Set a freshly installed pair's counters from ``cp`` (None: no checkpoint was written: the
    SA may have sent up to an interval's worth before the crash, so the jump applies from 0).
    Returns the new outbound sequence number (the last one counted as sent)."""
    base = cp or Checkpoint(0, 0, 0, 0, 0, 0)
    sa_out.seq = min(base.seq_out + margin(base), SEQ_MAX)
    sa_out.bytes, sa_out.packets = base.bytes_out, base.packets_out
    sa_in.bytes, sa_in.packets = base.bytes_in, base.packets_in
    window = sa_in.replay
    if base.replay_top:
        window.top = base.replay_top
        window.bitmap = (1 << window.size) - 1 if window.size else 0  # all at or below the top: seen
    return sa_out.seq
