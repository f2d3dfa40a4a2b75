"""Load an Experiment from YAML and check it whole, naming the field path of every problem."""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass
from typing import Any, Sequence, get_args

import yaml
from pydantic import BaseModel, ValidationError

from dial.api.base import API_GROUP, API_VERSION, ApiModel
from dial.api.experiment import KUBERNETES_NAME_PATTERN, Experiment
from dial.api.katib import KATIB_API_VERSION, katib_field_hint, normalise
from dial.api.space import PARAMETER_NAME_PATTERN, ParameterSpec, ParameterType
from dial.engine.checkpoints import CHECKPOINT_DIR, CHECKPOINT_PLACEHOLDERS, PARENT_CHECKPOINT_DIR, uses_checkpoints
from dial.engine.job_fields import unknown_fields
from dial.engine.template import is_metadata_reference, placeholder_references, primary_container
from dial.engine.workloads import UnknownWorkload, pod_slots, primary_pod_labels, primary_slots
from dial.search import STRATEGIES, SearchSpace, make_strategy
from dial.stopping import RULES, make_rule


# Stop rules that judge a trial by itself (a bound on one metric), so they mean the same with
# several objectives; the others rank trials on one objective.
MULTI_OBJECTIVE_RULES = ("threshold",)


@dataclass(frozen=True)
class SpecError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ExperimentError(ValueError):
    """An experiment that cannot run, with every problem found."""

    def __init__(self, errors: list[SpecError], source: str = "experiment"):
        self.errors = errors
        self.source = source
        super().__init__("\n".join(f"{source}: {e}" for e in errors))


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


# What a field's pattern allows, in words (pydantic would show the regular expression).
PATTERN_WORDS = {
    PARAMETER_NAME_PATTERN: "ASCII letters, digits, '_', '.' and '-', starting with a letter or '_' "
                            "(it becomes ${trialParameters.NAME} and a command-line value)",
    KUBERNETES_NAME_PATTERN: "lowercase ASCII letters, digits and '-', starting and ending with a letter or digit "
                             "(a Kubernetes name)",
}


def _pattern_message(err: dict[str, Any]) -> str | None:
    words = PATTERN_WORDS.get((err.get("ctx") or {}).get("pattern", ""))
    if words is None or not isinstance(err.get("input"), str):
        return None
    value = err["input"]
    bad = sorted({c for c in value if not (c.isascii() and (c.isalnum() or c in "_.-"))})
    which = f": {', '.join(repr(c) for c in bad)} {'is' if len(bad) == 1 else 'are'} not allowed" if bad else ""
    return f"{value!r} is not a valid name{which}; use {words}"


