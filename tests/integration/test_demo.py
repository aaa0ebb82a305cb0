"""`snakeswan demo` (the README's main job) end to end: namespaces, two daemons, trap, ping, TCP,
only ESP on the wire, everything removed afterwards."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.daemons import ROOT
from tests.netns import list_namespaces, require_root

pytestmark = pytest.mark.netns


def test_demo_passes_and_cleans_up() -> None:
    require_root()
    before = set(list_namespaces())
    cp = subprocess.run(
        [sys.executable, "-m", "snakeswan.cli.main", "demo"],
        capture_output=True,
        text=True,
        timeout=180,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        check=False,
    )
    out = cp.stdout
    assert cp.returncode == 0, out + cp.stderr
    assert "10/10 replies" in out
    assert "4194304 of 4194304 bytes arrived" in out
    assert "0 packets of host-a/host-b in clear" in out
    assert "msg=MM1" in out and "msg=QM3" in out and "acquire" in out
    assert "== demo PASSED" in out
    # nothing left behind: the four namespaces the demo names are gone, and no other "ssdemo" one
    # appeared (other tests running at the same time may add and remove namespaces of their own)
    built = out.split("== building 4 namespaces: ", 1)[1].splitlines()[0].split(", ")
    assert len(built) == 4 and all(name.startswith("ssdemo") for name in built)
    after = set(list_namespaces())
    assert not after & set(built)
    assert {name for name in after - before if name.startswith("ssdemo")} == set()
