"""Apply a plan through a Backend: the one loop that starts and stops trials and publishes status,
for `dial run` (local processes) and the operator (the Kubernetes API) alike.

Like Kueue's `GenericJob`, a backend says how to do each step for its kind of trial and nothing
about when or why: which trials to stop, in what order the stop reason and the stop go out, which
status is published and which events are news are decided here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, Sequence, Union

from dial.api.experiment import Condition, Experiment, ExperimentStatus
from dial.api.trial import Trial
from dial.api.zoom import ZoomStatus
from dial.engine.plan import Finish, Plan, StopOrder, TrialProposal, plan

BLOCKED = "TrialsBlocked"  # the Experiment condition naming why trials cannot run


@dataclass(frozen=True)
class Blocker:
    """Why trials cannot run now (a refused Job, a missing ServiceAccount): named on the experiment."""

    reason: str
    message: str


# What people are told, as the values themselves: a stop just sent, the TrialsBlocked condition with a new
# message, a search zoomed further, the experiment's finish.
Event = Union[StopOrder, Condition, ZoomStatus, Finish]


class Planner(Protocol):
    """`engine.plan`, or a wrapper around it (the Prometheus exporter times and records each plan)."""

    def __call__(self, experiment: Experiment, trials: Sequence[Trial], *, now: datetime) -> Plan: ...


class Stopper(Protocol):
    """What `stop_trial` needs of a backend."""

    def has_exited(self, trial: Trial) -> bool:
        """Whether the trial's training has already exited (then nothing is left to stop)."""

    def record_stop(self, trial: Trial) -> None:
        """Keep the trial's `stop_reason` and `stop_message` where a restarted backend will find them."""

    def terminate(self, trial: Trial) -> bool:
        """Stop the trial's run (again, if asked again); True when this call is the one that stopped it."""

    def emit(self, event: Event) -> None:
        """Tell people (an Event on the cluster, a line on the terminal)."""


class Backend(Stopper, Protocol):
    """What a backend does for the driver; each call is one step on its own kind of trial."""

    def read_trials(self, now: datetime) -> list[Trial]:
        """Every trial of the experiment, with what its run has done since the last pass folded in."""

    def start(self, proposal: TrialProposal, now: datetime) -> list[Blocker]:
        """Create and start the proposed trial; what keeps it from running."""

    def unblock(self, trials: Sequence[Trial], now: datetime) -> list[Blocker]:
        """Finish starts an earlier pass left half done; what still keeps trials from running."""

    def publish(self, status: ExperimentStatus) -> bool:
        """Store the experiment's status; False when it was not worth writing (then no event is news)."""


@dataclass
class Pass:
    """One pass of the driver: the plan it applied and what kept trials from running."""

    plan: Plan
    blockers: list[Blocker] = field(default_factory=list)


def drive(experiment: Experiment, backend: Backend, *, now: datetime, planner: Planner = plan) -> Pass:
    """Read the trials, plan, and apply the plan: stops first, then starts, then the status."""
    previous = experiment.status
    trials = backend.read_trials(now)
    current = planner(experiment, trials, now=now)
    by_name = {t.name: t for t in trials}
    for order in current.stop:
        if order.name in by_name:
            stop_trial(by_name[order.name], order, backend)
    blockers: list[Blocker] = []
    for proposal in current.create:
        blockers += backend.start(proposal, now)
    blockers += backend.unblock(trials, now)
    blocked = blocked_condition(blockers, previous, now)
    status = current.status
    if blocked is not None:
        status = status.model_copy(update={"conditions": [*status.conditions, blocked]})
    if backend.publish(status):
        if blocked is not None and _condition(previous, BLOCKED).message != blocked.message:
            backend.emit(blocked)
        for event in current.events:
            backend.emit(event)
    return Pass(current, blockers)


def stop_trial(trial: Trial, order: StopOrder, backend: Stopper) -> None:
    """Record why the trial stops, then stop it; announce the stop once it is sent."""
    if trial.status.stop_reason is None:
        if backend.has_exited(trial):
            # Its training has already exited: nothing is left to stop, and its outcome (not the
            # stop's verdict on a complete curve) is what the trial ends with.
            return
        # Recorded before the run is stopped, so a crash in between still ends it as stopped.
        trial.status.stop_reason, trial.status.stop_message = order.reason, order.message
        backend.record_stop(trial)
    if backend.terminate(trial):
        backend.emit(order)


def blocked_condition(blockers: Sequence[Blocker], previous: ExperimentStatus, now: datetime) -> Condition | None:
    """The TrialsBlocked condition naming every blocker; its transition time kept while the first reason stays."""
    if not blockers:
        return None
    reason, message = blockers[0].reason, "; ".join(b.message for b in blockers)
    before = _condition(previous, BLOCKED)
    since = before.last_transition_time if before.reason == reason else None
    return Condition(type=BLOCKED, reason=reason, message=message, last_transition_time=since or now)


def _condition(status: ExperimentStatus, kind: str) -> Condition:
    return next((c for c in status.conditions if c.type == kind), Condition(type=kind, reason="", message=""))
