"""Remote access between engines in memory: one gateway and many clients on a fake wire.

:class:`Hub` routes each datagram to the engine that owns its destination address (clients are
10.231.0.<n+10>, the gateway 10.231.0.2) and fires timers on a fake clock, like
:class:`tests.pair.Pair` but for any number of peers.
"""

from __future__ import annotations

from collections.abc import Callable

from snakeswan.config.loader import parse_config
from snakeswan.ike.engine import Engine
from snakeswan.ike.events import Datagram, Event
from snakeswan.trace import Tracer
from tests.pair import rng_for

GW_ADDR = "10.231.0.2"
GW_NET = "10.231.3.0/24"
POOL = "10.231.100.0/24"
GROUP_PSK = "group-pre-shared-key"


def gateway_config(
    *,
    pull: bool = True,
    xauth: bool = True,
    pool: str = POOL,
    users: dict[str, str] | None = None,
    aggressive: bool = False,
    xauth_id: str | None = None,
) -> str:
    users = users if users is not None else {"alice": "alice-password"}
    rounds = 'remote-psk = { auth = "psk", round = 1 }\n'
    if xauth:
        extra = f', xauth_id = "{xauth_id}"' if xauth_id else ""
        rounds += f'remote-xauth = {{ auth = "xauth", round = 2{extra} }}\n'
    secrets = "".join(
        f'[secrets.xauth-{i}]\nid = "{user}"\nsecret = "{pw}"\n\n'
        for i, (user, pw) in enumerate(users.items())
    )
    return f"""
[connections.rw]
local_addrs = ["{GW_ADDR}"]
remote_addrs = ["%any"]
aggressive = {str(aggressive).lower()}
proposals = ["aes128-sha256-modp2048"]
pools = ["rwpool"]
pull = {str(pull).lower()}
local = {{ auth = "psk", id = "gw.example" }}
{rounds}
[connections.rw.children.net]
local_ts = ["{GW_NET}"]
esp_proposals = ["aes128gcm16"]

[pools.rwpool]
addrs = "{pool}"
dns = ["10.231.3.53"]
split_include = ["{GW_NET}"]
banner = "welcome"

[secrets.ike-group]
secret = "{GROUP_PSK}"

{secrets}"""


def client_config(
    addr: str,
    *,
    user: str = "alice",
    password: str = "alice-password",
    pull: bool = True,
    xauth: bool = True,
    vips: bool = True,
    aggressive: bool = False,
) -> str:
    rounds = f'local-psk = {{ auth = "psk", round = 1, id = "{user}.rw.example" }}\n'
    if xauth:
        rounds += f'local-xauth = {{ auth = "xauth", round = 2, xauth_id = "{user}" }}\n'
    return f"""
[connections.home]
local_addrs = ["{addr}"]
remote_addrs = ["{GW_ADDR}"]
aggressive = {str(aggressive).lower()}
proposals = ["aes128-sha256-modp2048"]
{'vips = ["0.0.0.0"]' if vips else ""}
pull = {str(pull).lower()}
{rounds}
remote = {{ auth = "psk", id = "gw.example" }}

[connections.home.children.home]
remote_ts = ["{GW_NET}"]
esp_proposals = ["aes128gcm16"]

[secrets.ike-group]
secret = "{GROUP_PSK}"

[secrets.xauth-me]
id = "{user}"
secret = "{password}"
"""


def client_addr(n: int) -> str:
    return f"10.231.{n // 200 + 10}.{n % 200 + 10}"


class Hub:
    def __init__(self, gateway: str, clients: list[str], *, seed: int = 7, keylog: bool = False) -> None:
        self.now = 1000.0
        self.gateway = Engine(parse_config(gateway, "gw.toml"), rng_for(seed), tracer=Tracer(), keylog=keylog)
        self.engines: dict[str, Engine] = {GW_ADDR: self.gateway}
        self.clients: list[Engine] = []
        for n, text in enumerate(clients):
            eng = Engine(
                parse_config(text, f"c{n}.toml"), rng_for(seed + 1 + n), tracer=Tracer(), keylog=keylog
            )
            self.engines[client_addr(n)] = eng
            self.clients.append(eng)
        self.events: dict[int, list[Event]] = {id(e): [] for e in self.engines.values()}
        self.drop: Callable[[Datagram], bool] = lambda d: False
        self.wire: list[Datagram] = []

    def step(self) -> bool:
        moved = False
        for eng in list(self.engines.values()):
            for d in eng.datagrams_to_send(self.now):
                moved = True
                self.wire.append(d)
                if d.keepalive or self.drop(d):
                    continue
                target = self.engines.get(d.dst[0])
                if target is not None:
                    target.receive_datagram(d.data, d.src, d.dst, self.now)
        for eng in self.engines.values():
            while (ev := eng.next_event()) is not None:
                self.events[id(eng)].append(ev)
        return moved

    def run(self, max_time: float = 60.0) -> None:
        end = self.now + max_time
        for _ in range(200_000):
            if self.step():
                continue
            if len(self.engines) <= 8:  # the timer heaps agree with a scan of every SA
                for e in self.engines.values():
                    assert e.get_timer() == e.timers.scan_due(e.ike_sas)
            timers = [t for e in self.engines.values() if (t := e.get_timer()) is not None]
            if not timers or min(timers) > end:
                self.now = max(self.now, end)
                return
            self.now = max(self.now, min(timers))
            for e in self.engines.values():
                t = e.get_timer()
                if t is not None and t <= self.now:
                    e.handle_timer(self.now)
        raise AssertionError("hub did not settle")

    def of(self, eng: Engine, cls: type) -> list:  # type: ignore[type-arg]
        return [e for e in self.events[id(eng)] if isinstance(e, cls)]
