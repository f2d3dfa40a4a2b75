"""What a report shows, as plain data: history, curves, importance, axes and top trials (no drawing)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Sequence

from dial.api.experiment import Experiment
from dial.api.space import ParameterType, ParameterValue, Scale
from dial.api.trial import Trial, TrialPhase
from dial.engine.front import front_trials
from dial.engine.plan import count
from dial.report.importance import Importance, parameter_importance

N_TOP_TRIALS = 10
N_SLICE_PARAMETERS = 3
LOG_SCALE_RATIO = 100.0
NO_OBJECTIVE_LABEL = "no objective (failed or stopped before reporting)"  # the history charts' floor marks


@dataclass(frozen=True)
class ParameterAxis:
    """How one parameter is drawn: numeric (maybe log) or categorical with its values in order."""

    name: str
    numeric: bool
    log: bool
    categories: tuple[str, ...] = ()

    def position(self, value: ParameterValue) -> float:
        """The value as a number on this axis (a category's index for a categorical one)."""
        if self.numeric:
            return float(value)
        return float(self.categories.index(str(value))) if str(value) in self.categories else math.nan


@dataclass(frozen=True)
class TrialRow:
    name: str
    index: int
    phase: TrialPhase
    reason: str | None
    parameters: dict[str, ParameterValue]
    objective: float | None
    start_time: datetime | None
    completion_time: datetime | None
    objectives: dict[str, float] = field(default_factory=dict)  # multi-objective: every objective's value
    message: str | None = None  # why it failed or stopped

    @property
    def score(self) -> float:
        """The objective of a scored trial (those in `ReportData.scored_trials`)."""
        if self.objective is None:
            raise ValueError(f"trial {self.name} has no objective")
        return self.objective

    @property
    def duration_s(self) -> float | None:
        if self.start_time is None or self.completion_time is None:
            return None
        return (self.completion_time - self.start_time).total_seconds()


@dataclass(frozen=True)
class HistoryPoint:
    """A trial's objective and the best counted objective up to it (in index or completion order)."""

    trial: str
    index: int
    phase: TrialPhase
    objective: float
    best_so_far: float | None
    elapsed_s: float | None
    reason: str | None = None  # why a trial that did not succeed ended (an early stop's rule)


@dataclass(frozen=True)
class HistoryMark:
    """A finished trial without an objective (failed, or stopped before its first report): drawn on the history
    charts' floor with its reason, so a run's failures show where they happened."""

    trial: str
    index: int
    phase: TrialPhase
    reason: str | None
    message: str | None
    elapsed_s: float | None


@dataclass(frozen=True)
class Curve:
    """One trial's learning curve of the objective metric; `cut` when a stop rule ended it."""

    trial: str
    phase: TrialPhase
    steps: list[float]
    values: list[float]
    cut: bool
    reason: str | None


@dataclass(frozen=True)
class ParetoPoint:
    """A succeeded trial with every objective (in spec order), and whether no other trial dominates it."""

    trial: str
    values: tuple[float, ...]
    on_front: bool


@dataclass(frozen=True)
class ReportData:
    experiment: str
    namespace: str | None
    phase: str
    condition: str
    progress: str
    algorithm: str
    early_stopping: str | None
    metric: str
    direction: str
    goal: float | None
    parameters: list[ParameterAxis]
    trials: list[TrialRow]
    history_by_index: list[HistoryPoint]
    history_by_time: list[HistoryPoint]
    curves: list[Curve]
    importance: Importance
    slice_parameters: list[str]
    top_trials: list[TrialRow]
    best: TrialRow | None
    phase_counts: dict[str, int] = field(default_factory=dict)
    objectives: list[tuple[str, str]] = field(default_factory=list)  # (metric, direction); multi-objective only
    pareto: list[ParetoPoint] = field(default_factory=list)
    history_marks: list[HistoryMark] = field(default_factory=list)  # in index order

    @property
    def pareto_front(self) -> list[ParetoPoint]:
        return [p for p in self.pareto if p.on_front]

    @property
    def unscored_trials(self) -> list[TrialRow]:
        """Finished trials without an objective: failures, and stops before the first report."""
        return [t for t in self.trials if _unscored(t)]

    @property
    def scored_trials(self) -> list[TrialRow]:
        return [t for t in self.trials if t.objective is not None]

    @property
    def curves_on_log_scale(self) -> bool:
        """Positive curves spanning over two decades (losses falling from 30 to 0.01) read better on a log axis."""
        values = [v for c in self.curves for v in c.values]
        return bool(values) and min(values) > 0 and max(values) / min(values) > LOG_SCALE_RATIO

    def axis(self, name: str) -> ParameterAxis:
        return next(a for a in self.parameters if a.name == name)


def build_report_data(experiment: Experiment, trials: Sequence[Trial], *, seed: int = 0) -> ReportData:
    """Shape an experiment and its trials into everything the charts and the table need."""
    spec, status = experiment.spec, experiment.status
    objective = spec.objective
    ordered = sorted(trials, key=lambda t: t.spec.index)
    rows = [_row(t) for t in ordered]
    axes = [_axis(p.name, p.type, p.feasible_space.scale, p.feasible_space.list) for p in spec.parameters]
    counted = [r for r in rows if r.phase is TrialPhase.succeeded and r.objective is not None]
    best = None
    for r in counted:
        if best is None or objective.is_better(r.score, best.score):
            best = r
    scored = [r for r in rows if r.objective is not None]
    top = sorted(scored, key=lambda r: objective.loss(r.score))[:N_TOP_TRIALS]
    pareto = _pareto(experiment, trials)
    if objective.is_multi:  # the front is the answer: list it (best first objective first) instead of a top ten
        on_front = {p.trial for p in pareto if p.on_front}
        top = sorted([r for r in scored if r.name in on_front], key=lambda r: objective.loss(r.score))
    importance = parameter_importance(axes, [(r.parameters, objective.loss(r.score)) for r in scored], seed=seed)
    ranked = [name for name, _ in importance.ranking] or [a.name for a in axes]
    condition = status.conditions[0] if status.conditions else None
    counts = count(trials).model_dump(by_alias=True)  # from the trials: a cluster status may lag
    return ReportData(
        experiment=experiment.name,
        namespace=experiment.metadata.namespace,
        phase=status.phase.value,
        condition=f"{condition.reason}: {condition.message}" if condition else "",
        progress=status.progress,
        algorithm=spec.algorithm.name,
        early_stopping=spec.early_stopping.name if spec.early_stopping else None,
        metric=objective.primary.metric_name,
        direction=objective.primary.type.value,
        goal=objective.goal,
        parameters=axes,
        trials=rows,
        history_by_index=_history(scored, objective.is_better, status.start_time, key=lambda r: r.index),
        history_by_time=[p for p in _history([r for r in scored if r.completion_time is not None], objective.is_better,
                                             status.start_time or _earliest_start(rows), key=lambda r: r.completion_time)
                         if p.elapsed_s is not None],
        curves=[c for t in ordered if (c := _curve(t, objective.primary.metric_name)) is not None],
        importance=importance,
        slice_parameters=ranked[:N_SLICE_PARAMETERS],
        top_trials=top,
        best=best,
        phase_counts={k: v for k, v in counts.items() if v},
        objectives=[(t.metric_name, t.type.value) for t in objective.targets] if objective.is_multi else [],
        pareto=pareto,
        history_marks=_marks(rows, status.start_time or _earliest_start(rows)),
    )


def _pareto(experiment: Experiment, trials: Sequence[Trial]) -> list[ParetoPoint]:
    """Every succeeded trial with all objectives, marked on or off the front (as `status.paretoFront`)."""
    objective = experiment.spec.objective
    if not objective.is_multi:
        return []
    on_front = {t.name for t in front_trials(experiment, trials)}
    names = [t.metric_name for t in objective.targets]
    return [ParetoPoint(t.name, tuple(t.status.objectives[n] for n in names), t.name in on_front)  # type: ignore[index]
            for t in sorted(trials, key=lambda t: t.spec.index)
            if t.phase is TrialPhase.succeeded and objective.losses(t.status.objectives or {}) is not None]


def _row(trial: Trial) -> TrialRow:
    s = trial.status
    value = s.objective if s.objective is not None and math.isfinite(s.objective) else None
    return TrialRow(trial.name, trial.spec.index, s.phase, s.reason, dict(trial.spec.parameter_assignments),
                    value, s.start_time, s.completion_time, dict(s.objectives or {}), s.message)


def _axis(name: str, kind: ParameterType, scale: Scale, values: list[float | str] | None) -> ParameterAxis:
    if kind is ParameterType.categorical:
        return ParameterAxis(name, numeric=False, log=False, categories=tuple(str(v) for v in values or ()))
    return ParameterAxis(name, numeric=True, log=scale is Scale.log)


def _earliest_start(rows: Sequence[TrialRow]) -> datetime | None:
    return min((r.start_time for r in rows if r.start_time is not None), default=None)


def _history(rows: Sequence[TrialRow], is_better: Callable[[float, float], bool], start: datetime | None, *,
             key: Callable[[TrialRow], Any]) -> list[HistoryPoint]:
    """Best-so-far counts succeeded trials only, as the engine's best trial does."""
    points, best = [], None
    for r in sorted(rows, key=key):
        if r.phase is TrialPhase.succeeded and (best is None or is_better(r.score, best)):
            best = r.score
        elapsed = (r.completion_time - start).total_seconds() if r.completion_time and start else None
        reason = None if r.phase is TrialPhase.succeeded else r.reason
        points.append(HistoryPoint(r.name, r.index, r.phase, r.score, best, elapsed, reason))
    return points


def _marks(rows: Sequence[TrialRow], start: datetime | None) -> list[HistoryMark]:
    return [HistoryMark(r.name, r.index, r.phase, r.reason, (r.message or "").splitlines()[0] if r.message else None,
                        (r.completion_time - start).total_seconds() if r.completion_time and start else None)
            for r in rows if _unscored(r)]


def _unscored(row: TrialRow) -> bool:
    return row.objective is None and row.phase.is_terminal


def _curve(trial: Trial, metric: str) -> Curve | None:
    obs = trial.status.observation(metric)
    if obs is None:
        return None
    points = [p for p in obs.curve if math.isfinite(p.value)]
    if len(points) < 2:  # one value is a result, not a curve; it is on the history charts
        return None
    return Curve(trial.name, trial.phase, [p.step for p in points], [p.value for p in points],
                 cut=trial.phase is TrialPhase.early_stopped, reason=trial.status.reason)
