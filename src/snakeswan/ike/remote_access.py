"""Remote access on one ISAKMP SA: the XAUTH round and Mode Config between phase 1 and the first
Quick Mode, in the order strongSwan and Cisco peers use (both roles, pull and push):

    gateway (XAUTH server, pool)                  client (XAUTH user, vips)
    XAUTH  REQUEST ->                <- REPLY      (user name, password)
    XAUTH  SET(status) ->            <- ACK
    pull:                            <- REQUEST    Mode Config (address, DNS, split networks...)
           REPLY ->
    push:  SET ->                    <- ACK

Fail closed: until every round this connection configures has succeeded the SA is not *ready*:
no Quick Mode is started or answered on it (the engine asks :attr:`RemoteAccess.ready`). A wrong
password, a pool with no address left, a round the peer never does (``deadline``) or a request we
cannot answer sets :attr:`RemoteAccess.failed`, and the engine deletes the SA.

A helper the engine attaches to an SA once phase 1 is up (DESIGN.md principle 4); the
Transaction exchange carries its messages, :mod:`xauth` and :mod:`modecfg` say what is in them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from snakeswan.config.model import ConnectionConfig
from snakeswan.config.traffic import IPAddress, TrafficSelector
from snakeswan.ike import modecfg, phase1, xauth
from snakeswan.ike.context import Context
from snakeswan.ike.events import VirtualIps, XauthCheck, XauthResult
from snakeswan.ike.leases import Leases
from snakeswan.ike.sa import IkeSa
from snakeswan.ike.transaction import ACK, REPLY, REQUEST, SET, Deferred, OnReply
from snakeswan.wire.attributes import Attribute
from snakeswan.wire.enums import ConfigAttr
from snakeswan.wire.payloads import AttributePayload

_XAUTH_TYPES = range(ConfigAttr.XAUTH_TYPE, ConfigAttr.XAUTH_ANSWER + 1)

# (sa, label, attribute payload, what to do with the answer, now): start a Transaction
StartTransaction = Callable[[IkeSa, str, AttributePayload, OnReply, float], None]


def is_xauth(attr: AttributePayload) -> bool:
    return any(a.type in _XAUTH_TYPES for a in attr.attributes)


@dataclass
class _Step:
    """Where one round stands: todo -> asked -> (verdict) -> done."""

    state: str = "todo"


class RemoteAccess:
    def __init__(
        self, sa: IkeSa, conn: ConnectionConfig, ctx: Context, leases: Leases, start: StartTransaction
    ) -> None:
        self.sa = sa
        self.conn = conn
        self.ctx = ctx
        self.leases = leases
        self._start = start
        self.server_xauth = conn.remote_xauth is not None
        self.client_xauth = conn.local_xauth is not None
        self.server_cfg = bool(conn.pools)
        self.client_cfg = bool(conn.vips)
        self.xauth = _Step("todo" if self.server_xauth or self.client_xauth else "done")
        self.cfg = _Step("todo" if self.server_cfg or self.client_cfg else "done")
        self.user: str | None = None
        self.verdict: xauth.Verdict | None = None
        self.vips: list[IPAddress] = []  # client: ours; gateway: those leased to the peer
        self.leased: list[tuple[str, IPAddress]] = []
        self.modecfg: modecfg.ModeCfg | None = None
        self.failed: str | None = None
        self.busy = False  # a Transaction we started awaits its answer
        self.deadline: float | None = None
        self.announced = False  # the engine has started the pending children

    @property
    def needed(self) -> bool:
        return self.xauth.state != "done" or self.cfg.state != "done"

    @property
    def ready(self) -> bool:
        """No Quick Mode before this: XAUTH done and, where Mode Config decides the addresses, it too
        (a pulling gateway is ready after XAUTH: the client asks for its address when it wants)."""
        if self.failed is not None or self.xauth.state != "done":
            return False
        if self.server_cfg and self.conn.pull and not self.client_cfg:
            return True
        return self.cfg.state == "done"

    def begin(self, now: float, budget: float) -> None:
        """Phase 1 is up: the rounds must be over within ``budget`` seconds."""
        self.deadline = now + budget + 1.0  # after our own requests' give-up, whose reason is clearer
        self.proceed(now)

    def stalled(self) -> str:
        """Why the SA is not ready at its deadline."""
        if self.xauth.state != "done":
            return "XAUTH not completed in time"
        return "Mode Config not completed in time"

    def fail(self, reason: str) -> None:
        if self.failed is None:
            self.failed = reason
            self.ctx.tracer.emit("ike", "remote_access_failed", sa=self.sa.unique_id, reason=reason)

    def _identifier(self) -> int:
        return int.from_bytes(self.ctx.rng(2), "big")

    # ---- what we start ------------------------------------------------------------------------

    def proceed(self, now: float) -> None:
        """Start the next step that is ours to start, if nothing is outstanding."""
        if self.failed is not None or self.busy:
            return
        if self.server_xauth and self.xauth.state == "todo":
            self.xauth.state = "asked"
            self._send("XAUTH", REQUEST, xauth.server_request(), self._xauth_reply, now)
        elif self.server_xauth and self.xauth.state == "verdict":
            assert self.verdict is not None
            self.xauth.state = "status"
            self._send("XAUTH", SET, xauth.status(self.verdict.ok), self._xauth_acked, now)
        elif self.xauth.state == "done" and self.cfg.state == "todo":
            if self.server_cfg and not self.conn.pull and not self.client_cfg:
                self._push(now)
            elif self.client_cfg and self.conn.pull:
                self.cfg.state = "asked"
                self._send("ModeCfg", REQUEST, modecfg.client_request(self.conn.vips), self._cfg_reply, now)

    def _send(
        self, label: str, kind: int, attrs: tuple[Attribute, ...], on_reply: OnReply, now: float
    ) -> None:
        self.busy = True

        def answered(attr: AttributePayload, when: float) -> None:
            self.busy = False
            on_reply(attr, when)

        self._start(self.sa, label, AttributePayload(kind, self._identifier(), attrs), answered, now)

    def _xauth_reply(self, attr: AttributePayload, now: float) -> None:
        assert self.conn.remote_xauth is not None
        if self.conn.remote_xauth.auth == "xauth-radius":
            checked = xauth.check_reply_fields(attr.attributes, self.conn.remote_xauth)
            if isinstance(checked, xauth.Verdict):  # nothing to ask RADIUS about
                self.decided(checked, now)
                return
            self.user = checked[0]
            self.xauth.state = "checking"
            self.ctx.emit(XauthCheck(self.sa.unique_id, self.conn.name, *checked))
            self.ctx.tracer.emit(
                "ike", "xauth_check", sa=self.sa.unique_id, user=checked[0], backend="radius"
            )
            return
        self.decided(xauth.check_reply(attr.attributes, self.conn.remote_xauth, self.ctx.config.secrets), now)

    def decided(self, verdict: xauth.Verdict, now: float) -> None:
        """The password check is over (at once for secrets, later for RADIUS)."""
        self.verdict, self.user = verdict, verdict.user
        self.xauth.state = "verdict"
        self.ctx.emit(
            XauthResult(self.sa.unique_id, self.conn.name, verdict.user, verdict.ok, verdict.reason, True)
        )
        self.ctx.tracer.emit(
            "ike", "xauth", sa=self.sa.unique_id, user=verdict.user, ok=verdict.ok, reason=verdict.reason
        )

    def _xauth_acked(self, attr: AttributePayload, now: float) -> None:
        assert self.verdict is not None
        if not self.verdict.ok:
            self.fail(f"XAUTH failed for user {self.verdict.user!r}: {self.verdict.reason}")
            return
        self.xauth.state = "done"
        phase1.tell_lifetime(self.sa, self.ctx)

    def _push(self, now: float) -> None:
        addresses = self._lease(self.sa_identity(), [(4, None)])
        if addresses is None:
            return
        self.cfg.state = "asked"
        pool = self.leases.pool(self.leased[0][0]) if self.leased else None
        attrs = modecfg.gateway_attributes(None, addresses, pool)
        self._send("ModeCfg", SET, attrs, self._cfg_acked, now)

    def _cfg_acked(self, attr: AttributePayload, now: float) -> None:
        self.cfg.state = "done"

    def _cfg_reply(self, attr: AttributePayload, now: float) -> None:
        self._take(attr.attributes)

    def _take(self, attrs: tuple[Attribute, ...]) -> None:
        """Client: the addresses and attributes the gateway gave us."""
        result = modecfg.client_result(attrs)
        wanted = {vip.version for vip in self.conn.vips}
        got = [a for a in result.addresses if a.version in wanted]
        if not got:
            self.fail("the gateway assigned no virtual IP")
            return
        self.modecfg, self.vips = result, got
        self.cfg.state = "done"
        self.ctx.emit(
            VirtualIps(
                self.sa.unique_id,
                self.conn.name,
                tuple(map(str, got)),
                True,
                tuple(map(str, result.dns)),
                tuple(map(str, result.split_include)),
                result.banner,
            )
        )
        self.ctx.tracer.emit("ike", "mode_config", sa=self.sa.unique_id, **result.describe())

    # ---- what the peer starts -----------------------------------------------------------------

    def answer(self, attr: AttributePayload, now: float) -> AttributePayload | None:
        """Our REPLY/ACK to the peer's REQUEST/SET (None: refused)."""
        if is_xauth(attr):
            attrs = self._xauth_client(attr)
        else:
            attrs = self._cfg_server(attr) if attr.message_type == REQUEST else self._cfg_client(attr)
        if attrs is None:
            return None
        return AttributePayload(REPLY if attr.message_type == REQUEST else ACK, attr.identifier, attrs)

    def _xauth_client(self, attr: AttributePayload) -> tuple[Attribute, ...] | None:
        if self.conn.local_xauth is None:
            self.ctx.tracer.emit("ike", "xauth_unexpected", sa=self.sa.unique_id)
            return None  # we are not configured to be checked: no password is given away
        if attr.message_type == REQUEST:
            self.user = xauth.client_user(self.conn.local_xauth, self.sa.local_id)
            reply = xauth.client_reply(attr.attributes, self.user, self.ctx.config.secrets)
            if reply is None:
                self.fail(f"cannot answer the XAUTH request as {self.user!r}")
                return ()
            self.xauth.state = "asked"
            return reply
        ok = xauth.status_of(attr.attributes)
        user = self.user or ""
        self.ctx.emit(
            XauthResult(self.sa.unique_id, self.conn.name, user, bool(ok), "status from gateway", False)
        )
        self.ctx.tracer.emit(
            "ike", "xauth", sa=self.sa.unique_id, user=user, ok=bool(ok), reason="gateway status"
        )
        if ok:
            self.xauth.state = "done"
        else:
            self.fail(f"XAUTH as {user!r} refused by the gateway")
        return xauth.ack()

    def _cfg_server(self, attr: AttributePayload) -> tuple[Attribute, ...] | None:
        """Gateway, pull: a client's REQUEST, answered from the pool once XAUTH is done."""
        if not self.server_cfg:
            return ()  # no pools: an empty REPLY, as strongSwan ("no virtual IP found")
        if self.xauth.state != "done":  # either order, as peers do it: answered once XAUTH is over
            self.ctx.tracer.emit(
                "ike", "drop", sa=self.sa.unique_id, reason="Mode Config request before XAUTH: answered later"
            )
            raise Deferred
        wanted = {a.type for a in attr.attributes}
        requested = modecfg.requested_addresses(attr.attributes) or [(4, None)]
        addresses = self._lease(self.sa_identity(), requested)
        if addresses is None:
            return ()
        self.cfg.state = "done"
        pool = self.leases.pool(self.leased[0][0]) if self.leased else None
        return modecfg.gateway_attributes(wanted, addresses, pool, pfs=_pfs_required(self.conn))

    def _cfg_client(self, attr: AttributePayload) -> tuple[Attribute, ...] | None:
        """Client, push: the gateway's SET."""
        if not self.client_cfg:
            return None
        self._take(attr.attributes)
        return modecfg.ack_attributes(attr.attributes)

    # ---- leases -------------------------------------------------------------------------------

    def sa_identity(self) -> str:
        """Who the lease belongs to: the XAUTH user, else the peer's IKE identity."""
        return self.user or str(self.sa.remote_id or self.sa.remote[0])

    def _lease(self, identity: str, requested: list[tuple[int, IPAddress | None]]) -> list[IPAddress] | None:
        if self.leased:
            return [address for _, address in self.leased]
        for version, specific in requested:
            got = self.leases.acquire(self.conn.pools, identity, version, specific)
            if got is not None:
                self.leased.append(got)
        if not self.leased:
            self.fail(f"no address left in pools {', '.join(self.conn.pools)} for {identity!r}")
            return None
        self.vips = [address for _, address in self.leased]
        self.ctx.emit(VirtualIps(self.sa.unique_id, self.conn.name, tuple(map(str, self.vips)), False))
        self.ctx.tracer.emit(
            "ike", "lease", sa=self.sa.unique_id, identity=identity, vips=[str(v) for v in self.vips]
        )
        return self.vips

    def release(self) -> None:
        for pool, address in self.leased:
            self.leases.release(pool, address)
        self.leased = []

    def vip_for(self, version: int) -> IPAddress | None:
        return next((v for v in self.vips if v.version == version), None)


def dynamic_address(sa: IkeSa, local: bool, version: int | None = None) -> str:
    """The address a ``dynamic`` traffic selector stands for: a virtual IP when Mode Config gave
    one (ours as a client, the peer's as a gateway; of IP ``version`` when the selector opposite
    says which), else the IKE address."""
    ra = sa.remote_access
    outer = sa.local[0] if local else sa.remote[0]
    if ra is not None and ra.vips and (ra.client_cfg == local):
        vip = ra.vip_for(version or ipaddress.ip_address(outer).version) or ra.vips[0]
        return str(vip)
    return outer


def family_of(selectors: tuple[TrafficSelector, ...]) -> int | None:
    """The IP version of the first concrete selector (None: all dynamic)."""
    return next((ts.version for ts in selectors if not ts.dynamic), None)


def _pfs_required(conn: ConnectionConfig) -> bool:
    """Does every Quick Mode proposal of the connection's children carry a PFS group (a client
    that offers none is refused)?"""
    proposals = [p for child in conn.children for p in child.proposals]
    return bool(proposals) and all(p.pfs_group is not None for p in proposals)
