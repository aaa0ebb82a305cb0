"""The sans-I/O layers stay pure: nothing under wire/ crypto/ config/ ike/ ipsec/ touches sockets,
the event loop, processes, the clock or the OS random source (DESIGN.md), and the import-linter
layer contract holds."""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE = ["wire", "crypto", "config", "ike", "ipsec"]
FORBIDDEN_MODULES = {"socket", "asyncio", "subprocess", "time", "selectors", "threading"}


def _pure_files() -> list[Path]:
    files = [p for d in PURE for p in sorted((ROOT / "src" / "snakeswan" / d).rglob("*.py"))]
    assert len(files) > 20, "the package layout moved: update this test"
    return files


@pytest.mark.parametrize("path", _pure_files(), ids=lambda p: str(p.relative_to(ROOT / "src")))
def test_no_io_in_pure_layers(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [(node.module or "").split(".")[0]]
        else:
            names = []
        bad = FORBIDDEN_MODULES.intersection(names)
        assert not bad, f"{path.name}:{node.lineno} imports {bad}"
        if isinstance(node, ast.Attribute) and node.attr in ("urandom", "getrandom"):
            pytest.fail(f"{path.name}:{node.lineno} reads the OS random source")
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            assert not {a.name for a in node.names} & {"urandom", "getrandom"}, f"{path.name}: os.urandom"


def test_import_linter_contract() -> None:
    exe = shutil.which("lint-imports")
    assert exe, "import-linter is a dev dependency: pip install -e '.[dev]'"
    res = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
