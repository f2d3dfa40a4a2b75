"""Warm start, the pure part: earlier trials -> a snapshot for the status -> history records for the strategy.

The backends only fetch the earlier trials (`dial run` from results files, the operator from the
API server) and store the snapshot in the experiment's status before its first trial; every plan
then reads the priors from there, so the same priors give the same proposals, restarts included.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from dial.api.experiment import Experiment
from dial.api.trial import Trial, TrialPhase
from dial.api.warm_start import PriorTrial, WarmStartStatus
from dial.search import SearchSpace, TrialRecord

MAX_PRIOR_TRIALS = 1000  # bounds the status object (etcd's request limit is 1.5 MiB)
_WITH_OBJECTIVE = (TrialPhase.succeeded, TrialPhase.early_stopped)


def snapshot(experiment: Experiment, sources: Sequence[tuple[str, Sequence[Trial] | None]]) -> WarmStartStatus:
    """The usable earlier trials of each (source name, its trials or None when not found), with a note per source.

    A trial is usable when it finished with every one of this experiment's objective metrics and
    its parameters fit this experiment's space (inactive conditional ones are dropped); others are
    skipped and counted, never an error.
    """
    space = SearchSpace.from_parameters(experiment.spec.parameters)
    out = WarmStartStatus()
    for source, trials in sources:
        if trials is None:
            out.notes.append(f"{source}: not found; no trials from it")
            continue
        taken, why_skipped = 0, Counter[str]()
        for trial in sorted(trials, key=lambda t: t.spec.index):
            prior, why = _prior(experiment, space, source, trial)
            if prior is None:
                why_skipped[why] += 1
            elif len(out.trials) >= MAX_PRIOR_TRIALS:
                why_skipped[f"more than {MAX_PRIOR_TRIALS} earlier trials in all"] += 1
            else:
                out.trials.append(prior)
                taken += 1
        n_skipped = sum(why_skipped.values())
        out.skipped += n_skipped
        detail = "; ".join(f"{n} {why}" for why, n in sorted(why_skipped.items()))
        out.notes.append(f"{source}: {taken} trials taken" + (f", {n_skipped} skipped ({detail})" if n_skipped else ""))
    return out


def _prior(experiment: Experiment, space: SearchSpace, source: str, trial: Trial) -> tuple[PriorTrial | None, str]:
    objective = experiment.spec.objective
    if trial.phase not in _WITH_OBJECTIVE:
        return None, "not finished with an objective" if trial.phase.is_terminal else "still running"
    status = trial.status.model_copy(deep=True)
    status.update_objective(objective)  # by this experiment's metrics and metricStrategy
    if missing := status.missing_objectives(objective):
        return None, f"without {missing[0]}"
    assignment = dict(trial.spec.parameter_assignments)
    unknown = sorted(set(assignment) - set(space.names))
    if unknown:
        return None, f"with parameter {unknown[0]!r} that this experiment does not have"
    active = space.active(assignment)
    missing = sorted(space.active_names(active) - set(active))
    if missing:
        return None, f"without parameter {missing[0]!r}"
    outside = next((d.name for d in space.dimensions if d.name in active and not d.contains(active[d.name])), None)
    if outside is not None:
        return None, f"with {outside!r} outside this experiment's feasibleSpace"
    # Every objective is known here, the first (`status.objective`) included.
    return PriorTrial(source=f"{source}/{trial.name}", parameters=active,
                      objective=status.objective, objectives=status.objectives), ""  # type: ignore[arg-type]


def prior_records(experiment: Experiment) -> list[TrialRecord]:
    """The snapshot as finished history records, indexed -n..-1 so they sort before (and never
    collide with) this experiment's own trials; with several objectives each carries every loss."""
    snap = experiment.status.warm_start
    if snap is None:
        return []
    objective, n = experiment.spec.objective, len(snap.trials)
    records = []
    for i, p in enumerate(snap.trials):
        losses = objective.losses(p.objectives or {}) if objective.is_multi else None
        if objective.is_multi and losses is None:
            # Only a snapshot taken under other objectives (an edited spec) lacks one: such a prior says
            # nothing about this search, and as a record without losses it would pass for a failed trial.
            continue
        loss = losses[0] if losses is not None else objective.loss(p.objective)
        records.append(TrialRecord(index=i - n, assignment=dict(p.parameters), loss=loss, finished=True, losses=losses))
    return records
