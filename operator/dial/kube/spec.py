"""An Experiment as the API server stores it, read into the model (its ConfigMap template included), with the problems that stop it from running."""

from __future__ import annotations

from typing import Any, Callable

import yaml
from pydantic import ValidationError

from dial.api.experiment import Experiment, ExperimentStatus
from dial.engine import SpecError, validate_experiment
from dial.engine.validation import ExperimentError, parse_experiment
from dial.kube.jobs import kube_spec_errors

ConfigMaps = Callable[[str, str], dict[str, Any] | None]  # (namespace, name) -> the ConfigMap, or None


def read_experiment(raw: dict[str, Any], config_maps: ConfigMaps | None = None) -> tuple[Experiment | None, list[SpecError]]:
    """The Experiment as stored, or the problems that stop it from running (field paths included).

    A trial template kept in a ConfigMap (`trialTemplate.configMap`) is read in through `config_maps`, and
    checked like one given inline.
    """
    manifest = {key: raw[key] for key in ("apiVersion", "kind", "metadata", "spec") if key in raw}
    try:
        experiment = parse_experiment(manifest)
    except ExperimentError as exc:
        return None, exc.errors
    if experiment.spec.trial_template.config_map is not None and config_maps is not None:
        if (error := read_config_map_template(experiment, config_maps)) is not None:
            return None, [error]
    try:
        experiment.status = ExperimentStatus.model_validate(raw.get("status") or {})
    except ValidationError:
        experiment.status = ExperimentStatus()  # rewritten whole by the next status write; a damaged status must not block
    return experiment, [*validate_experiment(experiment), *kube_spec_errors(experiment)]


def read_config_map_template(experiment: Experiment, config_maps: ConfigMaps) -> SpecError | None:
    """Put the trial template from its ConfigMap under trialSpec (as Katib does), or say why it cannot be read."""
    template = experiment.spec.trial_template
    source = template.config_map
    assert source is not None
    namespace = source.config_map_namespace or experiment.metadata.namespace or "default"
    where = f"ConfigMap {namespace}/{source.config_map_name}"
    config_map = config_maps(namespace, source.config_map_name)
    if config_map is None:
        return SpecError("spec.trialTemplate.configMap", f"{where} does not exist")
    text = (config_map.get("data") or {}).get(source.template_path)
    if text is None:
        keys = ", ".join(sorted(config_map.get("data") or {})) or "none"
        return SpecError("spec.trialTemplate.configMap.templatePath",
                         f"{where} has no key {source.template_path!r} (keys: {keys})")
    try:
        trial_spec = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return SpecError("spec.trialTemplate.configMap.templatePath", f"{where} {source.template_path}: not YAML ({exc})")
    if not isinstance(trial_spec, dict):
        return SpecError("spec.trialTemplate.configMap.templatePath",
                         f"{where} {source.template_path}: expected a workload manifest, got {type(trial_spec).__name__}")
    experiment.spec.trial_template = template.model_copy(update={"trial_spec": trial_spec, "config_map": None})
    return None
