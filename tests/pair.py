"""Two IKE engines back to back in memory (DESIGN.md principle 13), with a fake clock.

A :class:`Pair` routes each datagram one engine sends to the other, optionally through a simulated
NAT (source address/port rewritten), and can drop or duplicate chosen datagrams.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from snakeswan.config.loader import parse_config
from snakeswan.ike.engine import Engine
from snakeswan.ike.events import Address, Datagram, Event
from snakeswan.trace import Tracer

A_ADDR = "10.231.0.1"
B_ADDR = "10.231.0.2"
PSK = "pair-test-pre-shared-key"


def site_config(
    local: str,
    remote: str,
    local_net: str,
    remote_net: str,
    *,
    ike: str = "aes128-sha256-modp2048",
    esp: str = "aes128gcm16-modp2048",
    ah: str | None = None,
    aggressive: bool = False,
    psk: str = PSK,
    local_id: str | None = None,
    remote_id: str | None = None,
    rekey_time: str = "4h",
    life_time: str = "1h",
    mode: str = "tunnel",
    extra_secret_ids: tuple[str, str] | None = None,
    remote_addrs: str | None = None,
    dpd_delay: str = "0s",
    dpd_timeout: str = "0s",
    dpd_action: str = "clear",
    close_action: str = "none",
    start_action: str = "none",
    ike_life_bytes: str | None = None,
    ike_lifetime_check: str | None = None,
) -> str:
    lid = local_id or local
    rid = remote_id or remote
    ids = extra_secret_ids or (lid, rid)
    volume = f'ike_life_bytes = "{ike_life_bytes}"' if ike_life_bytes else ""
    if ike_lifetime_check is not None:
        volume += f'\nike_lifetime_check = "{ike_lifetime_check}"'
    props = f'ah_proposals = ["{ah}"]' if ah else f'esp_proposals = ["{esp}"]'
    return f"""
[connections.site]
local_addrs = ["{local}"]
remote_addrs = ["{remote_addrs or remote}"]
aggressive = {str(aggressive).lower()}
proposals = ["{ike}"]
rekey_time = "{rekey_time}"
over_time = "0s"
dpd_delay = "{dpd_delay}"
dpd_timeout = "{dpd_timeout}"
{volume}
local = {{ auth = "psk", id = "{lid}" }}
remote = {{ auth = "psk", id = "{rid}" }}

[connections.site.children.net]
local_ts = ["{local_net}"]
remote_ts = ["{remote_net}"]
{props}
mode = "{mode}"
life_time = "{life_time}"
rekey_time = "{life_time}"
dpd_action = "{dpd_action}"
close_action = "{close_action}"
start_action = "{start_action}"

[secrets.ike-site]
id = ["{ids[0]}", "{ids[1]}"]
secret = "{psk}"
"""


def rng_for(seed: int) -> Callable[[int], bytes]:
    r = random.Random(seed)
    return r.randbytes


@dataclass
class Side:
    engine: Engine
    addr: str
    events: list[Event] = field(default_factory=list)


class Pair:
    def __init__(
        self,
        config_a: str,
        config_b: str,
        *,
        seed: int = 1,
        nat_a: tuple[str, int] | None = None,
        keylog: bool = False,
    ) -> None:
        self.now = 1000.0
        self.a = Side(
            Engine(parse_config(config_a, "a.toml"), rng_for(seed), tracer=Tracer(), keylog=keylog), A_ADDR
        )
        self.b = Side(
            Engine(parse_config(config_b, "b.toml"), rng_for(seed + 1), tracer=Tracer(), keylog=keylog),
            B_ADDR,
        )
        self.nat_a = nat_a  # (public address, public port base): A's datagrams leave through a NAT
        self._nat_map: dict[Address, Address] = {}
        self.drop: Callable[[Datagram, int], bool] = lambda d, n: False
        self.duplicate: Callable[[Datagram, int], bool] = lambda d, n: False
        # rewrite a datagram on its way (after it was recorded in ``wire`` as sent)
        self.rewrite: Callable[[Datagram, int], Datagram] = lambda d, n: d
        self.wire: list[tuple[str, Datagram]] = []  # every datagram as it crossed, with its sender
        # more due times to wake up at (a test's impairer holding delayed datagrams, say)
        self.wakeups: list[Callable[[], float | None]] = []

    def _translate(self, d: Datagram, sender: Side) -> Datagram | None:
        if self.nat_a is None:
            return d
        if sender is self.a:
            pub = self._nat_map.get(d.src)
            if pub is None:
                pub = (self.nat_a[0], self.nat_a[1] + len(self._nat_map))
                self._nat_map[d.src] = pub
            return Datagram(d.data, pub, d.dst)
        back = {v: k for k, v in self._nat_map.items()}
        if d.dst not in back:
            return None  # no mapping: the NAT drops it
        return Datagram(d.data, d.src, back[d.dst])

    def step(self) -> bool:
        """Deliver everything both sides want to send; True if anything moved."""
        moved = False
        for sender, receiver in ((self.a, self.b), (self.b, self.a)):
            for d in sender.engine.datagrams_to_send(self.now):
                n = len(self.wire)
                self.wire.append(("a" if sender is self.a else "b", d))
                moved = True
                if self.drop(d, n) or d.keepalive:
                    continue  # NAT-T keepalives are the driver's business
                t = self._translate(self.rewrite(d, n), sender)
                if t is None:
                    continue
                receiver.engine.receive_datagram(t.data, t.src, t.dst, self.now)
                if self.duplicate(d, n):
                    receiver.engine.receive_datagram(t.data, t.src, t.dst, self.now)
        for side in (self.a, self.b):
            while (ev := side.engine.next_event()) is not None:
                side.events.append(ev)
        return moved

    def run(self, max_time: float = 120.0) -> None:
        """Exchange datagrams and fire timers for ``max_time`` seconds of fake time (the clock ends
        there, or earlier only if the pair did not settle)."""
        end = self.now + max_time
        for _ in range(10_000):
            if self.step():
                continue
            for s in (self.a, self.b):  # the timer heaps agree with a scan of every SA
                assert s.engine.get_timer() == s.engine.timers.scan_due(s.engine.ike_sas)
            timers = [t for s in (self.a, self.b) if (t := s.engine.get_timer()) is not None]
            timers += [t for w in self.wakeups if (t := w()) is not None]
            if not timers or min(timers) > end:
                self.now = max(self.now, end)  # the clock runs on through quiet time
                return
            self.now = max(self.now, min(timers))
            for s in (self.a, self.b):
                t = s.engine.get_timer()
                if t is not None and t <= self.now:
                    s.engine.handle_timer(self.now)
        raise AssertionError("pair did not settle in 10000 steps")

    def of(self, side: Side, cls: type) -> list:  # type: ignore[type-arg]
        return [e for e in side.events if isinstance(e, cls)]
