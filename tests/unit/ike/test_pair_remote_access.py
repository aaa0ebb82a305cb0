"""XAUTH and Mode Config between a gateway engine and client engines (both roles, pull and push,
Main and Aggressive Mode), and every way they fail closed."""

from __future__ import annotations

import time

import pytest

from snakeswan.ike import modecfg
from snakeswan.ike.events import (
    ChildSaEstablished,
    IkeSaDeleted,
    IkeSaEstablished,
    NegotiationFailed,
    VirtualIps,
    XauthCheck,
    XauthResult,
)
from snakeswan.wire.attributes import Attribute
from snakeswan.wire.enums import AuthMethod, ExchangeType
from snakeswan.wire.message import decode_header
from tests.pki import TestPki
from tests.ra import GW_NET, Hub, client_addr, client_config, gateway_config


def hub(gw: str | None = None, *clients: str) -> Hub:
    h = Hub(gw or gateway_config(), list(clients) or [client_config(client_addr(0))])
    for eng in h.clients:
        eng.initiate("home", now=h.now)
    return h


def children(h: Hub, eng: object) -> list:  # type: ignore[type-arg]
    return [e.child for e in h.of(eng, ChildSaEstablished)]  # type: ignore[arg-type]


@pytest.mark.parametrize("aggressive", [False, True], ids=["main", "aggressive"])
@pytest.mark.parametrize("pull", [True, False], ids=["pull", "push"])
def test_xauth_and_mode_config_bring_up_a_tunnel_from_the_virtual_ip(aggressive: bool, pull: bool) -> None:
    h = hub(
        gateway_config(pull=pull, aggressive=aggressive),
        client_config(client_addr(0), pull=pull, aggressive=aggressive),
    )
    h.run(30)
    client = h.clients[0]
    [gw_child], [c_child] = children(h, h.gateway), children(h, client)
    assert c_child.local_ts == "10.231.100.1/32" and c_child.remote_ts == GW_NET
    assert gw_child.remote_ts == "10.231.100.1/32" and gw_child.local_ts == GW_NET
    assert (c_child.spi_in, c_child.spi_out) == (gw_child.spi_out, gw_child.spi_in)
    assert c_child.keys_in == gw_child.keys_out and c_child.keys_out == gw_child.keys_in
    [gx], [cx] = h.of(h.gateway, XauthResult), h.of(client, XauthResult)
    assert (gx.user, gx.ok, gx.server) == ("alice", True, True)
    assert (cx.user, cx.ok, cx.server) == ("alice", True, False)
    [vip] = h.of(client, VirtualIps)
    assert vip.local and vip.addresses == ("10.231.100.1",)
    assert vip.dns == ("10.231.3.53",) and vip.split_include == (GW_NET,) and vip.banner == "welcome"
    assert h.of(h.gateway, VirtualIps)[0].addresses == ("10.231.100.1",)
    # the order on the wire: phase 1, then Transactions (XAUTH then Mode Config), then Quick Mode
    kinds = [decode_header(d.data).exchange for d in h.wire if not d.keepalive]
    first_qm = kinds.index(ExchangeType.QUICK_MODE)
    assert kinds.count(ExchangeType.TRANSACTION) == 6
    assert all(k != ExchangeType.TRANSACTION for k in kinds[first_qm:])
    sa = h.gateway.ike_sas[0]
    assert sa.remote_access is not None and sa.remote_access.user == "alice"


def test_wrong_password_means_delete_no_child_and_the_user_named() -> None:
    h = hub(None, client_config(client_addr(0), password="wrong-password"))
    h.run(60)
    assert not children(h, h.gateway) and not children(h, h.clients[0])
    [gx] = h.of(h.gateway, XauthResult)
    assert (gx.user, gx.ok, gx.reason) == ("alice", False, "wrong password")
    fails = [f.reason for f in h.of(h.gateway, NegotiationFailed)]
    assert fails == ["XAUTH failed for user 'alice': wrong password"]
    assert h.of(h.gateway, IkeSaDeleted) and h.of(h.clients[0], IkeSaDeleted)
    assert not h.gateway.ike_sas and not h.clients[0].ike_sas
    assert [c.reason for c in h.of(h.clients[0], NegotiationFailed)] == [
        "XAUTH as 'alice' refused by the gateway"
    ]
    # no Quick Mode was ever sent by anybody
    assert all(decode_header(d.data).exchange != ExchangeType.QUICK_MODE for d in h.wire if not d.keepalive)
    # the lease was never made: the pool has nobody in it
    assert h.gateway.leases.listing()[0]["leases"] == []


