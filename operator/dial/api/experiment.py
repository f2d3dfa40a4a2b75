"""The Experiment resource: what to tune, how to search, how to run and read a trial."""

from __future__ import annotations

import re
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, ValidatorFunctionWrapHandler, field_validator, model_validator

from dial.api import gjson
from dial.api.base import API_GROUP, API_VERSION, ApiModel, first_repeat, required_one_of
from dial.api.katib import KatibMetricsCollectorSpec, NameValue, Note, katib_alias, normalise
from dial.api.space import ParameterSpec, ParameterValue
from dial.api.warm_start import WarmStartSpec, WarmStartStatus
from dial.api.zoom import ZoomSpec, ZoomStatus


class ObjectiveType(str, Enum):
    minimize = "minimize"
    maximize = "maximize"


class MetricStrategy(str, Enum):
    """Which value of a trial's curve counts as its objective."""

    best = "best"
    latest = "latest"


MAX_OBJECTIVES = 8
SEED_MAX = 2**32 - 1
KUBERNETES_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class ObjectiveMetric(ApiModel):
    """One objective of a multi-objective experiment: a metric and whether to minimise or maximise it."""

    type: ObjectiveType
    metric_name: Annotated[str, Field(min_length=1)]

    def is_better(self, a: float, b: float) -> bool:
        """True when value `a` is strictly better than `b`."""
        return a < b if self.type is ObjectiveType.minimize else a > b

    def loss(self, value: float) -> float:
        """The value as a quantity to minimise (strategies always minimise)."""
        return value if self.type is ObjectiveType.minimize else -value


class ObjectiveSpec(ApiModel):
    """One objective (`type` + `metricName`, Katib's form) or two or more (`objectives`, a Pareto front)."""

    # The API server refuses an objective that is neither form at `kubectl apply` time (CEL); Katib's
    # objectiveMetricName stands for metricName there, as it does once normalised.
    model_config = ApiModel.model_config | {"json_schema_extra": {"x-kubernetes-validations": [
        {"rule": "has(self.objectives) ? !has(self.type) && !has(self.metricName) && !has(self.objectiveMetricName) "
                 ": has(self.type) && (has(self.metricName) || has(self.objectiveMetricName))",
         "message": "objective: give type and metricName (one objective) or objectives (two or more), not both"},
    ]}}

    type: ObjectiveType | None = None
    metric_name: Annotated[str, Field(min_length=1)] | None = None
    objectives: Annotated[list[ObjectiveMetric], Field(min_length=2, max_length=MAX_OBJECTIVES)] | None = None
    goal: float | None = None
    additional_metric_names: list[str] = Field(default_factory=list)
    metric_strategy: MetricStrategy = MetricStrategy.best
    objective_metric_name: str | None = katib_alias("objectiveMetricName")
    metric_strategies: list[NameValue] | None = katib_alias("metricStrategies")

    @model_validator(mode="after")
    def _one_form(self) -> "ObjectiveSpec":
        if self.objectives is None:
            for field, value in (("type", self.type), ("metricName", self.metric_name)):
                if value is None:
                    raise ValueError(f"{field}: required field is missing")
            return self
        if self.type is not None or self.metric_name is not None:
            raise ValueError("objectives: give either type and metricName (one objective) or objectives "
                             "(two or more), not both")
        if self.goal is not None:
            raise ValueError("goal: only for a single objective (a Pareto front has no one value to reach)")
        if repeat := first_repeat([target.metric_name for target in self.objectives]):
            raise ValueError(f"objectives[{repeat[0]}].metricName: {repeat[1]!r} is named twice")
        return self

    @property
    def targets(self) -> list[ObjectiveMetric]:
        """Every objective, the single one included, in the order given."""
        if self.objectives is not None:
            return list(self.objectives)
        return [ObjectiveMetric(type=self.type, metric_name=self.metric_name)]  # type: ignore[arg-type]

    @property
    def primary(self) -> ObjectiveMetric:
        """The first objective: the one of `status.objective`, stop rules and single-objective views."""
        return self.objectives[0] if self.objectives is not None else self.targets[0]

    @property
    def is_multi(self) -> bool:
        return self.objectives is not None

    def is_better(self, a: float, b: float) -> bool:
        """True when value `a` of the primary objective is strictly better than `b`."""
        return self.primary.is_better(a, b)

    def loss(self, value: float) -> float:
        """The primary objective's value as a quantity to minimise (strategies always minimise)."""
        return self.primary.loss(value)

    def losses(self, values: dict[str, float]) -> tuple[float, ...] | None:
        """Every objective as a loss, in order; None unless all are known."""
        if any(t.metric_name not in values for t in self.targets):
            return None
        return tuple(t.loss(values[t.metric_name]) for t in self.targets)

    def reaches_goal(self, value: float) -> bool:
        if self.goal is None:
            return False
        return value <= self.goal if self.primary.type is ObjectiveType.minimize else value >= self.goal

    @property
    def metric_names(self) -> list[str]:
        names = [t.metric_name for t in self.targets]
        return [*names, *[m for m in self.additional_metric_names if m not in names]]


