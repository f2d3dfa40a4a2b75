"""Turns on the one local cluster, for test processes that share it (pytest-xdist workers, or two sessions).

A machine holds one cluster (one real node: fixed node name, bridges and GPU devices), so concurrent test
processes share it. Most tests only need a namespace of their own and take a *shared* turn. A test that
stops or restarts the control plane, or fills the node on purpose, is marked ``cluster_exclusive`` and runs
alone. A test that counts a node-wide resource (the node's two fake GPUs) is marked
``cluster_resource("gpu")`` and shares the cluster but not that resource.

The turns are ``flock`` locks under the cluster's directory, so a process that dies releases its turn. A gate
lock, held briefly by a shared turn and for the whole test by an exclusive one, gives a waiting exclusive test
priority over shared turns that ask after it (plain shared locks would starve it).

A turn covers a test's whole run protocol (setup, call and teardown), so module fixtures that touch the
cluster, set up in their first test's setup and torn down in their last test's teardown, are covered too.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from typing import Iterator

import pytest

HACK = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HACK)
EXCLUSIVE = "cluster_exclusive"
RESOURCE = "cluster_resource"


def cluster_dir() -> str:
    """The cluster's state directory, as hack/cluster computes it."""
    d = os.environ.get("DIAL_CLUSTER_DIR")
    if d:
        return os.path.abspath(d)
    return os.path.join(tempfile.gettempdir(), f"dial-cluster-{hashlib.sha256(REPO.encode()).hexdigest()[:8]}")


def turns_dir() -> str:
    # Beside the state directory, not in it: `hack/cluster down` removes that one.
    d = cluster_dir() + ".turns"
    os.makedirs(d, exist_ok=True)
    return d


@contextlib.contextmanager
def _flock(name: str, mode: int) -> Iterator[None]:
    fd = os.open(os.path.join(turns_dir(), name), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def turn(*, exclusive: bool, resources: tuple[str, ...] = ()) -> Iterator[None]:
    with contextlib.ExitStack() as held:
        if exclusive:
            held.enter_context(_flock("gate", fcntl.LOCK_EX))
            held.enter_context(_flock("cluster", fcntl.LOCK_EX))
        else:
            with _flock("gate", fcntl.LOCK_EX):
                held.enter_context(_flock("cluster", fcntl.LOCK_SH))
        for resource in sorted(resources):  # one order for all: no deadlock between two resource holders
            held.enter_context(_flock(f"resource-{resource}", fcntl.LOCK_EX))
        yield


def item_turn(item: pytest.Item) -> tuple[bool, tuple[str, ...]] | None:
    """(exclusive, resources) for a test that uses the cluster; None for one that does not."""
    if "cluster" not in getattr(item, "fixturenames", ()):
        return None
    resources = tuple(arg for mark in item.iter_markers(RESOURCE) for arg in mark.args)
    return item.get_closest_marker(EXCLUSIVE) is not None, resources


class ClusterTurns:
    """The pytest plugin: each test that uses the ``cluster`` fixture runs inside its turn."""

    def __init__(self) -> None:
        self.depth = 0  # a turn is taken once per process, however many times the hook is reached

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None):
        wanted = item_turn(item)
        if wanted is None or self.depth:
            yield
            return
        exclusive, resources = wanted
        with turn(exclusive=exclusive, resources=resources):
            self.depth += 1
            try:
                import cluster_fixture  # the fixture module: follow a cluster another process restarted

                cluster_fixture.follow_restarted_cluster()
                yield
            finally:
                self.depth -= 1


def register(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{EXCLUSIVE}: runs with the cluster to itself (stops, restarts or fills it)")
    config.addinivalue_line("markers", f"{RESOURCE}(name): holds a node-wide resource (\"gpu\") for the test")
    if not config.pluginmanager.has_plugin("dial-cluster-turns"):
        config.pluginmanager.register(ClusterTurns(), "dial-cluster-turns")
