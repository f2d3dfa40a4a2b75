"""The planning step: from an experiment and its trials, decide what happens next.

Pure: no clock (the caller passes `now`), no I/O. Both backends call `plan` after every change
and apply the result; applying the same plan twice is harmless, so a crash between planning and
applying loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Sequence

from dial.api.experiment import BestTrial, Condition, Experiment, ExperimentPhase, ExperimentStatus, TrialCounts
from dial.api.space import ParameterValue
from dial.api.trial import Trial, TrialPhase, trial_name
from dial.engine import budget, front, reasons
from dial.engine.warm_start import prior_records
from dial.api.zoom import ZoomedRange, ZoomStatus, zoomed_further
from dial.search.zoom import zoomed
from dial.search import SearchSpace, TrialRecord, make_strategy, propose_active_trials
from dial.stopping import make_rule

_COUNT_FIELD = {
    TrialPhase.pending: "pending",
    TrialPhase.running: "running",
    TrialPhase.succeeded: "succeeded",
    TrialPhase.failed: "failed",
    TrialPhase.early_stopped: "early_stopped",
    TrialPhase.metrics_unavailable: "metrics_unavailable",
}


# With maxFailedTrialCount unset, this many failures before any success end the experiment as
# Failed: a broken setup (a typo in the command, a missing file) fails every trial, and running the
# whole budget to learn that wastes it. Once one trial has succeeded, failures are not limited.
DEFAULT_FIRST_FAILURES = 3


@dataclass(frozen=True)
class TrialProposal:
    index: int
    name: str
    assignment: dict[str, ParameterValue]
    parent: str | None = None  # the trial whose checkpoint this one starts from


@dataclass(frozen=True)
class StopOrder:
    """Stop a running trial; `reason` becomes the trial's reason once its process has ended."""

    name: str
    reason: str
    message: str

    @property
    def is_early_stop(self) -> bool:
        """A stop rule's verdict is an early stop; suspending, finishing or a diverged metric are not."""
        return self.reason not in (reasons.SUSPENDED, reasons.EXPERIMENT_FINISHED, reasons.OBJECTIVE_NOT_FINITE)


@dataclass(frozen=True)
class Finish:
    phase: ExperimentPhase
    reason: str
    message: str


@dataclass
class Plan:
    create: list[TrialProposal] = field(default_factory=list)
    stop: list[StopOrder] = field(default_factory=list)
    finish: Finish | None = None
    status: ExperimentStatus = field(default_factory=ExperimentStatus)
    # What is news against the experiment's stored status: a further zoom, a finish in a new phase.
    events: list[ZoomStatus | Finish] = field(default_factory=list)


def history(experiment: Experiment, trials: Sequence[Trial]) -> list[TrialRecord]:
    """Trials as a strategy sees them: losses to minimise; failures finished without a loss."""
    objective = experiment.spec.objective
    records = []
    index_of = {t.name: t.spec.index for t in trials}
    for t in sorted(trials, key=lambda t: t.spec.index):
        finished = t.phase.is_terminal
        loss = objective.loss(t.status.objective) if finished and t.status.objective is not None else None
        losses = objective.losses(t.status.objectives or {}) if finished and objective.is_multi else None
        if objective.is_multi and losses is None:
            loss = None  # a trial without every objective is a failure to a multi-objective strategy
        parent = index_of.get(t.spec.parent_trial) if t.spec.parent_trial is not None else None
        incomplete = finished and t.phase is not TrialPhase.succeeded
        records.append(TrialRecord(t.spec.index, dict(t.spec.parameter_assignments), loss, finished, losses,
                                   parent=parent, incomplete=incomplete))
    return records


def best_trial(experiment: Experiment, trials: Sequence[Trial]) -> Trial | None:
    """The best succeeded trial; None for a multi-objective experiment (its answer is the Pareto front)."""
    objective = experiment.spec.objective
    if objective.is_multi:
        return None
    best = None
    for t in trials:
        if t.phase is TrialPhase.succeeded and t.status.objective is not None:
            if best is None or objective.is_better(t.status.objective, best.status.objective):  # type: ignore[arg-type]
                best = t
    return best