def test_unknown_user_and_user_other_than_xauth_id_are_refused() -> None:
    h = hub(gateway_config(users={"alice": "alice-password", "bob": "bob-pw"}, xauth_id="alice"),
            client_config(client_addr(0), user="bob", password="bob-pw"))  # fmt: skip
    h.run(60)
    assert not children(h, h.gateway)
    assert h.of(h.gateway, XauthResult)[0].reason == "user is not the configured 'alice'"
    h = hub(None, client_config(client_addr(0), user="mallory", password="x"))
    h.run(60)
    assert not children(h, h.gateway)
    assert h.of(h.gateway, XauthResult)[0].reason == "no XAUTH secret for this user"


def test_a_client_that_skips_xauth_gets_no_quick_mode_answered() -> None:
    """The client's phase 1 offers XAUTH, but it ignores the request and sends Quick Mode at once:
    the gateway drops every QM1, gives up on XAUTH and deletes the SA."""
    h = hub()
    client = h.clients[0]

    def skip(d: object) -> bool:
        return d.src[0] == client_addr(0) and decode_header(d.data).exchange == ExchangeType.TRANSACTION  # type: ignore[attr-defined]

    h.drop = skip
    h.run(1)
    [csa] = client.ike_sas
    assert csa.remote_access is not None
    csa.remote_access.xauth.state = "done"  # the client pretends XAUTH is behind it
    csa.remote_access.cfg.state = "done"
    csa.remote_access.vips = []
    client.initiate("home", now=h.now)
    h.run(600)
    assert not children(h, h.gateway)
    drops = [r.fields["reason"] for r in h.gateway.tracer.find("drop")]
    assert "Quick Mode before XAUTH/Mode Config completed" in drops
    assert not h.gateway.ike_sas
    reasons = [f.reason for f in h.of(h.gateway, NegotiationFailed)]
    assert any(r.startswith("XAUTH not answered") for r in reasons)


def test_a_plain_psk_client_cannot_avoid_xauth() -> None:
    """Offering plain PSK (no XAUTH) to a connection that requires XAUTH: no proposal matches."""
    h = hub(None, client_config(client_addr(0), xauth=False, vips=False))
    h.run(60)
    assert not h.of(h.gateway, IkeSaEstablished) and not children(h, h.gateway)


def test_pool_exhausted_the_second_client_is_refused() -> None:
    gw = gateway_config(pool="10.231.100.5-10.231.100.5", users={"alice": "a-pw", "bob": "b-pw"})
    h = hub(
        gw,
        client_config(client_addr(0), password="a-pw"),
        client_config(client_addr(1), user="bob", password="b-pw"),
    )
    h.run(60)
    got = children(h, h.gateway)
    assert [c.remote_ts for c in got] == ["10.231.100.5/32"]
    fails = [f.reason for f in h.of(h.gateway, NegotiationFailed)]
    assert any("no address left in pools rwpool" in r for r in fails)
    assert len(h.gateway.ike_sas) == 1


def test_leases_are_stable_per_user_and_released_on_delete() -> None:
    h = hub()
    h.run(30)
    client = h.clients[0]
    assert children(h, client)[0].local_ts == "10.231.100.1/32"
    client.delete_ike(client.ike_sas[0].unique_id, h.now)
    h.run(10)
    [pool] = h.gateway.leases.listing()
    assert pool["leases"] == [{"identity": "alice", "address": "10.231.100.1", "online": False}]
    client.initiate("home", now=h.now)
    h.run(30)
    assert children(h, client)[-1].local_ts == "10.231.100.1/32"
    assert h.gateway.leases.listing()[0]["online"] == 1


def test_xauth_timeout_when_the_client_never_answers() -> None:
    h = hub()
    h.drop = lambda d: (
        d.src[0] == client_addr(0) and decode_header(d.data).exchange == ExchangeType.TRANSACTION
    )
    h.run(600)
    assert not h.gateway.ike_sas and not children(h, h.gateway)
    assert any(f.reason.startswith("XAUTH not answered") for f in h.of(h.gateway, NegotiationFailed))
    # the client, still waiting for its XAUTH round, gave up in time as well
    assert not h.clients[0].ike_sas