def _known_fields(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> list[str]:
    """The field names, as a user writes them, of the model found at `loc` under `model`."""
    for part in loc:
        if model is None:
            return []
        if isinstance(part, int):
            continue
        field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        if field is None:
            return []
        model = _model_in(field.annotation)
    if model is None:
        return []
    # Resources are camelCase on the wire; algorithm and rule settings follow Katib's snake_case.
    camel = issubclass(model, ApiModel)
    # Katib's aliases are accepted on the way in but are not fields to suggest.
    return [(f.alias or n) if camel else n for n, f in model.model_fields.items() if not f.exclude]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if (found := _model_in(arg)) is not None:
            return found
    return None


def _unknown_field_message(field: Any, known: list[str]) -> str:
    if (hint := katib_field_hint(str(field))) is not None:
        return f"unknown field here: {hint}"
    close = difflib.get_close_matches(str(field), known, n=1, cutoff=0.6) if known else []
    if not close:
        lowered = {k.lower().replace("_", ""): k for k in known}
        hit = next((k for key, k in lowered.items() if key.startswith(str(field).lower().replace("_", ""))), None)
        close = [hit] if hit else []
    if close:
        return f"unknown field (did you mean {close[0]!r}?)"
    return f"unknown field (known: {', '.join(known)})" if known else "unknown field"


def errors_from_validation(exc: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> list[SpecError]:
    """Pydantic's errors as field paths; `model` (the validated class) lets unknown fields get a suggestion."""
    errors = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
        path = _path(loc)
        message = err["msg"].removeprefix("Value error, ")
        # Validators name a sub-field as "feasibleSpace.min: ..." - fold it into the path.
        head, sep, rest = message.partition(": ")
        if sep and head.replace(".", "").replace("[", "").replace("]", "").isalnum() and " " not in head:
            path, message = f"{path}.{head}" if path else head, rest
        if err["type"] == "extra_forbidden":
            message = _unknown_field_message(loc[-1] if loc else "", _known_fields(model, loc[:-1]))
        elif err["type"] == "string_pattern_mismatch" and (words := _pattern_message(err)) is not None:
            message = words
        elif err["type"] == "missing":
            message = "required field is missing"
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        errors.append(SpecError(path, message))
    return errors


def parse_experiment(data: Any, source: str = "experiment") -> Experiment:
    """Validate a decoded manifest into an Experiment (fields only; see `validate_experiment`)."""
    if not isinstance(data, dict):
        raise ExperimentError([SpecError("", f"expected a mapping (an Experiment manifest), got {type(data).__name__}")], source)
    # Before any field: a wrong apiVersion explains every error after it, so it is the only one reported.
    dial = f"{API_GROUP}/{API_VERSION}"
    if (api_version := data.get("apiVersion", dial)) != dial:
        hint = (f"; Dial reads Katib's Experiment as it is, so change only apiVersion to {dial}"
                if api_version == KATIB_API_VERSION else "")
        raise ExperimentError([SpecError("apiVersion", f"expected {dial}, got {api_version!r}{hint}")], source)
    if errors := normalise(data).errors:
        raise ExperimentError([SpecError(e.path, e.message) for e in errors], source)
    try:
        return Experiment.model_validate(data)
    except ValidationError as exc:
        raise ExperimentError(errors_from_validation(exc, model=Experiment), source) from None


def load_experiment(text: str, source: str = "experiment") -> Experiment:
    """Parse YAML text into a runnable Experiment, or raise ExperimentError naming each problem."""
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ExperimentError([SpecError("", f"malformed YAML: {where}{getattr(exc, 'problem', None) or exc}")], source) from None
    experiments = [d for d in documents if isinstance(d, dict) and d.get("kind", "Experiment") == "Experiment"]
    if len(experiments) != 1:
        raise ExperimentError([SpecError("", _not_one_experiment(documents, len(experiments)))], source)
    experiment = parse_experiment(experiments[0], source)
    errors = validate_experiment(experiment)
    if errors:
        raise ExperimentError(errors, source)
    return experiment


def _describe(document: Any) -> str:
    if isinstance(document, list):
        return f"a list of {len(document)} item{'s' if len(document) != 1 else ''}"
    if isinstance(document, dict):
        return f"a {document.get('kind')} manifest" if document.get("kind") else "a mapping without kind"
    return f"a {type(document).__name__} ({str(document)[:40]!r})"


def _not_one_experiment(documents: list[Any], n_experiments: int) -> str:
    if not documents:
        return "the file is empty: expected an Experiment mapping (apiVersion: dial.dev/v1alpha1, kind: Experiment)"
    if n_experiments > 1:
        return f"expected one Experiment document, found {n_experiments}: put each experiment in its own file"
    got = ", ".join(_describe(d) for d in documents[:3]) + (", ..." if len(documents) > 3 else "")
    hint = ""
    if any(isinstance(d, dict) and d.get("kind") == "Job" for d in documents):
        hint = ("; a Job is the trial template, not the experiment: put it under spec.trialTemplate.trialSpec "
                "of an Experiment (see examples/peaks/experiment.yaml)")
    return f"expected an Experiment mapping (kind: Experiment), got {got}{hint}"


def validate_experiment(experiment: Experiment) -> list[SpecError]:
    """Cross-field checks that the schema cannot express: settings, template, strategy vs space."""
    spec = experiment.spec
    errors: list[SpecError] = condition_errors(spec.parameters)
    space = SearchSpace.from_parameters(spec.parameters)
    strategy = STRATEGIES.get(spec.algorithm.name)
    try:
        make_strategy(spec.algorithm.name, spec.algorithm.settings, space, seed=spec.seed,
                      n_objectives=len(spec.objective.targets))
    except ValidationError as exc:
        errors += errors_from_validation(exc, "spec.algorithm.settings", strategy.Settings if strategy else None)
    except ValueError as exc:
        names_algorithm = "unknown algorithm" in str(exc) or "objectives use one of" in str(exc)
        errors.append(SpecError("spec.algorithm.name" if names_algorithm else "spec.algorithm", str(exc)))
    if spec.early_stopping is not None and spec.objective.is_multi and spec.early_stopping.name not in MULTI_OBJECTIVE_RULES:
        errors.append(SpecError("spec.earlyStopping.name",
                                f"{spec.early_stopping.name} compares trials on one objective; with "
                                f"{len(spec.objective.targets)} objectives use {', '.join(MULTI_OBJECTIVE_RULES)} "
                                "or no early stopping"))
    elif spec.early_stopping is not None:
        try:
            rule = make_rule(spec.early_stopping.name, spec.early_stopping.settings, spec.objective)
            if rule.metric not in spec.objective.metric_names:
                errors.append(SpecError("spec.earlyStopping.settings.metric_name",
                                        f"{rule.metric!r} is not collected, so the rule would never fire: add it to "
                                        f"spec.objective.additionalMetricNames (collected now: "
                                        f"{', '.join(spec.objective.metric_names)})"))
        except ValidationError as exc:
            errors += errors_from_validation(exc, "spec.earlyStopping.settings", RULES[spec.early_stopping.name].Settings)
        except ValueError as exc:
            errors.append(SpecError("spec.earlyStopping.name", str(exc)))
    errors += _template_errors(experiment)
    for i, name in enumerate(spec.warm_start.experiments if spec.warm_start is not None else []):
        if name == experiment.name:
            errors.append(SpecError(f"spec.warmStart.experiments[{i}]", "an experiment cannot warm start from itself"))
    if spec.algorithm.zoom is not None and spec.objective.is_multi:
        errors.append(SpecError("spec.algorithm.zoom", "zooms in around the best trial; a multi-objective experiment "
                                                       "has a Pareto front, not one best trial"))
    # (A strategy without a `why_no_*` says why with its checkpoint errors, `_checkpoint_errors`.)
    elif spec.algorithm.zoom is not None and strategy is not None and not strategy.supports_zoom and strategy.why_no_zoom:
        errors.append(SpecError("spec.algorithm.zoom", strategy.why_no_zoom))
    elif spec.algorithm.zoom is not None and all(p.feasible_space.list is not None for p in spec.parameters):
        errors.append(SpecError("spec.algorithm.zoom", "no int or double range to narrow: every parameter is a list"))
    if spec.warm_start is not None and strategy is not None and not strategy.supports_warm_start and strategy.why_no_warm_start:
        errors.append(SpecError("spec.warmStart", strategy.why_no_warm_start))
    return errors


def condition_errors(parameters: Sequence[ParameterSpec]) -> list[SpecError]:
    """`activeWhen` must name another, categorical parameter and some of its values, without cycles."""
    errors: list[SpecError] = []
    by_name = {p.name: p for p in parameters}
    for i, p in enumerate(parameters):
        if p.active_when is None:
            continue
        path = f"spec.parameters[{i}].activeWhen"
        parent = by_name.get(p.active_when.parameter)
        if parent is None:
            errors.append(SpecError(f"{path}.parameter", f"{p.active_when.parameter!r} is not a parameter of this experiment"))
            continue
        if parent.name == p.name:
            errors.append(SpecError(f"{path}.parameter", f"parameter {p.name!r} cannot depend on itself"))
            continue
        if parent.type is not ParameterType.categorical:
            errors.append(SpecError(f"{path}.parameter", f"{parent.name!r} is {parent.type.value}: a condition needs "
                                                         "a categorical parameter"))
            continue
        choices = [str(v) for v in parent.feasible_space.list or ()]
        for j, value in enumerate(p.active_when.values):
            if str(value) not in choices:
                errors.append(SpecError(f"{path}.values[{j}]", f"{value!r} is not one of {parent.name!r}'s values {choices}"))
        chain = [p.name]
        while (cursor := by_name.get(chain[-1])) is not None and cursor.active_when is not None:
            chain.append(cursor.active_when.parameter)
            if chain[-1] == p.name:
                errors.append(SpecError(path, f"conditions form a cycle: {' -> '.join(chain)}"))
                break
            if chain[-1] in chain[:-1]:
                break  # a cycle further up: reported at its own members
    return errors


def _template_errors(experiment: Experiment) -> list[SpecError]:
    spec = experiment.spec
    template = spec.trial_template
    if template.trial_spec is None:
        return []  # in a ConfigMap: checked by the operator once it has read it
    errors: list[SpecError] = [SpecError(path, message) for path, message in unknown_fields(template.trial_spec)]
    if template.is_job:
        errors += _job_container_errors(experiment)
    else:
        errors += _workload_errors(experiment)
    names = {p.name for p in spec.parameters}
    references = placeholder_references(template)
    errors += _checkpoint_errors(experiment)
    # Checkpoint placeholders are the backend's, not parameters; reported above when misused.
    used = template.placeholders() - set(CHECKPOINT_PLACEHOLDERS)
    references = {name: ref for name, ref in references.items() if name not in CHECKPOINT_PLACEHOLDERS}
    for placeholder in sorted(used - set(references)):
        errors.append(SpecError("spec.trialTemplate.trialParameters",
                                f"${{trialParameters.{placeholder}}} is used in trialSpec but not declared"))
    if template.trial_parameters is None:
        for placeholder in sorted(used - names):
            errors.append(SpecError("spec.trialTemplate.trialSpec",
                                    f"${{trialParameters.{placeholder}}} is used but {placeholder!r} is not a parameter "
                                    "of this experiment"))
    else:
        for i, declared in enumerate(template.trial_parameters):
            if declared.name in CHECKPOINT_PLACEHOLDERS:
                continue
            ref = references[declared.name]
            if ref not in names and not is_metadata_reference(ref):
                errors.append(SpecError(f"spec.trialTemplate.trialParameters[{i}].reference",
                                        f"{ref!r} is not a parameter of this experiment"))
    referenced = {ref for name, ref in references.items() if name in used}
    declared = set(references.values())
    for i, p in enumerate(spec.parameters):
        # Declared in trialParameters but placed nowhere: a warning (template_warnings), as Katib's own
        # examples do it (Tekton's); never declared at all is a mistake.
        if p.name not in referenced and p.name not in declared:
            errors.append(SpecError(f"spec.parameters[{i}].name",
                                    f"parameter {p.name!r} is never used in trialTemplate "
                                    f"(add ${{trialParameters.{p.name}}} to the container's command or args)"))
    return errors


def _job_container_errors(experiment: Experiment) -> list[SpecError]:
    template = experiment.spec.trial_template
    try:
        primary_container(template.job_spec, template.primary_container_name)
    except KeyError:
        containers = template.job_spec.get("template", {}).get("spec", {}).get("containers", [])
        if template.primary_container_name and containers:
            have = ", ".join(repr(c.get("name")) for c in containers)
            return [SpecError("spec.trialTemplate.primaryContainerName",
                              f"no container named {template.primary_container_name!r} in trialSpec (has {have})")]
        return [SpecError("spec.trialTemplate.trialSpec", "no containers in template.spec")]
    return []


def _workload_errors(experiment: Experiment) -> list[SpecError]:
    """A kind other than Job: its pod templates must be found, and the primary pods and container in them."""
    template = experiment.spec.trial_template
    try:
        slots = pod_slots(copy.deepcopy(template.manifest))
    except UnknownWorkload as exc:
        return [SpecError("spec.trialTemplate.trialSpec", str(exc))]
    labels = primary_pod_labels(template.manifest, template.primary_pod_labels)
    primary = primary_slots(slots, labels)
    if not primary:
        seen = "; ".join(f"{s.path}: {s.labels or '{}'}" for s in slots)
        return [SpecError("spec.trialTemplate.primaryPodLabels",
                          f"no pod template of the {template.manifest.get('kind')} has the labels "
                          f"{labels} (pods get: {seen})")]
    if not any(s.container(template.primary_container_name) is not None for s in primary):
        have = sorted({n for s in primary for n in s.names()})
        return [SpecError("spec.trialTemplate.primaryContainerName",
                          f"no container named {template.primary_container_name!r} in the primary pods "
                          f"({', '.join(s.path for s in primary)}; containers: {', '.join(have) or 'none'})")]
    return []


def experiment_warnings(experiment: Experiment) -> list[SpecError]:
    """What is accepted but probably not meant: Katib fields without a Dial meaning, parameters that reach no
    trial."""
    warnings = [SpecError(note.path, note.message) for note in experiment.warnings]
    template = experiment.spec.trial_template
    if template.config_map is not None:
        source = template.config_map
        warnings.append(SpecError("spec.trialTemplate.configMap",
                                  f"the trial template is read from ConfigMap {source.config_map_name!r} "
                                  f"({source.template_path}) when the operator runs the experiment; it is not "
                                  "checked here"))
    if template.trial_spec is None or template.trial_parameters is None:
        return warnings
    used = template.placeholders()
    for i, declared in enumerate(template.trial_parameters):
        if declared.name not in used and declared.name not in CHECKPOINT_PLACEHOLDERS:
            warnings.append(SpecError(f"spec.trialTemplate.trialParameters[{i}].name",
                                      f"${{trialParameters.{declared.name}}} appears nowhere in trialSpec, so "
                                      f"{declared.reference or declared.name!r} reaches no trial: every trial runs "
                                      "with the same value"))
    return warnings


CHECKPOINT_MEANING = {CHECKPOINT_DIR: "the directory this trial writes its checkpoint to",
                      PARENT_CHECKPOINT_DIR: "the checkpoint it resumes, empty in generation 0"}


def _checkpoint_errors(experiment: Experiment) -> list[SpecError]:
    """pbt trials must read and write checkpoints; other algorithms have none to give."""
    spec = experiment.spec
    used = spec.trial_template.placeholders()
    errors: list[SpecError] = []
    if uses_checkpoints(experiment):
        # Neither placeholder is Katib's convention (katib_checkpoints): the directory is mounted, not named.
        for placeholder in CHECKPOINT_PLACEHOLDERS if used & set(CHECKPOINT_PLACEHOLDERS) else ():
            if placeholder not in used:
                errors.append(SpecError("spec.trialTemplate.trialSpec",
                                        f"algorithm {spec.algorithm.name} needs ${{trialParameters.{placeholder}}} "
                                        f"({CHECKPOINT_MEANING[placeholder]}) in the training container's command, "
                                        "args or env"))
        if spec.algorithm.zoom is not None:
            errors.append(SpecError("spec.algorithm.zoom", "pbt continues its members' training in one fixed space; "
                                    "it cannot zoom"))
        if spec.warm_start is not None:
            errors.append(SpecError("spec.warmStart", "pbt members resume checkpoints of this experiment's trials; "
                                    "earlier experiments' trials have none to give"))
        for i, p in enumerate(spec.parameters):
            if p.name in CHECKPOINT_PLACEHOLDERS:
                errors.append(SpecError(f"spec.parameters[{i}].name",
                                        f"{p.name!r} is reserved for pbt's checkpoint placeholder; rename the parameter"))
    else:
        for placeholder in sorted(used & set(CHECKPOINT_PLACEHOLDERS)):
            errors.append(SpecError("spec.trialTemplate.trialSpec",
                                    f"${{trialParameters.{placeholder}}} is only provided by algorithm pbt "
                                    f"(this experiment uses {spec.algorithm.name})"))
    return errors
