"""The operator's kopf settings: Dial posts its own events and reconciles in many handler threads."""

from __future__ import annotations

import kopf

from dial.kube import handlers


def test_startup_widens_the_handler_thread_pool_and_starts_the_resync() -> None:
    settings = kopf.OperatorSettings()
    memo = kopf.Memo(resync_seconds=3600.0, namespaces=[], kube=None, runner=None)
    handlers.configure(settings=settings, memo=memo)
    try:
        # reconciles block their thread on API calls: kopf's default (CPUs + 4) queued events on 2 cores
        assert settings.execution.max_workers == handlers.EXECUTOR_THREADS >= 16
        assert settings.posting.enabled is False
        assert not memo.resync_stop.is_set()
    finally:
        memo.resync_stop.set()