def test_mode_config_only_without_xauth() -> None:
    h = hub(gateway_config(xauth=False), client_config(client_addr(0), xauth=False))
    h.run(30)
    assert children(h, h.clients[0])[0].local_ts == "10.231.100.1/32"
    assert not h.of(h.gateway, XauthResult)


def test_two_hundred_clients_get_distinct_virtual_ips_and_their_own_tunnels() -> None:
    n = 200
    users = {f"user{i}": f"pw{i}" for i in range(n)}
    clients = [client_config(client_addr(i), user=f"user{i}", password=f"pw{i}") for i in range(n)]
    h = hub(gateway_config(users=users), *clients)
    h.run(60)
    gw_children = children(h, h.gateway)
    assert len(gw_children) == n
    vips = {c.remote_ts for c in gw_children}
    assert len(vips) == n
    by_spi = {c.spi_in: c for c in gw_children}
    for i, eng in enumerate(h.clients):
        [c] = children(h, eng)
        peer = by_spi[c.spi_out]
        assert peer.remote_ts == c.local_ts and c.keys_out == peer.keys_in
        [x] = h.of(h.gateway, XauthResult)[i : i + 1] or [None]
        assert x is not None and x.ok
    assert h.gateway.leases.listing()[0]["online"] == n


# ---- certificates: RSA + XAUTH, and hybrid (the gateway signs, the client has only XAUTH) -------


def _cert_configs(pki: TestPki, hybrid: bool) -> tuple[str, str]:
    gw, client = pki.host("gw.sw-lab"), pki.host("alice.sw-lab", key_index=1)
    gw_remote = (
        'remote = { auth = "xauth" }'
        if hybrid
        else f'remote-rsa = {{ auth = "pubkey", round = 1, cacerts = ["{pki.ca_path}"] }}\n'
        'remote-xauth = { auth = "xauth", round = 2 }'
    )
    gateway = f"""
[connections.rw]
local_addrs = ["10.231.0.2"]
remote_addrs = ["%any"]
proposals = ["aes128-sha256-modp2048"]
pools = ["rwpool"]
local = {{ auth = "pubkey", certs = ["{gw.cert}"] }}
{gw_remote}
[connections.rw.children.net]
local_ts = ["{GW_NET}"]
esp_proposals = ["aes128gcm16"]
[pools.rwpool]
addrs = "10.231.100.0/24"
[secrets.private-gw]
file = "{gw.key}"
[secrets.xauth-alice]
id = "alice"
secret = "alice-password"
"""
    client_local = (
        'local = { auth = "xauth", xauth_id = "alice" }'
        if hybrid
        else f'local-rsa = {{ auth = "pubkey", round = 1, certs = ["{client.cert}"] }}\n'
        'local-xauth = { auth = "xauth", round = 2, xauth_id = "alice" }'
    )
    client_conf = f"""
[connections.home]
local_addrs = ["{client_addr(0)}"]
remote_addrs = ["10.231.0.2"]
proposals = ["aes128-sha256-modp2048"]
vips = ["0.0.0.0"]
{client_local}
remote = {{ auth = "pubkey", id = "{gw.dn}", cacerts = ["{pki.ca_path}"] }}
[connections.home.children.home]
remote_ts = ["{GW_NET}"]
esp_proposals = ["aes128gcm16"]
[secrets.private-me]
file = "{client.key}"
[secrets.xauth-me]
id = "alice"
secret = "alice-password"
"""
    return gateway, client_conf


@pytest.fixture(scope="module")
def rsa_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki(tmp_path_factory.mktemp("ra-pki"), "rsa")


@pytest.mark.parametrize("hybrid", [False, True], ids=["rsa-xauth", "hybrid"])
def test_certificates_with_xauth_and_hybrid(rsa_pki: TestPki, hybrid: bool) -> None:
    gateway, client_conf = _cert_configs(rsa_pki, hybrid)
    h = Hub(gateway, [client_conf])
    for eng in h.engines.values():
        eng.ctx.wall_offset = time.time() - h.now
    h.clients[0].initiate("home", now=h.now)
    h.run(30)
    client = h.clients[0]
    [c_child] = children(h, client)
    assert c_child.local_ts == "10.231.100.1/32"
    method = AuthMethod.HYBRID_INIT_RSA if hybrid else AuthMethod.XAUTH_INIT_RSA
    for eng in (h.gateway, client):
        sa = eng.ike_sas[0]
        assert sa.choice is not None and sa.choice.auth_method == method
    # the client checked the gateway's certificate; in hybrid mode nobody checked the client's
    assert list(client.tracer.find("peer_authenticated"))
    assert bool(list(h.gateway.tracer.find("peer_authenticated"))) is not hybrid
    assert h.of(h.gateway, XauthResult)[0].ok


