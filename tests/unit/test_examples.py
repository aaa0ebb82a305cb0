"""The example configurations in docs/examples load (`snakeswan check` says OK; the certificate
example with a CA, certificate and key made here, at the paths it names) and say what they are for;
the systemd unit starts the daemon with options the CLI has and reloads with SIGHUP."""

from __future__ import annotations

import configparser
import shlex
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from snakeswan.cli.main import build_parser, main
from snakeswan.config.loader import load_config
from tests.pki import build_cert, make_key, name

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
EXPECTED = {
    "site-to-site-psk.toml": ("site", "lan"),
    "site-to-site-certs.toml": ("site", "lan"),
    "transport-mode.toml": ("db", "postgres"),
    "roadwarrior-gateway.toml": ("rw", "office"),
    "roadwarrior-client.toml": ("office", "office"),
}


def test_every_example_is_listed() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.toml")) == sorted(EXPECTED)


def _pki(directory: Path) -> None:
    """certs/ca.crt, certs/west.crt (C=CH, O=example, CN=west) and private/west.key."""
    (directory / "certs").mkdir()
    (directory / "private").mkdir()
    ca_key, key = make_key("ecdsa", 200), make_key("ecdsa", 201)
    ca = build_cert(name("example CA", "example"), ca_key, name("example CA", "example"), ca_key, ca=True)
    west = build_cert(name("west", "example"), key, ca.subject, ca_key, san=["192.0.2.1"])
    pem = serialization.Encoding.PEM
    (directory / "certs" / "ca.crt").write_bytes(ca.public_bytes(pem))
    (directory / "certs" / "west.crt").write_bytes(west.public_bytes(pem))
    (directory / "private" / "west.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_example_loads(example: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / example
    shutil.copy(EXAMPLES / example, path)
    if "certs" in example:
        _pki(tmp_path)
    assert main(["check", "-c", str(path)]) == 0, capsys.readouterr().err
    conn_name, child_name = EXPECTED[example]
    config = load_config(path)
    assert config.connection(conn_name).child(child_name).name == child_name
    assert path.read_text().startswith("# ")  # each one says what it is for


def test_certificate_example_fails_closed_without_its_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "site-to-site-certs.toml"
    shutil.copy(EXAMPLES / path.name, path)
    assert main(["check", "-c", str(path)]) == 2
    assert "private/west.key" in capsys.readouterr().err


def test_systemd_unit() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "contrib" / "systemd" / "snakeswan.service")
    service = unit["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[:2] == ["/usr/bin/env", "snakeswan"]
    args = build_parser().parse_args(argv[2:])  # options the CLI really has
    assert args.verb == "daemon" and args.log_format == "journal"
    assert args.control.startswith(f"/run/{service['RuntimeDirectory']}/")
    check = build_parser().parse_args(shlex.split(service["ExecStartPre"])[2:])
    assert check.verb == "check" and check.config == args.config
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"  # the daemon reloads on SIGHUP
    assert "CAP_NET_ADMIN" in service["CapabilityBoundingSet"] and "/dev/net/tun" in service["DeviceAllow"]