def count(trials: Sequence[Trial]) -> TrialCounts:
    counts = TrialCounts()
    for t in trials:
        name = _COUNT_FIELD[t.phase]
        setattr(counts, name, getattr(counts, name) + 1)
    return counts


def plan(experiment: Experiment, trials: Sequence[Trial], *, now: datetime, interrupted: str | None = None) -> Plan:
    """What happens next. `interrupted`: why the run was stopped from outside (`dial run` on a signal);
    it is planned as suspended (nothing new is proposed) with a status that says so."""
    spec = experiment.spec
    counts = count(trials)
    active = [t for t in trials if not t.phase.is_terminal]
    budget_used = sum(1 for t in trials if t.status.reason not in reasons.NOT_COUNTED or not t.phase.is_terminal)
    n_failed = counts.failed + counts.metrics_unavailable
    best = best_trial(experiment, trials)
    spent = budget.usage(experiment, trials, now)
    out_of_budget = budget.exhausted(experiment, spent)
    result = Plan()

    finish: Finish | None = None
    stop_all_reason: str | None = None
    if spec.suspend or interrupted is not None:
        stop_all_reason = reasons.SUSPENDED
    elif spec.max_failed_trial_count is not None and n_failed > spec.max_failed_trial_count:
        finish = Finish(ExperimentPhase.failed, reasons.MAX_FAILED_REACHED,
                        f"{n_failed} trials failed, more than maxFailedTrialCount {spec.max_failed_trial_count}")
    elif spec.max_failed_trial_count is None and counts.succeeded == 0 and n_failed >= min(
            DEFAULT_FIRST_FAILURES, spec.max_trial_count):
        finish = Finish(ExperimentPhase.failed, reasons.FIRST_TRIALS_FAILED,
                        f"{n_failed} trials failed and none succeeded "
                        f"(maxFailedTrialCount unset: {DEFAULT_FIRST_FAILURES} failures before any success end the "
                        "experiment; set it to allow more)")
    elif best is not None and spec.objective.reaches_goal(best.status.objective):  # type: ignore[arg-type]
        finish = Finish(ExperimentPhase.succeeded, reasons.GOAL_REACHED,
                        f"trial {best.name} reached {spec.objective.metric_name}={best.status.objective:.6g} "
                        f"(goal {spec.objective.goal:g})")
    elif out_of_budget is not None:
        finish = Finish(ExperimentPhase.succeeded, *out_of_budget)
    elif budget_used >= spec.max_trial_count and not active:
        finish = Finish(ExperimentPhase.succeeded, reasons.MAX_TRIALS_REACHED,
                        f"{budget_used} of maxTrialCount {spec.max_trial_count} trials ran")
    if finish is not None:
        stop_all_reason = reasons.EXPERIMENT_FINISHED

    if stop_all_reason is not None:
        message = "experiment suspended" if stop_all_reason == reasons.SUSPENDED else f"experiment finished: {finish.reason}"  # type: ignore[union-attr]
        result.stop = [StopOrder(t.name, stop_all_reason, message) for t in active]
    else:
        result.stop = _rule_stops(experiment, trials, active)
        stopping = {o.name for o in result.stop}
        result.stop += [StopOrder(t.name, reasons.TRIAL_DEADLINE,
                                  f"ran longer than maxTrialSeconds {spec.max_trial_seconds}")
                        for t in budget.overdue(experiment, trials, now) if t.name not in stopping]
        n_new = min(spec.parallel_trial_count - len(active), spec.max_trial_count - budget_used)
        if n_new > 0:
            result.create = _propose(experiment, trials, n_new)
            if not result.create and not active:
                finish = Finish(ExperimentPhase.succeeded, reasons.SPACE_EXHAUSTED,
                                f"{spec.algorithm.name} has no untried assignment left after {len(trials)} trials")

    if finish is not None and finish.phase is ExperimentPhase.succeeded and counts.succeeded == 0 and n_failed > 0:
        # Out of trials, time or space without one success: there is no result, and saying
        # Succeeded would let scripts carry on with nothing.
        finish = Finish(ExperimentPhase.failed, reasons.NO_TRIAL_SUCCEEDED,
                        f"no trial succeeded ({_tally(counts)}); the run ended with {finish.reason}: {finish.message}")
    if finish is not None and (silent := unreported_metrics(experiment, trials)):
        finish = Finish(finish.phase, finish.reason, f"{finish.message}; {silent}")
    result.finish = finish
    result.status = _status(experiment, trials, counts, best, finish, budget_used, len(result.create), now,
                            interrupted)
    result.status.budget = spent
    result.events = news(experiment.status, result.status, finish)
    return result