@pytest.mark.parametrize("hybrid", [False, True], ids=["rsa-xauth", "hybrid"])
def test_certificates_with_a_wrong_password_fail_closed(rsa_pki: TestPki, hybrid: bool) -> None:
    gateway, client_conf = _cert_configs(rsa_pki, hybrid)
    h = Hub(gateway, [client_conf.replace('secret = "alice-password"', 'secret = "nope"')])
    for eng in h.engines.values():
        eng.ctx.wall_offset = time.time() - h.now
    h.clients[0].initiate("home", now=h.now)
    h.run(60)
    assert not children(h, h.gateway) and not h.gateway.ike_sas
    assert not children(h, h.clients[0]) and not h.clients[0].ike_sas
    [x] = h.of(h.gateway, XauthResult)
    assert (x.user, x.ok, x.reason) == ("alice", False, "wrong password")
    # no Quick Mode was ever sent by anybody
    assert all(decode_header(d.data).exchange != ExchangeType.QUICK_MODE for d in h.wire if not d.keepalive)


# ---- XAUTH checked by a backend outside the engine (RADIUS): XauthCheck, then xauth_verdict ----


@pytest.mark.parametrize("accept", [True, False], ids=["accept", "reject"])
def test_radius_backend_decides_through_the_driver(accept: bool) -> None:
    gw = gateway_config(users={}).replace('auth = "xauth", round = 2', 'auth = "xauth-radius", round = 2')
    gw += '\n[radius]\naddress = "127.0.0.1"\nsecret = "radius-secret"\n'
    h = hub(gw)
    h.run(5)
    [check] = h.of(h.gateway, XauthCheck)
    assert (check.user, check.password) == ("alice", b"alice-password")
    assert "alice-password" not in repr(check)
    assert not children(h, h.gateway)  # nothing until the backend answered
    h.gateway.xauth_verdict(
        check.ike_sa, accept, "RADIUS Access-Accept" if accept else "RADIUS Access-Reject", h.now
    )
    h.run(30)
    assert bool(children(h, h.gateway)) is accept
    assert h.of(h.gateway, XauthResult)[0].ok is accept
    if not accept:
        assert not h.gateway.ike_sas


def test_radius_backend_that_never_answers_times_out() -> None:
    gw = gateway_config(users={}).replace('auth = "xauth", round = 2', 'auth = "xauth-radius", round = 2')
    gw += '\n[radius]\naddress = "127.0.0.1"\nsecret = "radius-secret"\n'
    h = hub(gw)
    h.run(600)
    assert h.of(h.gateway, XauthCheck) and not h.gateway.ike_sas and not children(h, h.gateway)
    assert [f.reason for f in h.of(h.gateway, NegotiationFailed)] == ["XAUTH not completed in time"]


def test_remote_access_peers_announce_xauth_and_cisco_unity() -> None:
    h = hub()
    h.run(30)
    for eng in (h.gateway, h.clients[0]):
        vids = next(r.fields["vids"] for r in eng.tracer.find("vendor_ids"))
        assert "XAUTH" in vids and "Cisco Unity" in vids
        assert eng.ike_sas[0].unity


