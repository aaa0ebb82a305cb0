"""Shared fixtures for namespace and interop tests (markers are declared in pyproject.toml).

* ``topology`` — a factory: ``topo = topology()`` gives a :class:`tests.netns.Topology` (unique
  ``ssw<tag>-`` namespaces), closed at teardown even when the test fails. Skips unless root with
  a usable ``ip netns`` (fails instead when ``CI`` is set). The first use in a session removes
  namespaces that killed earlier runs left behind.
* ``charon_factory`` — ``charon_factory(ns, "west", swanctl_conf, **Charon kwargs)`` starts a
  strongSwan charon in ``ns`` (work dir ``tmp_path/west``), loads its config, and stops it at
  teardown (before the namespaces go); on failure the tail of each charon log is printed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.interop.strongswan import Charon, require_strongswan
from tests.netns import Netns, Topology, cleanup_stale, require_root

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    rep = yield
    item.stash.setdefault(_REPORTS, {})[rep.when] = rep
    return rep


@pytest.fixture(scope="session")
def _stale_netns_cleanup() -> None:
    require_root()
    cleanup_stale()


@pytest.fixture
def topology(_stale_netns_cleanup: None) -> Iterator[Callable[..., Topology]]:
    topos: list[Topology] = []

    def make(tag: str | None = None) -> Topology:
        topo = Topology(tag)
        topos.append(topo)
        return topo

    yield make
    errors = []
    for topo in reversed(topos):
        try:
            topo.close()
        except Exception as e:
            errors.append(e)
    if errors:
        raise errors[0]


@pytest.fixture
def charon_factory(
    request: pytest.FixtureRequest, tmp_path: Any, topology: Callable[..., Topology]
) -> Iterator[Callable[..., Any]]:
    require_strongswan()
    charons: list[Charon] = []

    def make(
        ns: Netns, name: str, swanctl_conf: str = "", *, start: bool = True, load: bool = True, **kw: Any
    ) -> Charon:
        charon = Charon(ns, tmp_path / name, swanctl_conf=swanctl_conf, **kw)
        charons.append(charon)
        if start:
            charon.start()
            if load:
                charon.load_all()
        return charon

    yield make
    reports = request.node.stash.get(_REPORTS, {})
    if any(r.failed for r in reports.values()):
        for c in charons:
            print(f"\n===== {c.ns.name}: {c.log_path} (last 60 lines) =====")
            print("\n".join(c.log().splitlines()[-60:]))
    for c in reversed(charons):
        c.stop()
