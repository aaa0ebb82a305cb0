"""TOML file -> Config: a full valid file, defaults, and bad files naming the key and what was expected."""

from __future__ import annotations

from ipaddress import IPv4Address, ip_network
from pathlib import Path

import pytest

from snakeswan.config.identity import Identity
from snakeswan.config.loader import load_config, parse_config
from snakeswan.config.model import (
    DEFAULT_ESP_PROPOSALS,
    DEFAULT_IKE_PROPOSALS,
    AuthConfig,
    ChildConfig,
    ChildProposal,
    Config,
    DaemonConfig,
    IkeProposal,
    Pool,
)
from snakeswan.config.traffic import TrafficSelector
from snakeswan.errors import ConfigError
from snakeswan.wire.enums import AhTransformId, AuthAlgorithm, DhGroup, EspTransformId, IkeEncryption, IkeHash

TS = TrafficSelector

FULL = """
[daemon]                      # all optional
port = 500
nat_port = 4500

[connections.gw]
local_addrs = ["10.231.0.1"]
remote_addrs = ["10.231.0.2"]
aggressive = false
proposals = ["aes128-sha256-modp2048"]
rekey_time = "4h"
dpd_delay = "30s"
local = { auth = "psk", id = "10.231.0.1" }
remote = { auth = "psk", id = "10.231.0.2" }

[connections.gw.children.net]
local_ts = ["10.231.1.0/24"]
remote_ts = ["10.231.2.0/24"]
esp_proposals = ["aes128gcm16-modp2048"]
mode = "tunnel"
life_time = "1h"
start_action = "none"

[connections.road]
remote_addrs = ["%any"]
aggressive = true
proposals = ["aes256-sha1-modp1024", "3des-md5-modp1024"]
rekey_time = 28800
dpd_delay = "10s"
dpd_timeout = "60s"
pools = ["vpn"]
local = { auth = "psk", id = "@gw.example.com" }
remote = { auth = "psk", id = "@road.example.com" }
remote-xauth = { auth = "xauth" }

[connections.road.children.l2tp]
mode = "transport"
local_ts = ["dynamic[udp/1701]"]
remote_ts = ["dynamic[udp]"]
ah_proposals = ["sha256-modp2048"]
rekey_time = "30m"
rekey_bytes = "500M"
dpd_action = "trap"
replay_window = 128

[secrets.psk-gw]
id = ["10.231.0.1", "10.231.0.2"]
secret = "gw-secret"

[secrets.ike-road]
id = "@road.example.com"
id-2 = "@gw.example.com"
secret = "0x726f6164"

[secrets.xauth-alice]
id = "alice"
secret = "0sYWxpY2U="

[pools.vpn]
addrs = "10.3.0.0/24"
dns = ["10.3.0.1", "10.3.0.2"]
split_include = ["10.231.1.0/24"]
"""


