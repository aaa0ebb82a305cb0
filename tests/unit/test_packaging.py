"""Packaging: one version source, the licence the metadata claims is the file shipped, the
optional uvloop extra."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

import snakeswan
from snakeswan.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_one_version_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert "version" not in PROJECT and "version" in PROJECT["dynamic"]
    assert SETUPTOOLS["dynamic"]["version"] == {"attr": "snakeswan.__version__"}
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out == f"snakeswan {snakeswan.__version__}\n"


def test_license_file_matches_metadata() -> None:
    assert PROJECT["license"] == {"text": "MIT"}
    assert "License :: OSI Approved :: MIT License" in PROJECT["classifiers"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")


def test_uvloop_is_an_optional_extra() -> None:
    assert PROJECT["optional-dependencies"]["uvloop"][0].startswith("uvloop")
    assert not any(d.startswith("uvloop") for d in PROJECT["dependencies"])