class AlgorithmSpec(ApiModel):
    """A search strategy by name; `settings` are checked against that strategy's typed settings."""

    model_config = ApiModel.model_config | {"json_schema_extra": required_one_of("name", "algorithmName")}

    name: Annotated[str, Field(min_length=1)]
    settings: dict[str, Any] = Field(default_factory=dict)
    zoom: ZoomSpec | None = None
    algorithm_name: str | None = katib_alias("algorithmName")
    algorithm_settings: list[NameValue] | None = katib_alias("algorithmSettings")


class EarlyStoppingSpec(ApiModel):
    """A stop rule by name; `settings` are checked against that rule's typed settings."""

    model_config = ApiModel.model_config | {"json_schema_extra": required_one_of("name", "algorithmName")}

    name: Annotated[str, Field(min_length=1)]
    settings: dict[str, Any] = Field(default_factory=dict)
    algorithm_name: str | None = katib_alias("algorithmName")
    algorithm_settings: list[NameValue] | None = katib_alias("algorithmSettings")


class CollectorKind(str, Enum):
    stdout = "StdOut"
    file = "File"
    # TensorFlow summaries: `path` is the directory the training writes its event files to.
    tensorflow_event = "TensorFlowEvent"
    # No collector: nothing reads the trial's metrics (Katib's None, for trials that report elsewhere).
    none = "None"


class MetricsFormat(str, Enum):
    text = "TEXT"
    json = "JSON"