def test_full_file_gives_the_expected_model(tmp_path: Path) -> None:
    path = tmp_path / "snakeswan.toml"
    path.write_text(FULL)
    config = load_config(path)
    assert config.daemon == DaemonConfig(port=500, nat_port=4500)
    gw = config.connection("gw")
    assert gw.local_addrs == ("10.231.0.1",) and gw.remote_addrs == ("10.231.0.2",)
    assert (gw.local_port, gw.remote_port, gw.aggressive) == (500, 500, False)
    assert gw.proposals == (IkeProposal(IkeEncryption.AES_CBC, 128, IkeHash.SHA2_256, DhGroup.MODP_2048),)
    assert (gw.rekey_time, gw.over_time, gw.rand_time, gw.ike_lifetime) == (14400, 1440, 1440, 15840)
    assert (gw.dpd_delay, gw.dpd_timeout) == (30, 0)
    assert gw.local == AuthConfig(auth="psk", id=Identity.parse("10.231.0.1"))
    assert gw.remote == AuthConfig(auth="psk", id=Identity.parse("10.231.0.2"))
    net = gw.child("net")
    assert net.local_ts == (TS.from_network(ip_network("10.231.1.0/24")),)
    assert net.remote_ts == (TS.from_network(ip_network("10.231.2.0/24")),)
    assert net.esp_proposals == (ChildProposal(3, EspTransformId.AES_GCM_16, 128, None, DhGroup.MODP_2048),)
    assert net.ah_proposals == () and net.pfs_group == DhGroup.MODP_2048
    assert (net.mode, net.start_action, net.close_action, net.dpd_action) == (
        "tunnel",
        "none",
        "none",
        "clear",
    )
    assert net.life_time == 3600 and net.rekey_time == pytest.approx(3600 / 1.1)
    assert net.rand_time == pytest.approx(3600 - 3600 / 1.1)

    road = config.connection("road")
    assert road.aggressive and road.remote_addrs == ("%any",) and road.local_addrs == ("%any",)
    assert [p.group for p in road.proposals] == [DhGroup.MODP_1024, DhGroup.MODP_1024]
    assert road.proposals[1] == IkeProposal(
        IkeEncryption.TRIPLE_DES_CBC, None, IkeHash.MD5, DhGroup.MODP_1024
    )
    assert (road.rekey_time, road.over_time, road.dpd_timeout) == (28800, 2880, 60)
    assert road.remote_xauth == AuthConfig(auth="xauth") and road.local_xauth is None
    assert road.pools == ("vpn",)
    l2tp = road.child("l2tp")
    assert l2tp.mode == "transport" and l2tp.esp_proposals == ()
    assert l2tp.ah_proposals == (
        ChildProposal(2, AhTransformId.SHA2_256, None, AuthAlgorithm.HMAC_SHA2_256, DhGroup.MODP_2048),
    )
    assert l2tp.local_ts == (TS.make_dynamic(17, 1701, 1701),) and l2tp.remote_ts == (TS.make_dynamic(17),)
    assert l2tp.rekey_time == 1800
    assert (l2tp.life_time, l2tp.rand_time) == pytest.approx((1980, 180))
    assert (l2tp.rekey_bytes, l2tp.life_bytes) == (500 * 2**20, 550 * 2**20)
    assert l2tp.rand_bytes == 50 * 2**20 and l2tp.life_packets is None
    assert (l2tp.dpd_action, l2tp.replay_window) == ("trap", 128)

    assert config.secrets.psk_for(Identity.parse("10.231.0.1"), Identity.parse("10.231.0.2")) == b"gw-secret"
    assert (
        config.secrets.psk_for(Identity.parse("@gw.example.com"), Identity.parse("@road.example.com"))
        == b"road"
    )
    assert config.secrets.xauth_for("alice") == b"alice"
    assert config.pool("vpn") == Pool(
        "vpn",
        IPv4Address("10.3.0.1"),  # the subnet's own and broadcast addresses are never leased
        IPv4Address("10.3.0.254"),
        dns=(IPv4Address("10.3.0.1"), IPv4Address("10.3.0.2")),
        split_include=(ip_network("10.231.1.0/24"),),
    )


def test_defaults_follow_swanctl() -> None:
    config = parse_config('[connections.c]\nremote_addrs = ["192.0.2.1"]\n[connections.c.children.x]\n')
    conn = config.connection("c")
    assert conn.local_addrs == ("%any",) and conn.proposals == DEFAULT_IKE_PROPOSALS
    assert conn.local == AuthConfig() and conn.local.auth == "pubkey"
    assert (conn.rekey_time, conn.over_time, conn.rand_time, conn.reauth_time) == (14400, 1440, 1440, 0)
    assert (conn.keyingtries, conn.unique, conn.fragmentation, conn.send_cert) == (1, "no", "yes", "ifasked")
    assert conn.send_certreq and not conn.encap and not conn.aggressive
    assert conn.ike_lifetime_check == "lenient"
    strict = parse_config(
        '[connections.c]\nremote_addrs = ["%any"]\nike_lifetime_check = "strict"\n'
    ).connection("c")
    assert strict.ike_lifetime_check == "strict"
    child = conn.child("x")
    assert (child.life_time, child.rand_time) == pytest.approx((3960, 360))
    assert child == ChildConfig(name="x", life_time=child.life_time, rand_time=child.rand_time)
    assert child.esp_proposals == DEFAULT_ESP_PROPOSALS
    assert child.local_ts == (TS.make_dynamic(),) and child.replay_window == 32
    assert config.daemon == DaemonConfig() and config.pools == () and Config().connections == ()


def test_reauth_time_zeroes_rekey_time_and_sets_over_time() -> None:
    conn = parse_config(
        '[connections.c]\nremote_addrs = ["gw.example.com"]\nreauth_time = "2h"\n'
    ).connection("c")
    assert (conn.rekey_time, conn.reauth_time, conn.over_time, conn.ike_lifetime) == (0, 7200, 720, 7920)


