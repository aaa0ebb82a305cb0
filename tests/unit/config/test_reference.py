"""The configuration reference covers exactly the keys the loader accepts, and the rendered
docs/configuration.md is current."""

from __future__ import annotations

from pathlib import Path

from snakeswan.config import _connections, _credentials, cluster, loader
from snakeswan.config.reference import REFERENCE, render

ROOT = Path(__file__).resolve().parents[3]


def test_every_accepted_key_is_documented_and_no_other() -> None:
    tables = {
        "(top level)": loader.TOP_KEYS,
        "[daemon]": loader.DAEMON_KEYS,
        "[connections.<name>]": _connections.CONNECTION_KEYS,
        "local / remote (authentication rounds)": _connections.AUTH_KEYS,
        "[connections.<name>.children.<child>]": _connections.CHILD_KEYS,
        "[pools.<name>]": loader.POOL_KEYS,
        "[radius]": loader.RADIUS_KEYS,
        "[cluster]": cluster.CLUSTER_KEYS,
        "[cluster.shares.<name>]": cluster.SHARE_KEYS,
        "[authorities.<name>]": _credentials.AUTHORITY_KEYS,
        "[secrets.private-<name>] (private keys)": _credentials.KEY_KEYS,
    }
    assert set(REFERENCE) == set(tables)
    for section, keys in tables.items():
        assert set(REFERENCE[section]) == set(keys), section


def test_the_rendered_reference_is_current() -> None:
    assert (ROOT / "docs" / "configuration.md").read_text() == render(), (
        "run: python -m snakeswan.config.reference > docs/configuration.md"
    )
