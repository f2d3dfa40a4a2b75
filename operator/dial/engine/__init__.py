"""The pure planning step shared by both backends: experiment + trials -> plan."""

from dial.engine.plan import Finish, Plan, StopOrder, TrialProposal, plan
from dial.engine.template import render_job_spec
from dial.engine.trials import finalize_trial, new_trial, record_points
from dial.engine.validation import ExperimentError, SpecError, experiment_warnings, load_experiment, validate_experiment

__all__ = [
    "ExperimentError", "Finish", "experiment_warnings", "Plan", "SpecError", "StopOrder", "TrialProposal", "finalize_trial",
    "load_experiment", "new_trial", "plan", "record_points", "render_job_spec", "validate_experiment",
]