def news(previous: ExperimentStatus, current: ExperimentStatus, finish: Finish | None) -> list[ZoomStatus | Finish]:
    """The events a plan's status makes against the stored one: each is told once, when it first happens."""
    events: list[ZoomStatus | Finish] = []
    if current.zoom is not None and zoomed_further(previous.zoom, current.zoom):
        events.append(current.zoom)  # narrowed further: it changes where trials land
    if finish is not None and previous.phase is not finish.phase:
        events.append(finish)
    return events


def unreported_metrics(experiment: Experiment, trials: Sequence[Trial]) -> str | None:
    """Which objective or stop-rule metrics no finished trial ever reported (a misspelt name, a
    rule that could never fire), with the metrics that were reported; None when all were."""
    spec = experiment.spec
    finished = [t for t in trials if t.phase.is_terminal]
    if not finished:
        return None
    wanted = {t.metric_name: "objective" for t in spec.objective.targets}
    if spec.early_stopping is not None:
        rule = make_rule(spec.early_stopping.name, spec.early_stopping.settings, spec.objective)
        wanted.setdefault(rule.metric, f"earlyStopping {rule.name}")
    seen = dict.fromkeys(o.name for t in finished for o in t.status.observations)
    missing = [f"{name} ({role})" for name, role in wanted.items() if name not in seen]
    if not missing:
        return None
    return (f"no trial reported {', '.join(missing)}; "
            + (f"metrics reported: {', '.join(seen)}" if seen else "no metric was reported at all"))


def final_step(experiment: Experiment, trials: Sequence[Trial]) -> float | None:
    """The last step of training as the succeeded trials show it (the largest step they reported); None before any."""
    steps = [step for t in trials if t.phase is TrialPhase.succeeded
             and (step := _latest_step(experiment, t)) is not None]
    return max(steps, default=None)


def _latest_step(experiment: Experiment, trial: Trial) -> float | None:
    obs = trial.status.observation(experiment.spec.objective.primary.metric_name)
    return obs.curve[-1].step if obs is not None and obs.curve else None


def _tally(counts: TrialCounts) -> str:
    parts = [(counts.failed, "failed"), (counts.metrics_unavailable, "reported no objective"),
             (counts.early_stopped, "stopped early")]
    return ", ".join(f"{n} {what}" for n, what in parts if n)


def _rule_stops(experiment: Experiment, trials: Sequence[Trial], active: Sequence[Trial]) -> list[StopOrder]:
    orders = [StopOrder(t.name, t.status.stop_reason, t.status.stop_message or "")
              for t in active if t.status.stop_reason is not None]
    orders += [StopOrder(t.name, reasons.OBJECTIVE_NOT_FINITE, bad.describe())
               for t in active if t.status.stop_reason is None and (bad := t.status.non_finite_objective) is not None]
    if experiment.spec.early_stopping is None:
        return orders
    rule = make_rule(experiment.spec.early_stopping.name, experiment.spec.early_stopping.settings,
                     experiment.spec.objective)
    last = final_step(experiment, trials)
    for t in active:
        if last is not None and (step := _latest_step(experiment, t)) is not None and step >= last:
            continue  # it has reported the final step: stopping it saves nothing and would mislabel it
        if t.phase is TrialPhase.running and t.status.stop_reason is None and t.status.non_finite_objective is None:
            decision = rule.check(t, [other for other in trials if other.name != t.name])
            if decision is not None:
                orders.append(StopOrder(t.name, decision.rule, decision.message))
    return orders


