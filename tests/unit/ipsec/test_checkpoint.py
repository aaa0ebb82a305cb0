"""Counter checkpoints and resuming from them (issue 14): the outbound sequence number jumps past
anything that could have been sent, the replay window refuses everything up to the checkpoint."""

from __future__ import annotations

from snakeswan.ipsec import checkpoint
from snakeswan.ipsec.checkpoint import MIN_MARGIN, Checkpoint
from snakeswan.ipsec.sad import SEQ_MAX, SaParams, SecurityAssociation

KEY = bytes(range(20))


def _pair() -> tuple[SecurityAssociation, SecurityAssociation]:
    common = dict(protocol=50, transform_id=20, key_length=128, auth=None, local=("10.231.0.1", 500),
                  remote=("10.231.0.2", 500), encryption_key=KEY, integrity_key=b"")  # fmt: skip
    sa_in = SecurityAssociation(SaParams(spi=0x1000, **common), "in", ("c", "n"))  # type: ignore[arg-type]
    sa_out = SecurityAssociation(SaParams(spi=0x2000, **common), "out", ("c", "n"))  # type: ignore[arg-type]
    return sa_in, sa_out


def test_margin_covers_the_last_interval_with_room() -> None:
    assert checkpoint.margin(Checkpoint(5, 0, 0, 0, 0, 0, sent_last_interval=10)) == MIN_MARGIN
    busy = Checkpoint(5, 0, 0, 0, 0, 0, sent_last_interval=MIN_MARGIN)
    assert checkpoint.margin(busy) == 8 * MIN_MARGIN


def test_take_measures_what_was_sent_since_the_previous() -> None:
    sa_in, sa_out = _pair()
    sa_out.seq, sa_in.replay.top = 100, 40
    first = checkpoint.take(sa_in, sa_out, None)
    sa_out.seq = 350
    second = checkpoint.take(sa_in, sa_out, first)
    assert (second.seq_out, second.replay_top, second.sent_last_interval) == (350, 40, 250)
    assert Checkpoint.from_dict({**second.to_dict(), "kind": "seq"}) == second


def test_resume_jumps_and_closes_the_window() -> None:
    sa_in, sa_out = _pair()
    cp = Checkpoint(1000, 500, 10, 20, 3, 4, sent_last_interval=300_000)
    seq = checkpoint.resume(sa_in, sa_out, cp)
    assert seq == sa_out.seq == 1000 + 8 * 300_000  # beyond anything sent after the checkpoint
    assert (sa_in.bytes, sa_out.bytes, sa_in.packets, sa_out.packets) == (10, 20, 3, 4)
    for old in (1, 400, 499, 500):  # at or below the checkpointed top: replays refused
        assert not sa_in.replay.check(old)
    assert sa_in.replay.check(501) and sa_in.replay.check(10_000)


def test_resume_without_a_checkpoint_still_jumps() -> None:
    sa_in, sa_out = _pair()
    assert checkpoint.resume(sa_in, sa_out, None) == MIN_MARGIN
    assert sa_in.replay.check(1)  # nothing known of the peer's numbers: the window starts empty


def test_resume_near_the_end_of_the_space_saturates() -> None:
    sa_in, sa_out = _pair()
    assert checkpoint.resume(sa_in, sa_out, Checkpoint(SEQ_MAX - 5, 0, 0, 0, 0, 0)) == SEQ_MAX