def test_comma_separated_strings_like_swanctl() -> None:
    text = """
[connections.c]
remote_addrs = "192.0.2.1, 192.0.2.2"
proposals = "aes128-sha256-modp2048,aes256-sha256-modp2048"
[connections.c.children.x]
esp_proposals = "aes128gcm16, aes256-sha256"
"""
    conn = parse_config(text).connection("c")
    assert conn.remote_addrs == ("192.0.2.1", "192.0.2.2") and len(conn.proposals) == 2
    assert [p.transform_id for p in conn.child("x").esp_proposals] == [
        EspTransformId.AES_GCM_16,
        EspTransformId.AES_CBC,
    ]


def test_daemon_port_is_the_default_local_port() -> None:
    config = parse_config(
        '[daemon]\nport = 5000\nnat_port = 5001\n[connections.c]\nremote_addrs = ["%any"]\n'
    )
    assert config.connection("c").local_port == 5000 and config.connection("c").remote_port == 500


BASE = """
[connections.gw]
remote_addrs = ["10.231.0.2"]
local = { auth = "psk" }
remote = { auth = "psk" }
[connections.gw.children.net]
local_ts = ["10.231.1.0/24"]
remote_ts = ["10.231.2.0/24"]
[secrets.ike-1]
secret = "s"
"""


def _error(text: str, source: str = "snakeswan.toml") -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source)
    return str(info.value)


def test_error_format_names_file_key_and_expectation() -> None:
    message = _error(
        BASE.replace('local_ts = ["10.231.1.0/24"]', 'local_ts = ["10.231.1.0/24"]\nmode = "tunel"')
    )
    assert (
        message
        == 'snakeswan.toml: connections.gw.children.net.mode: expected "tunnel", "transport", "pass" or "drop", got "tunel"'
    )


