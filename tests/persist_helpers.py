"""Helpers of the restart tests (issue 14): a 10 Hz ping in the background and what it saw."""

from __future__ import annotations

import itertools
import re
import subprocess
from dataclasses import dataclass

from tests.netns import Netns

INTERVAL = 0.1


@dataclass
class PingResult:
    sent: int
    received: int
    longest_gap: float  # seconds without a reply, the longest stretch

    @property
    def lost_seconds(self) -> float:
        return (self.sent - self.received) * INTERVAL


class BackgroundPing:
    """``ping -i 0.1`` from ``src`` to ``dst`` for ``seconds``, inside ``ns``."""

    def __init__(self, ns: Netns, src: str, dst: str, seconds: float) -> None:
        self.count = int(seconds / INTERVAL)
        self.proc = ns.popen(
            "ping", "-n", "-I", src, "-i", str(INTERVAL), "-c", str(self.count), "-W", "1", dst,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.seconds = seconds

    def result(self) -> PingResult:
        out, _ = self.proc.communicate(timeout=self.seconds + 30)
        m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
        assert m, out
        seqs = sorted({int(s) for s in re.findall(r"icmp_seq=(\d+) ttl", out)})
        edges = [0, *seqs, int(m.group(1)) + 1]
        gap = max(b - a - 1 for a, b in itertools.pairwise(edges)) * INTERVAL
        return PingResult(int(m.group(1)), int(m.group(2)), gap)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