def search_state(experiment: Experiment, trials: Sequence[Trial]) -> tuple[SearchSpace, list[TrialRecord], ZoomStatus | None]:
    """The space the strategy searches now and the history it sees there (warm-start priors first)."""
    spec = experiment.spec
    space = SearchSpace.from_parameters(spec.parameters)
    # Earlier experiments' trials seed the strategy; they are not this experiment's trials.
    past = prior_records(experiment) + history(experiment, trials)
    settings = spec.algorithm.zoom
    if settings is None:
        return space, past, None
    narrowed, level, centre = zoomed(space, past, after_trials=settings.after_trials, factor=settings.factor,
                                     max_zooms=settings.max_zooms)
    if centre is None:
        return space, past, None
    status = ZoomStatus(level=level, center=_record_name(experiment, centre),
                        parameters=[ZoomedRange(name=d.name, min=d.low, max=d.high)
                                    for d in narrowed.dimensions if not d.is_choice])
    # Trials outside the narrowed ranges would sit on its edges in a model's unit cube: left out.
    return narrowed, [r for r in past if narrowed.contains(r.assignment)], status


def _record_name(experiment: Experiment, record: TrialRecord) -> str:
    if record.index >= 0:
        return trial_name(experiment.name, record.index)
    snap = experiment.status.warm_start
    return snap.trials[len(snap.trials) + record.index].source if snap is not None else str(record.index)


def _propose(experiment: Experiment, trials: Sequence[Trial], n: int) -> list[TrialProposal]:
    spec = experiment.spec
    space, past, _ = search_state(experiment, trials)
    strategy = make_strategy(spec.algorithm.name, spec.algorithm.settings, space, seed=spec.seed,
                             n_objectives=len(spec.objective.targets))
    start = max((t.spec.index for t in trials), default=-1) + 1
    return [TrialProposal(start + i, trial_name(experiment.name, start + i), p.assignment,
                          trial_name(experiment.name, p.parent) if p.parent is not None else None)
            for i, p in enumerate(propose_active_trials(strategy, past, n))]


def _status(experiment: Experiment, trials: Sequence[Trial], counts: TrialCounts, best: Trial | None,
            finish: Finish | None, budget_used: int, n_new: int, now: datetime,
            interrupted: str | None = None) -> ExperimentStatus:
    spec = experiment.spec
    previous = experiment.status
    counts.pending += n_new
    status = ExperimentStatus(
        trials=counts,
        trials_created=len(trials) + n_new,
        trials_done=counts.done,
        progress=f"{counts.done}/{spec.max_trial_count}",
        algorithm=spec.algorithm.name,
        start_time=previous.start_time or now,
        warm_start=previous.warm_start,
        zoom=search_state(experiment, trials)[2] if spec.algorithm.zoom is not None else None,
    )
    if best is not None:
        status.best_trial = BestTrial(name=best.name, parameters=dict(best.spec.parameter_assignments),
                                      objective=best.status.objective)  # type: ignore[arg-type]
        status.best_objective = best.status.objective
    if spec.objective.is_multi:
        status.pareto_front, status.pareto_front_size = front.status_front(experiment, trials)
    if finish is not None:
        status.phase = finish.phase
        condition = Condition(type=finish.phase.value, reason=finish.reason, message=finish.message)
        status.completion_time = previous.completion_time if previous.phase is finish.phase and previous.completion_time else now
    elif interrupted is not None:
        status.phase = ExperimentPhase.suspended
        condition = Condition(type="Suspended", reason=reasons.INTERRUPTED, message=interrupted)
    elif spec.suspend:
        status.phase = ExperimentPhase.suspended
        condition = Condition(type="Suspended", reason=reasons.SUSPENDED, message="spec.suspend is true: no trial runs")
    else:
        status.phase = ExperimentPhase.running
        condition = Condition(type="Running", reason=reasons.RUNNING,
                              message=f"{counts.active} running or pending, {budget_used + n_new} of {spec.max_trial_count} started")
    condition.last_transition_time = _transition_time(previous.conditions, condition, now)
    status.conditions = [condition]
    return status


def _transition_time(previous: list[Condition], current: Condition, now: datetime) -> datetime:
    for c in previous:
        if c.type == current.type and c.reason == current.reason and c.last_transition_time:
            return c.last_transition_time
    return now
