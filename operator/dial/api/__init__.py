"""The Dial API: pydantic models that are the single source of the CRDs."""

from dial.api.base import API_GROUP, API_VERSION, ApiModel
from dial.api.experiment import (
    AlgorithmSpec,
    BestTrial,
    CollectorKind,
    Condition,
    EarlyStoppingSpec,
    Experiment,
    ExperimentPhase,
    ExperimentSpec,
    ExperimentStatus,
    MetricsCollectorSpec,
    MetricsFormat,
    ObjectiveMetric,
    ObjectiveSpec,
    ObjectiveType,
    ObjectMeta,
    ParetoTrial,
    TrialCounts,
    TrialTemplate,
)
from dial.api.space import FeasibleSpace, ParameterSpec, ParameterType, ParameterValue, Scale
from dial.api.trial import MetricObservation, Trial, TrialPhase, TrialSpec, TrialStatus, trial_name

__all__ = [
    "API_GROUP", "API_VERSION", "ApiModel", "AlgorithmSpec", "BestTrial", "CollectorKind", "Condition",
    "EarlyStoppingSpec", "Experiment", "ExperimentPhase", "ExperimentSpec", "ExperimentStatus",
    "FeasibleSpace", "MetricObservation", "MetricsCollectorSpec", "MetricsFormat", "ObjectMeta",
    "ObjectiveMetric", "ObjectiveSpec", "ParetoTrial", "ObjectiveType", "ParameterSpec", "ParameterType", "ParameterValue", "Scale",
    "Trial", "TrialCounts", "TrialPhase", "TrialSpec", "TrialStatus", "TrialTemplate", "trial_name",
]