@pytest.mark.parametrize(
    ("old", "new", "key", "expected"),
    [
        # 1. unknown key in a child
        (
            'local_ts = ["10.231.1.0/24"]',
            'local_ts = ["10.231.1.0/24"]\nlifetime = "1h"',
            "connections.gw.children.net.lifetime",
            'unknown key (did you mean "life_time"?); expected one of:',
        ),
        # 2. unknown key in a connection
        (
            'remote_addrs = ["10.231.0.2"]',
            'remote_addrs = ["10.231.0.2"]\nikelifetime = "1h"',
            "connections.gw.ikelifetime",
            "unknown key",
        ),
        # 3. unknown top-level section
        # ([authorities.<name>] is known since OCSP responders can be configured per CA)
        ("[secrets.ike-1]", "[plugins.x]\nload = 'x'\n[secrets.ike-1]", "plugins", "unknown key"),
        # 4. bad ESP proposal, element named
        (
            'local_ts = ["10.231.1.0/24"]',
            'local_ts = ["10.231.1.0/24"]\nesp_proposals = ["aes128-sha256", "aes128gcm17"]',
            "connections.gw.children.net.esp_proposals[1]",
            "unknown algorithm 'aes128gcm17'",
        ),
        # 5. bad IKE proposal
        (
            'remote_addrs = ["10.231.0.2"]',
            'remote_addrs = ["10.231.0.2"]\nproposals = ["aes128-sha256"]',
            "connections.gw.proposals[0]",
            "lacks a DH group",
        ),
        # 6. bad traffic selector
        (
            'local_ts = ["10.231.1.0/24"]',
            'local_ts = ["10.231.1.0/33"]',
            "connections.gw.children.net.local_ts[0]",
            "expected a subnet",
        ),
        # 7. bad remote address
        (
            'remote_addrs = ["10.231.0.2"]',
            'remote_addrs = ["10.231.0.2", "10.1.1.1/40"]',
            "connections.gw.remote_addrs[1]",
            "expected a subnet",
        ),
        # 8. missing remote_addrs
        ('remote_addrs = ["10.231.0.2"]', "", "connections.gw.remote_addrs", 'required; use ["%any"]'),
        # 9. a responder-only connection cannot start
        (
            'remote_addrs = ["10.231.0.2"]',
            'remote_addrs = ["%any", "10.9.0.0/16"]',
            "connections.gw.children.net.start_action",
            "needs a specific remote address",
        ),
        # 10. wrong type
        (
            'remote_addrs = ["10.231.0.2"]',
            'remote_addrs = ["10.231.0.2"]\naggressive = 1',
            "connections.gw.aggressive",
            "expected true or false, got integer 1",
        ),
        # 11. bad duration
        (
            'local_ts = ["10.231.1.0/24"]',
            'local_ts = ["10.231.1.0/24"]\nrekey_time = "1w"',
            "connections.gw.children.net.rekey_time",
            "expected a duration like 30s",
        ),
        # 12. bad byte volume
        (
            'local_ts = ["10.231.1.0/24"]',
            'local_ts = ["10.231.1.0/24"]\nlife_bytes = "5T"',
            "connections.gw.children.net.life_bytes",
            "expected a volume",
        ),
        # 13. life_time below rekey_time
        (
            'local_ts = ["10.231.1.0/24"]',
            'local_ts = ["10.231.1.0/24"]\nrekey_time = "1h"\nlife_time = "30m"',
            "connections.gw.children.net.life_time",
            "must be at least rekey_time",
        ),
        # 14. bad identity
        (
            'local = { auth = "psk" }',
            'local = { auth = "psk", id = "C=CH, XX=1" }',
            "connections.gw.local.id",
            "unknown attribute 'XX'",
        ),
        # 15. bad auth method
        (
            'local = { auth = "psk" }',
            'local = { auth = "eap-mschapv2" }',
            "connections.gw.local.auth",
            "IKEv2 only",
        ),
        # 16. port out of range
        (
            'remote_addrs = ["10.231.0.2"]',
            'remote_addrs = ["10.231.0.2"]\nremote_port = 70000',
            "connections.gw.remote_port",
            "expected an integer 1..65535, got integer 70000",
        ),
        # 17. IKEv1 carries one port, not a range
        (
            'local_ts = ["10.231.1.0/24"]',
            'local_ts = ["10.231.1.0/24[tcp/80-90]"]',
            "connections.gw.children.net.local_ts[0]",
            "single port or all ports",
        ),
        # 18. several selectors per side (one Quick Mode per pair): each one port or all
        (
            'local_ts = ["10.231.1.0/24"]',
            'local_ts = ["10.231.1.0/24", "10.231.3.0/24[tcp/80-90]"]',
            "connections.gw.children.net.local_ts[1]",
            "single port or all ports",
        ),
        # 19. ESP and AH together
        (
            'local_ts = ["10.231.1.0/24"]',
            # both lists make an AH+ESP bundle (one Quick Mode, one KE): their PFS groups must agree
            'local_ts = ["10.231.1.0/24"]\nesp_proposals = ["aes128gcm16-modp2048"]\nah_proposals = ["sha1"]',
            "connections.gw.children.net.ah_proposals",
            "same PFS groups in both lists",
        ),
        # 20. unknown pool
        (
            'remote_addrs = ["10.231.0.2"]',
            'remote_addrs = ["10.231.0.2"]\npools = ["nope"]',
            "connections.gw.pools[0]",
            'no pool named "nope"',
        ),
        # 21. IKEv2
        (
            'remote_addrs = ["10.231.0.2"]',
            'remote_addrs = ["10.231.0.2"]\nversion = 2',
            "connections.gw.version",
            "IKEv1 only",
        ),
        # 22. secret section with an unknown prefix
        ("[secrets.ike-1]", "[secrets.cert-1]", "secrets.cert-1", "starting with ike or psk"),
        # 23. secret without a value
        ('secret = "s"', 'id = "10.0.0.1"', "secrets.ike-1.secret", "required"),
        # 24. bad secret encoding
        ('secret = "s"', 'secret = "0xnothex"', "secrets.ike-1.secret", "expected hex digits"),
        # 25. mixed address families
        (
            'remote_ts = ["10.231.2.0/24"]',
            'remote_ts = ["2001:db8::/64"]',
            "connections.gw.children.net.remote_ts",
            "same address family",
        ),
        # 26. table expected
        ('local = { auth = "psk" }', 'local = "psk"', "connections.gw.local", 'expected a table, got "psk"'),
        # 27. daemon ports collide
        ("[connections.gw]", "[daemon]\nnat_port = 500\n[connections.gw]", "daemon.nat_port", "must differ"),
        # 28. bad dpd_action
        (
            'local_ts = ["10.231.1.0/24"]',
            'local_ts = ["10.231.1.0/24"]\ndpd_action = "hold"',
            "connections.gw.children.net.dpd_action",
            'expected "clear", "trap" or "restart", got "hold"',
        ),
        # 30. ike_lifetime_check takes lenient or strict only (fail closed)
        (
            'remote_addrs = ["10.231.0.2"]',
            'remote_addrs = ["10.231.0.2"]\nike_lifetime_check = "loose"',
            "connections.gw.ike_lifetime_check",
            'expected "lenient" or "strict", got "loose"',
        ),
        (
            'remote_addrs = ["10.231.0.2"]',
            'remote_addrs = ["10.231.0.2"]\nike_lifetime_check = true',
            "connections.gw.ike_lifetime_check",
            'expected "lenient" or "strict"',
        ),
        # 29. a third auth round
        (
            'remote = { auth = "psk" }',
            'remote = { auth = "psk" }\nremote-2 = { auth = "xauth" }\nremote-3 = { auth = "xauth" }',
            "connections.gw.remote-3",
            "at most two authentication rounds",
        ),
    ],
)
def test_bad_config(old: str, new: str, key: str, expected: str) -> None:
    assert old in BASE
    text = BASE.replace(old, new, 1)
    if key.endswith("start_action"):
        text = text.replace(
            'remote_ts = ["10.231.2.0/24"]', 'remote_ts = ["10.231.2.0/24"]\nstart_action = "start"'
        )
    message = _error(text)
    assert message.startswith(f"snakeswan.toml: {key}: "), message
    assert expected in message, message


