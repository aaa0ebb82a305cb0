"""The man pages are rendered from the CLI parser and the configuration reference; docs/man/ is
kept current, and groff renders both without a warning."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from snakeswan.cli.manpages import man5, man8

ROOT = Path(__file__).resolve().parents[3]


def test_man_pages_are_current() -> None:
    assert (ROOT / "docs" / "man" / "snakeswan.8").read_text() == man8(), "python -m snakeswan.cli.manpages"
    assert (ROOT / "docs" / "man" / "snakeswan.toml.5").read_text() == man5()


def test_every_verb_and_key_is_in_them() -> None:
    page8, page5 = man8(), man5()
    for verb in ("daemon", "up", "down", "list-sas", "list-pools", "check", "load", "analyze", "diagram"):
        assert f".SS {verb}" in page8
    for key in ("half_open_limit", "xauth_id", "split_include", "nas_identifier", "ike_lifetime_check"):
        assert key in page5
    assert "%(" not in page8


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
@pytest.mark.parametrize("page", ["snakeswan.8", "snakeswan.toml.5"])
def test_groff_renders_them_without_warnings(page: str) -> None:
    done = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", str(ROOT / "docs" / "man" / page)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    assert "SNAKESWAN" in done.stdout  # the page header (section names come out overstruck)