def test_attributes_the_other_side_does_not_know_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client asks for attributes the gateway has no value for (Cisco's firewall type, a private
    number); the gateway answers what it has. A gateway sends one the client does not know: the
    client takes the rest and records the unknown type."""
    asked = modecfg.client_request
    monkeypatch.setattr(
        modecfg,
        "client_request",
        lambda vips: (*asked(vips), Attribute.variable(28680, b""), Attribute.variable(0x7FF0, b"")),
    )
    answer = modecfg.gateway_attributes
    monkeypatch.setattr(
        modecfg,
        "gateway_attributes",
        lambda wanted, addrs, pool, **kw: (
            *answer(wanted, addrs, pool, **kw),
            Attribute.variable(0x7FF1, b"x"),
        ),
    )
    h = hub()
    h.run(30)
    assert children(h, h.clients[0])[0].local_ts == "10.231.100.1/32"
    ra = h.clients[0].ike_sas[0].remote_access
    assert ra is not None and ra.modecfg is not None and ra.modecfg.unknown == (0x7FF1,)
    replied = [
        r.fields["attributes"] for r in h.clients[0].tracer.find("attributes") if "REPLY" in r.fields["msg"]
    ]
    assert 28680 not in replied[-1] and 0x7FF0 not in replied[-1]


@pytest.mark.parametrize("pfs", [False, True], ids=["no-pfs", "pfs"])
def test_a_cisco_client_asking_for_unity_pfs_is_told_whether_quick_mode_needs_it(
    pfs: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vpnc (``pfs = server``) sends a KE in Quick Mode only when the gateway's UNITY_PFS says 1:
    the gateway answers 1 when every proposal of its children has a PFS group, else 0."""
    asked = modecfg.client_request
    monkeypatch.setattr(
        modecfg, "client_request", lambda vips: (*asked(vips), Attribute.variable(28679, b""))
    )
    answer = modecfg.gateway_attributes
    answers: list[tuple[Attribute, ...]] = []

    def spy(*args: object, **kw: object) -> tuple[Attribute, ...]:
        answers.append(answer(*args, **kw))  # type: ignore[arg-type]
        return answers[-1]

    monkeypatch.setattr(modecfg, "gateway_attributes", spy)
    esp = '"aes128gcm16-modp2048"' if pfs else '"aes128gcm16"'
    gw = gateway_config().replace('esp_proposals = ["aes128gcm16"]', f"esp_proposals = [{esp}]")
    client = client_config(client_addr(0)).replace(
        'esp_proposals = ["aes128gcm16"]', f"esp_proposals = [{esp}]"
    )
    h = hub(gw, client)
    h.run(30)
    assert children(h, h.clients[0])  # the Quick Mode went through
    [unity_pfs] = [a for a in answers[-1] if a.type == 28679]
    assert unity_pfs.as_int() == int(pfs)
    assert not any(a.type == 28679 for a in modecfg.gateway_attributes({1}, [], None, pfs=True))  # not asked


def test_ipv6_pool_and_dual_stack_virtual_ips() -> None:
    """vips = ["0.0.0.0", "::"] asks for one of each; the gateway leases from its IPv4 and IPv6
    pools; an IPv6 child then uses the IPv6 virtual IP over IPv4 IKE."""
    gw = gateway_config().replace('pools = ["rwpool"]', 'pools = ["rwpool", "v6pool"]')
    gw = gw.replace(f'local_ts = ["{GW_NET}"]', 'local_ts = ["fd00:3::/64"]')
    gw += '\n[pools.v6pool]\naddrs = "fd00:100::/120"\n'
    client = client_config(client_addr(0)).replace('vips = ["0.0.0.0"]', 'vips = ["0.0.0.0", "::"]')
    client = client.replace(f'remote_ts = ["{GW_NET}"]', 'remote_ts = ["fd00:3::/64"]')
    h = hub(gw, client)
    h.run(30)
    [vip] = h.of(h.clients[0], VirtualIps)
    assert vip.addresses == ("10.231.100.1", "fd00:100::1")
    [c_child] = children(h, h.clients[0])
    assert c_child.local_ts == "fd00:100::1/128" and c_child.remote_ts == "fd00:3::/64"
    assert children(h, h.gateway)[0].remote_ts == "fd00:100::1/128"
    assert {lease["address"] for p in h.gateway.leases.listing() for lease in p["leases"]} == {
        "10.231.100.1",
        "fd00:100::1",
    }


def test_mode_config_request_before_xauth_is_answered_once_xauth_is_over() -> None:
    """A client that asks for its address first (either order, as peers do it): the gateway drops
    the request without a Notify until XAUTH is over, then answers its retransmission."""
    h = hub()
    client = h.clients[0]
    held = True  # the gateway's first XAUTH request is lost on the way

    def hold(d: object) -> bool:
        return (
            held and d.src[0] == "10.231.0.2" and decode_header(d.data).exchange == ExchangeType.TRANSACTION
        )  # type: ignore[attr-defined]

    h.drop = hold
    h.run(1)
    held = False
    [csa] = client.ike_sas
    ra = csa.remote_access
    assert ra is not None and ra.xauth.state == "todo"
    ra.xauth.state = "done"  # let the client send its Mode Config request first...
    ra.proceed(h.now)
    ra.xauth.state = "todo"  # ...then go on as an XAUTH client
    h.run(60)
    assert children(h, client)[0].local_ts == "10.231.100.1/32"
    drops = [r.fields["reason"] for r in h.gateway.tracer.find("drop")]
    assert "Mode Config request before XAUTH: answered later" in drops
    assert not [r for r in h.gateway.tracer.find("informational_sent")]  # no Notify


