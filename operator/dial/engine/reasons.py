"""Reason codes that appear in statuses, conditions and events (CamelCase, as Kubernetes does)."""

GOAL_REACHED = "GoalReached"
MAX_TRIALS_REACHED = "MaxTrialCountReached"
MAX_FAILED_REACHED = "MaxFailedTrialCountReached"
# maxFailedTrialCount unset: the first trials all failed (see plan.DEFAULT_FIRST_FAILURES).
FIRST_TRIALS_FAILED = "FirstTrialsFailed"
# The experiment ran out of trials, time or space with failures and not one success.
NO_TRIAL_SUCCEEDED = "NoTrialSucceeded"
SPACE_EXHAUSTED = "SearchSpaceExhausted"
INVALID_SPEC = "InvalidSpec"
# Accepted but without (the same) meaning in Dial: a Katib field, a parameter that reaches no trial.
SPEC_WARNING = "SpecWarning"
SUSPENDED = "Suspended"
RUNNING = "TrialsRunning"

OBJECTIVE_NOT_FINITE = "ObjectiveNotFinite"
EXPERIMENT_FINISHED = "ExperimentFinished"
INTERRUPTED = "Interrupted"
TRAINING_FAILED = "TrainingFailed"
TRAINING_SUCCEEDED = "TrainingSucceeded"
METRICS_UNAVAILABLE = "MetricsUnavailable"
TRIAL_DEADLINE = "MaxTrialSecondsExceeded"
# The Job controller's reason when activeDeadlineSeconds (our backstop for maxTrialSeconds) fires.
JOB_DEADLINE_EXCEEDED = "DeadlineExceeded"

# Trials stopped for these reasons were cut short by the user or the experiment, not by their
# own merit: they do not use up the trial budget.
NOT_COUNTED = frozenset({SUSPENDED, INTERRUPTED})