def test_base_config_is_valid() -> None:
    """The bad-config cases above differ from this valid file by the one line they change."""
    conn = parse_config(BASE).connection("gw")
    assert conn.child("net").local_ts == (TS.from_text("10.231.1.0/24"),)


def test_missing_psk_is_reported() -> None:
    text = BASE.replace("[secrets.ike-1]", "[secrets.ike-1]\nid = ['10.9.9.9', '10.9.9.8']")
    message = _error(
        text.replace(
            'remote_addrs = ["10.231.0.2"]', 'remote_addrs = ["10.231.0.2"]\nlocal_addrs = ["10.231.0.1"]'
        )
    )
    assert message.startswith(
        "snakeswan.toml: connections.gw.local.auth: no pre-shared key for 10.231.0.1 and 10.231.0.2"
    )
    assert "[secrets.ike-<name>]" in message


def test_psk_found_by_address_ids() -> None:
    text = BASE.replace("[secrets.ike-1]", "[secrets.ike-1]\nid = '10.231.0.2'")
    assert parse_config(text).connection("gw").local.id is None  # default: our address, resolved at run time


def test_missing_xauth_password_is_reported() -> None:
    text = BASE.replace(
        'local = { auth = "psk" }',
        'local = { auth = "psk" }\nlocal-xauth = { auth = "xauth", xauth_id = "bob" }',
    )
    assert _error(text).startswith(
        "snakeswan.toml: connections.gw.local-xauth.xauth_id: no XAUTH password for bob"
    )
    assert parse_config(text + '[secrets.xauth-bob]\nid = "bob"\nsecret = "pw"\n').connection(
        "gw"
    ).local_xauth == AuthConfig(auth="xauth", xauth_id="bob")


def test_second_round_must_be_xauth() -> None:
    text = BASE.replace('local = { auth = "psk" }', 'local = { auth = "psk" }\nlocal2 = { auth = "pubkey" }')
    assert _error(text).startswith(
        'snakeswan.toml: connections.gw.local2.auth: a second authentication round must be "xauth"'
    )


def test_invalid_toml_and_duplicates() -> None:
    assert _error("[connections.gw\n").startswith("snakeswan.toml: invalid TOML")
    assert "invalid TOML" in _error(
        "[connections.a]\nremote_addrs=['%any']\n[connections.a]\nremote_addrs=['%any']\n"
    )


def test_load_config_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read the file"):
        load_config(missing)
    bad = tmp_path / "bad.toml"
    bad.write_text('[connections.c]\nremote_addrs = ["%any"]\nmobike = "maybe"\n')
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert str(info.value) == f'{bad}: connections.c.mobike: expected true or false, got "maybe"'
    assert info.value.where == f"{bad}: connections.c.mobike"