def test_a_renewed_client_sa_adopts_the_children_only_once_its_xauth_is_over() -> None:
    """The client renews its ISAKMP SA (new Main Mode, then XAUTH and Mode Config again): until
    the new SA is ready, the IPsec SA stays under the old one; then it moves and the old is deleted."""
    client_text = client_config(client_addr(0)).replace(
        "pull = true\n", 'pull = true\nrekey_time = "100s"\nrand_time = "0s"\n', 1
    )
    h = hub(gateway_config(), client_text)
    client = h.clients[0]
    h.run(30)
    [first] = client.ike_sas
    [child] = first.children
    seen_not_ready = False
    for _ in range(2000):  # step the hub by hand, checking the invariant at every quiet point
        moved = h.step()
        for sa in client.ike_sas:
            if sa is not first and not sa.ready:
                seen_not_ready = True
                assert not sa.children, "a renewal adopted the IPsec SA before its XAUTH was over"
        if moved:
            continue
        if all(sa is not first for sa in client.ike_sas) and len(client.ike_sas) == 1:
            break  # renewed, and the old SA is gone
        timers = [t for e in h.engines.values() if (t := e.get_timer()) is not None]
        assert timers and min(timers) < h.now + 200, "the renewal never happened"
        h.now = max(h.now, min(timers))
        for e in h.engines.values():
            if (t := e.get_timer()) is not None and t <= h.now:
                e.handle_timer(h.now)
    assert seen_not_ready  # the renewal did pass through an established-but-not-ready state
    [renewed] = client.ike_sas
    assert renewed is not first and renewed.ready and renewed.remote_access is not None
    assert [c.spi_in for c in renewed.children] == [child.spi_in]
    assert len(h.of(client, XauthResult)) == 2 and len(h.of(h.gateway, XauthResult)) == 2
    [gw_sa] = h.gateway.ike_sas
    assert [c.spi_out for c in gw_sa.children] == [child.spi_in]  # the gateway moved it too


def test_a_renewal_adopts_only_its_own_clients_children_under_a_shared_group_identity() -> None:
    """alice and bob authenticate phase 1 with one group identity (as Cisco clients do): bob's
    INITIAL-CONTACT does not end alice's SA (the XAUTH user is part of the identity); alice
    renews her ISAKMP SA and deletes the old one: on the gateway her IPsec SA moves to her new SA,
    not to bob's (same connection and identity, but another address and XAUTH user)."""
    group = 'id = "group.rw.example"'
    alice = client_config(client_addr(0)).replace('id = "alice.rw.example"', group)
    alice = alice.replace("pull = true\n", 'pull = true\nrekey_time = "100s"\nrand_time = "0s"\n', 1)
    bob = client_config(client_addr(1), user="bob", password="bob-password").replace(
        'id = "bob.rw.example"', group
    )
    h = hub(gateway_config(users={"alice": "alice-password", "bob": "bob-password"}), alice, bob)
    h.run(30)
    by_user = {sa.remote_access.user: sa for sa in h.gateway.ike_sas if sa.remote_access is not None}
    assert set(by_user) == {"alice", "bob"}, "bob's INITIAL-CONTACT ended alice's SA (one group identity)"
    alice_child, bob_child = by_user["alice"].children[0].spi_in, by_user["bob"].children[0].spi_in
    first_alice = by_user["alice"]
    h.run(150)  # alice renews at 100 s
    assert len(h.of(h.clients[0], XauthResult)) == 2  # she did
    by_user = {sa.remote_access.user: sa for sa in h.gateway.ike_sas if sa.remote_access is not None}
    assert len(h.gateway.ike_sas) == 2 and by_user["alice"] is not first_alice
    assert [c.spi_in for c in by_user["alice"].children] == [alice_child]
    assert [c.spi_in for c in by_user["bob"].children] == [bob_child]