class MetricsCollectorSpec(ApiModel):
    """Where a trial's metrics are read: its standard output or a file it writes, as `name=value` text or JSON lines."""

    kind: CollectorKind = CollectorKind.stdout
    format: MetricsFormat = MetricsFormat.text
    path: str | None = None
    # Katib's filter: regular expressions whose first group is a metric's name and second its value,
    # instead of Dial's `name=value` pairs (TEXT only).
    metrics_format: Annotated[list[str], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _path_for_files(self) -> "MetricsCollectorSpec":
        if self.kind in (CollectorKind.file, CollectorKind.tensorflow_event) and not self.path:
            what = "the event files' directory" if self.kind is CollectorKind.tensorflow_event else "the metrics file"
            raise ValueError(f"path: required when kind is {self.kind.value} ({what})")
        if self.metrics_format is not None and self.format is not MetricsFormat.text:
            raise ValueError("metricsFormat: regular expressions read TEXT output; JSON lines are read by key")
        return self

    @field_validator("metrics_format")
    @classmethod
    def _two_groups(cls, patterns: list[str] | None) -> list[str] | None:
        for i, pattern in enumerate(patterns or []):
            try:
                groups = re.compile(pattern).groups
            except re.error as exc:
                raise ValueError(f"metricsFormat[{i}]: not a regular expression ({exc})") from None
            if groups < 2:
                raise ValueError(f"metricsFormat[{i}]: needs two groups, the metric's name and its value "
                                 f"(has {groups})")
        return patterns


class TrialParameterSpec(ApiModel):
    """A placeholder `${trialParameters.<name>}` in the template and the experiment parameter it takes (Katib)."""

    name: Annotated[str, Field(min_length=1)]
    reference: str | None = None
    description: str | None = None


PLACEHOLDER = re.compile(r"\$\{trialParameters\.([A-Za-z0-9_.-]+)\}")


class ConfigMapSource(ApiModel):
    """A trial template kept in a ConfigMap (Katib's): the operator reads `templatePath` from it."""

    config_map_name: Annotated[str, Field(min_length=1)]
    config_map_namespace: str | None = None
    template_path: Annotated[str, Field(min_length=1)]


class TrialTemplate(ApiModel):
    """A workload manifest (a Job, or just its `spec`; or another kind with pod templates) with
    `${trialParameters.NAME}` placeholders, given inline or in a ConfigMap."""

    model_config = ApiModel.model_config | {"json_schema_extra": {"x-kubernetes-validations": [
        {"rule": "has(self.trialSpec) != has(self.configMap)",
         "message": "trialTemplate: give trialSpec or configMap (one of them)"},
    ]}}

    primary_container_name: str | None = None
    # Which of the workload's pods get the metrics collector, by their labels (all when unset).
    primary_pod_labels: dict[str, str] | None = None
    trial_parameters: list[TrialParameterSpec] | None = None
    trial_spec: dict[str, Any] | None = None
    config_map: ConfigMapSource | None = None
    # GJSON paths into the workload object: the trial succeeded (failed) once the path finds an object or
    # a non-empty array. For kinds other than Job; a Job's own conditions are read directly.
    success_condition: str | None = None
    failure_condition: str | None = None
    retain: bool | None = katib_alias("retain")

    @model_validator(mode="after")
    def _one_source(self) -> "TrialTemplate":
        if (self.trial_spec is None) == (self.config_map is None):
            raise ValueError("trialSpec: give trialSpec or configMap (a template in a ConfigMap), one of them")
        return self

    @field_validator("success_condition", "failure_condition")
    @classmethod
    def _gjson(cls, condition: str | None) -> str | None:
        if condition is not None:
            try:
                gjson.parse(condition)
            except gjson.GjsonError as exc:
                raise ValueError(f"not a GJSON path Dial reads: {exc}") from None
        return condition

    @property
    def manifest(self) -> dict[str, Any]:
        """The trial's workload as given (empty until a ConfigMap template is read in)."""
        return self.trial_spec or {}

    @property
    def is_job(self) -> bool:
        """A batch/v1 Job (or only a Job's spec), as opposed to another kind of workload."""
        spec = self.manifest
        return "template" in spec or (spec.get("kind", "Job") == "Job" and spec.get("apiVersion", "batch/v1") == "batch/v1")

    @property
    def job_spec(self) -> dict[str, Any]:
        """The Job's `spec`, whether the user gave a whole Job or only its spec."""
        spec = self.manifest
        return spec.get("spec", spec) if "template" not in spec else spec

    def placeholders(self) -> set[str]:
        return set(PLACEHOLDER.findall(_flatten_strings(self.manifest)))


def _flatten_strings(obj: Any) -> str:
    if isinstance(obj, str):
        return obj
    if isinstance(obj, dict):
        return "\n".join(_flatten_strings(v) for v in obj.values())
    if isinstance(obj, list):
        return "\n".join(_flatten_strings(v) for v in obj)
    return ""


def _refuse_nas(schema: dict[str, Any]) -> None:
    """The API server says a NAS experiment is out of scope. Its `parameters` are required by a rule, not by
    `required`: a missing required field stops validation before any rule runs, and Katib's NAS examples have
    no `parameters`, so the user would read "spec.parameters: Required value" instead of the reason."""
    schema["required"] = [name for name in schema.get("required", []) if name != "parameters"]
    schema.setdefault("x-kubernetes-validations", []).extend([
        {"rule": "!has(self.nasConfig)",
         "message": "neural architecture search (Katib's nasConfig) is out of scope for Dial"},
        {"rule": "has(self.nasConfig) || has(self.parameters)", "message": "spec.parameters is required",
         "fieldPath": ".parameters", "reason": "FieldValueRequired"},
    ])


class ExperimentSpec(ApiModel):
    model_config = ApiModel.model_config | {"json_schema_extra": _refuse_nas}

    objective: ObjectiveSpec
    # maxItems bounds the CEL cost estimate of the feasibleSpace rules (the API server rejects the CRD without it).
    parameters: Annotated[list[ParameterSpec], Field(min_length=1, max_length=100)]
    # The default is the strategy with the best mean rank in benchmarks/RESULTS.md.
    algorithm: AlgorithmSpec = Field(default_factory=lambda: AlgorithmSpec(name="gp"))
    parallel_trial_count: Annotated[int, Field(ge=1)] = 1
    max_trial_count: Annotated[int, Field(ge=1)] = 10
    max_failed_trial_count: Annotated[int, Field(ge=0)] | None = None
    early_stopping: EarlyStoppingSpec | None = None
    metrics_collector: MetricsCollectorSpec = Field(default_factory=MetricsCollectorSpec)
    trial_template: TrialTemplate
    # numpy's seed range; a negative seed would pass here and fail in the first proposal.
    seed: Annotated[int, Field(ge=0, le=SEED_MAX)] = 0
    suspend: bool = False
    max_trial_seconds: Annotated[int, Field(ge=1)] | None = None
    max_experiment_seconds: Annotated[int, Field(ge=1)] | None = None
    max_gpu_hours: Annotated[float, Field(gt=0)] | None = None
    warm_start: WarmStartSpec | None = None
    metrics_collector_spec: KatibMetricsCollectorSpec | None = katib_alias("metricsCollectorSpec")
    resume_policy: Literal["Never", "LongRunning", "FromVolume"] | None = katib_alias("resumePolicy")
    # Accepted by the schema only so that the API server can say why it is refused (below).
    nas_config: dict[str, Any] | None = katib_alias("nasConfig")

    @model_validator(mode="after")
    def _unique_names(self) -> "ExperimentSpec":
        if repeat := first_repeat([p.name for p in self.parameters]):
            raise ValueError(f"parameters[{repeat[0]}].name: {repeat[1]!r} is declared twice")
        return self

    def parameter(self, name: str) -> ParameterSpec:
        return next(p for p in self.parameters if p.name == name)


class ExperimentPhase(str, Enum):
    pending = "Pending"
    running = "Running"
    suspended = "Suspended"
    succeeded = "Succeeded"
    failed = "Failed"


class Condition(ApiModel):
    """A Kubernetes-style condition: type, status, reason, message."""

    type: str
    status: str = "True"
    reason: str
    message: str = ""
    last_transition_time: datetime | None = None


class BestTrial(ApiModel):
    """The best succeeded trial of a single-objective experiment (multi-objective ones have `paretoFront`)."""

    name: str
    parameters: dict[str, ParameterValue]
    objective: float


class ParetoTrial(ApiModel):
    """A trial on the Pareto front: no other succeeded trial is at least as good in every objective and better in one."""

    name: str
    parameters: dict[str, ParameterValue]
    objectives: dict[str, float]


class TrialCounts(ApiModel):
    pending: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    early_stopped: int = 0
    metrics_unavailable: int = 0

    @property
    def active(self) -> int:
        return self.pending + self.running

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.early_stopped + self.metrics_unavailable


class BudgetUsage(ApiModel):
    """What the experiment has spent of its time and GPU budgets."""

    elapsed_seconds: float = 0.0
    gpu_hours: float = 0.0
    gpus_per_trial: float = 0.0


class ExperimentStatus(ApiModel):
    phase: ExperimentPhase = ExperimentPhase.pending
    conditions: list[Condition] = Field(default_factory=list)
    trials: TrialCounts = Field(default_factory=TrialCounts)
    trials_created: int = 0
    trials_done: int = 0
    progress: str = "0/0"
    # The strategy by Dial's name, whichever name the spec gave it (Katib's algorithmName, an alias): what
    # `kubectl get experiments -o wide` shows, in one form.
    algorithm: str | None = None
    best_trial: BestTrial | None = None
    best_objective: float | None = None
    # Multi-objective only: the non-dominated succeeded trials (at most MAX_PARETO_FRONT, spread
    # along the front) and how many there are in all.
    pareto_front: list[ParetoTrial] | None = None
    pareto_front_size: int | None = None
    start_time: datetime | None = None
    completion_time: datetime | None = None
    budget: BudgetUsage = Field(default_factory=BudgetUsage)
    warm_start: WarmStartStatus | None = None
    zoom: ZoomStatus | None = None


class ObjectMeta(ApiModel):
    """The part of Kubernetes metadata Dial reads; the rest is kept as-is by the API server."""

    model_config = ApiModel.model_config | {"extra": "allow"}

    name: Annotated[str, Field(pattern=KUBERNETES_NAME_PATTERN, max_length=52)]
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class Experiment(ApiModel):
    api_version: str = f"{API_GROUP}/{API_VERSION}"
    kind: str = "Experiment"
    metadata: ObjectMeta
    spec: ExperimentSpec
    status: ExperimentStatus = Field(default_factory=ExperimentStatus)
    # What reading Katib's fields had to say (see dial.api.katib); never part of the manifest.
    _katib_warnings: list[Note] = PrivateAttr(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _from_katib(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> "Experiment":
        """Katib's names become Dial's before any field is read, so everything after sees one form."""
        warnings: list[Note] = []
        if isinstance(data, dict):
            normalised = normalise(data)
            if normalised.errors:
                raise ValueError(str(normalised.errors[0]))
            data, warnings = normalised.data, normalised.warnings
        experiment = handler(data)
        experiment._katib_warnings = warnings
        return experiment

    @property
    def warnings(self) -> list[Note]:
        """Katib fields that were accepted but mean nothing (or something else) in Dial."""
        return list(self._katib_warnings)

    @model_validator(mode="after")
    def _kind(self) -> "Experiment":
        if self.api_version != f"{API_GROUP}/{API_VERSION}":
            raise ValueError(f"apiVersion: expected {API_GROUP}/{API_VERSION}, got {self.api_version!r}")
        if self.kind != "Experiment":
            raise ValueError(f"kind: expected Experiment, got {self.kind!r}")
        return self

    @property
    def name(self) -> str:
        return self.metadata.name
