"""Crash-only: SIGKILL the operator again and again mid-experiment; it still ends with exactly maxTrialCount
trials, no duplicates, no lost observations, and the proposals a crash-free run makes."""

from __future__ import annotations

import random
import time
from datetime import datetime, timezone

import pytest

from dial.engine import finalize_trial, new_trial, plan
from dial.engine.validation import parse_experiment
from operator_fixtures import (  # noqa: F401  (fixtures)
    assert_each_trial_ran_once_with_its_printed_objective,
    apply, dial_namespace, dump, example_manifest, operator, phases, trials, wait, wait_for_phase,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

N_TRIALS = 10


def crash_free_proposals(manifest: dict) -> list[dict]:
    """What the engine proposes, one trial at a time, when nothing ever crashes."""
    experiment = parse_experiment({**manifest, "metadata": {"name": "peaks", "namespace": "x"}})
    done, now = [], datetime.now(timezone.utc)
    while True:
        current = plan(experiment, done, now=now)
        if not current.create:
            return [t.spec.parameter_assignments for t in done]
        for proposal in current.create:
            trial = new_trial(experiment, proposal.index, proposal.assignment)
            trial.status.record(experiment.spec.objective.primary.metric_name, 1, 0.0)  # a success
            finalize_trial(experiment, trial, exit_code=0, now=now)
            done.append(trial)


@pytest.mark.parametrize("parallel", [1, 3])
def test_sigkill_at_random_moments_loses_and_repeats_nothing(cluster, operator, parallel):
    ns = operator.namespace
    manifest = example_manifest("peaks", maxTrialCount=N_TRIALS, parallelTrialCount=parallel, maxFailedTrialCount=None,
                                algorithm={"name": "random"}, seed=11)
    apply(cluster, ns, manifest)
    moments = random.Random(4).sample(range(1, N_TRIALS - 1), 4)
    for n_trials in sorted(moments):
        wait(lambda: len(trials(cluster, ns, "peaks")) >= n_trials, 240, f"{n_trials} trials", operator)
        time.sleep(random.Random(n_trials).uniform(0, 2.0))  # somewhere inside a create/sync/patch sequence
        operator.kill()
        operator.start()
    exp = wait_for_phase(cluster, operator, ns, "peaks", ("Succeeded", "Failed"), timeout=400)
    items = trials(cluster, ns, "peaks")
    assert operator.n_starts == 5
    assert exp["status"]["phase"] == "Succeeded", dump(exp["status"])
    assert [t["metadata"]["name"] for t in items] == [f"peaks-{i:04d}" for i in range(N_TRIALS)]
    assert phases(items) == ["Succeeded"] * N_TRIALS, dump([t["status"] for t in items])
    assert exp["status"]["trialsCreated"] == N_TRIALS and exp["status"]["progress"] == f"{N_TRIALS}/{N_TRIALS}"
    if parallel == 1:
        # One trial at a time: the proposal for index i depends on nothing but the seed and the
        # i trials before it, so the crash-free run is known exactly. (In parallel, how many
        # slots are filled at once depends on timing, crash or not.)
        assert [t["spec"]["parameterAssignments"] for t in items] == crash_free_proposals(manifest)
    assert_each_trial_ran_once_with_its_printed_objective(cluster, ns, items)
