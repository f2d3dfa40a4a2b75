"""Leader election's write guard: a leader stops writing before any standby can take the Lease, also after a
pause; the client's election runs on an in-memory Lease with a fake clock."""

from __future__ import annotations

import copy
import time
import types
import urllib.error
import urllib.request
from typing import Any

import pytest

from dial.kube import leadership as leadership_module
from dial.kube.leadership import Leadership, LeaseSettings, NotLeader, _Election
from dial.kube.readiness import CACHE_SECONDS, serve_readiness
from kubernetes.leaderelection import electionconfig, leaderelection


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Missing:
    body = '{"code": 404}'
    reason = "Not Found"


class MemoryLease:
    """One Lease shared by the candidates: optimistic concurrency as the API server's resourceVersion gives."""

    def __init__(self) -> None:
        self.record: Any = None
        self.version = 0
        self.broken = False

    def lock(self, identity: str) -> Any:
        store = self

        class Lock:
            name, namespace = "dial-operator", "dial"

            def __init__(self) -> None:
                self.identity = identity
                self.seen_version: int | None = None

            def get(self, name: str, namespace: str) -> tuple[bool, Any]:
                if store.broken:
                    raise ConnectionError("API server unreachable")
                if store.record is None:
                    return False, Missing()
                self.seen_version = store.version
                return True, copy.copy(store.record)

            def create(self, name: str, namespace: str, election_record: Any) -> bool:
                if store.record is not None:
                    return False
                store.record, store.version = copy.copy(election_record), store.version + 1
                return True

            def update(self, name: str, namespace: str, updated_record: Any) -> bool:
                if self.seen_version != store.version:
                    return False  # 409: someone wrote since our read
                store.record, store.version = copy.copy(updated_record), store.version + 1
                return True

        return Lock()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(leaderelection, "time", types.SimpleNamespace(time=fake.time, sleep=fake.sleep))
    monkeypatch.setattr(leadership_module, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    return fake


def candidate(lease: MemoryLease, identity: str, clock: Clock) -> _Election:
    config = electionconfig.Config(lease.lock(identity), 4, 3, 1, lambda: None, lambda: None)
    return _Election(config, Leadership(3, clock=clock.monotonic))


def test_the_write_guard_holds_only_within_the_renew_deadline_of_the_latest_renewal() -> None:
    clock = Clock()
    held = Leadership(10, clock=clock.monotonic)
    assert not held.is_held()
    with pytest.raises(NotLeader, match="does not hold the leader Lease"):
        held.check()
    held.renewed(clock.now)
    clock.sleep(9.9)
    held.check()
    clock.sleep(0.2)
    assert not held.is_held()
    held.renewed(clock.now)
    held.lose()
    held.renewed(clock.now)  # a renewal that raced with losing it does not bring it back
    assert not held.is_held()
    assert Leadership.always().is_held()


def test_a_paused_leader_stops_writing_before_the_standby_can_take_the_lease(clock: Clock) -> None:
    lease = MemoryLease()
    a, b = candidate(lease, "a", clock), candidate(lease, "b", clock)
    assert a.try_acquire_or_renew() and a.leadership.is_held()
    assert not b.try_acquire_or_renew() and not b.leadership.is_held()
    for _ in range(5):  # the leader renews every retry period; the standby keeps waiting
        clock.sleep(1)
        assert a.try_acquire_or_renew() and not b.try_acquire_or_renew()
    paused_at = clock.now  # a stops here (SIGSTOP): no more renewals
    while not b.try_acquire_or_renew():
        clock.sleep(0.1)
        assert a.leadership.is_held() == (clock.now - paused_at < 3), clock.now - paused_at
    took_over = clock.now - paused_at
    assert 4 <= took_over <= 5.2, took_over  # the lease duration after b saw a's last renewal, plus b's retry
    assert b.leadership.is_held() and not a.leadership.is_held()  # never two writers
    assert lease.record.holder_identity == "b"
    assert not a.try_acquire_or_renew()  # a wakes up: b holds the Lease, a stays off
    assert not a.leadership.is_held()


def test_an_unreachable_api_server_is_a_failed_attempt_not_a_dead_election(clock: Clock) -> None:
    lease = MemoryLease()
    a = candidate(lease, "a", clock)
    assert a.try_acquire_or_renew()
    lease.broken = True
    assert a.try_acquire_or_renew() is False
    clock.sleep(3.1)
    assert not a.leadership.is_held()
    lease.broken = False
    assert a.try_acquire_or_renew() and a.leadership.is_held()  # the same holder renews its own Lease


@pytest.mark.parametrize("durations", [(10, 10, 2), (15, 10, 9), (15, 10, 0)])
def test_inconsistent_lease_timings_are_refused_with_the_rule(durations: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError, match="lease duration > renew deadline > 1.2 x retry period"):
        LeaseSettings("dial", "a", lease_duration_s=durations[0], renew_deadline_s=durations[1],
                      retry_period_s=durations[2])


def test_readiness_follows_the_api_server_not_leadership() -> None:
    answers: list[Exception | None] = [None, ConnectionRefusedError("connection refused")]

    def ping() -> None:
        if (error := answers[0]) is not None:
            raise error

    server = serve_readiness("http://127.0.0.1:0/readyz", ping)
    port = server.server_address[1]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as ok:
            assert ok.status == 200 and ok.read() == b"ok\n"
        answers.pop(0)
        time.sleep(CACHE_SECONDS + 0.1)  # the last answer is reused for a second
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert refused.value.code == 503
        assert "cannot reach the API server: ConnectionRefusedError: connection refused" in refused.value.read().decode()
    finally:
        server.shutdown()
