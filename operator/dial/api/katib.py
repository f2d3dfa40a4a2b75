"""Katib's Experiment, read as Dial's: its field names and shapes normalised into Dial's one form.

A Katib user changes only `apiVersion`. Everything Katib names differently (`objectiveMetricName`,
`algorithmName` with `algorithmSettings` as name/value strings, `parameterType`,
`feasibleSpace.distribution`, `metricsCollectorSpec`, `metricStrategies`) is rewritten into Dial's
fields before the models validate, so the rest of Dial sees one form. A Katib field without a meaning
in Dial is accepted with a warning; a Katib name used the wrong way is an error naming Dial's meaning.
`normalise` is pure: the same manifest gives the same result and the same notes.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from dial.api.base import ApiModel

KATIB_API_VERSION = "kubeflow.org/v1beta1"

# Katib's algorithm names that Dial has under another name (the others are the same in both).
ALGORITHM_NAMES = {"bayesianoptimization": "bayesian"}
NAS_ALGORITHMS = ("enas", "darts")
DISTRIBUTION_SCALES = {"uniform": "linear", "logUniform": "log", "normal": "linear", "logNormal": "log"}
RESUME_POLICIES = {
    "Never": "Dial keeps no suggestion service to tear down; a finished experiment still resumes when "
             "maxTrialCount is raised",
    "LongRunning": "Dial keeps nothing running between trials: strategies are pure functions of the trials' "
                   "history, so a finished experiment resumes when maxTrialCount is raised",
    "FromVolume": "Dial has no suggestion state to keep on a volume: a restarted operator rebuilds it from the "
                  "trials' history (pbt's checkpoint claim is created whatever the policy)",
}
PARAMETER_TYPES = ("double", "int", "categorical", "discrete")
# Katib's default TEXT filter and the form its mnist examples log, as metricsFormat regular expressions.
CUSTOM_COLLECTOR_FORMATS = (r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)",
                            r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}")
COLLECTOR_KINDS = ("StdOut", "File", "TensorFlowEvent", "None", "Custom", "PrometheusMetric")
METRIC_STRATEGIES = ("min", "max", "latest")

# Where each Katib name belongs, for the message when one turns up in the wrong place.
KATIB_FIELDS = {
    "objectiveMetricName": ("spec.objective", "metricName"),
    "metricStrategies": ("spec.objective", "metricStrategy"),
    "algorithmName": ("spec.algorithm or spec.earlyStopping", "name"),
    "algorithmSettings": ("spec.algorithm or spec.earlyStopping", "settings"),
    "parameterType": ("spec.parameters[]", "type"),
    "distribution": ("spec.parameters[].feasibleSpace", "scale"),
    "metricsCollectorSpec": ("spec", "metricsCollector"),
    "resumePolicy": ("spec", None),
    "nasConfig": ("spec", None),
    "retain": ("spec.trialTemplate", None),
    "primaryPodLabels": ("spec.trialTemplate", "primaryPodLabels"),
    "successCondition": ("spec.trialTemplate", "successCondition"),
    "failureCondition": ("spec.trialTemplate", "failureCondition"),
    "configMap": ("spec.trialTemplate", "configMap"),
}


@dataclass(frozen=True)
class Note:
    """A warning or an error about one field, by its path in the manifest."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass
class Normalised:
    """A manifest in Dial's form, with what the rewrite had to say."""

    data: dict[str, Any]
    warnings: list[Note] = field(default_factory=list)
    errors: list[Note] = field(default_factory=list)


def katib_field_hint(name: str) -> str | None:
    """For an unknown field that is Katib's: where it belongs and Dial's name for it."""
    if name not in KATIB_FIELDS:
        return None
    where, dial = KATIB_FIELDS[name]
    return f"Katib's {name} belongs in {where}" + (f" (Dial's {dial})" if dial and dial != name else "")


def setting_value(value: Any) -> Any:
    """Katib's settings are strings ("10", "0.2", "true", "ipop"); Dial's settings are typed."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        return value
    return number if math.isfinite(number) else value


def number_value(value: Any) -> Any:
    """Katib writes bounds as strings ("0.01"); a string that is not a number is left for the model to refuse."""
    if isinstance(value, str):
        converted = setting_value(value)
        return converted if isinstance(converted, (int, float)) and not isinstance(converted, bool) else value
    return value


def normalise(manifest: dict[str, Any]) -> Normalised:
    """Rewrite Katib's fields of an Experiment manifest into Dial's; Dial's own form passes through unchanged."""
    out = Normalised(copy.deepcopy(manifest))
    spec = out.data.get("spec")
    if not isinstance(spec, dict):
        return out
    if "nasConfig" in spec:
        out.errors.append(Note("spec.nasConfig", "neural architecture search (Katib's nasConfig, ENAS and DARTS) "
                                                 "is out of scope for Dial, which tunes hyperparameters only"))
    _resume_policy(spec, out)
    if isinstance(spec.get("objective"), dict):
        _objective(spec["objective"], out)
    for key in ("algorithm", "earlyStopping"):
        if isinstance(spec.get(key), dict):
            _algorithm(spec[key], f"spec.{key}", out)
    _random_state(spec, out)
    for i, parameter in enumerate(spec.get("parameters") or []):
        if isinstance(parameter, dict):
            _parameter(parameter, f"spec.parameters[{i}]", out)
    _hyperband_resource(spec, out)
    if "metricsCollectorSpec" in spec:
        _metrics_collector(spec, out)
    if isinstance(spec.get("trialTemplate"), dict):
        _trial_template(spec["trialTemplate"], out)
    return out


def _rename(obj: dict[str, Any], katib: str, dial: str, path: str, out: Normalised) -> None:
    """Move `katib` to `dial`; both given with different values is an error naming the two."""
    if katib not in obj:
        return
    value = obj.pop(katib)
    if dial in obj and obj[dial] != value:
        out.errors.append(Note(f"{path}.{katib}", f"is Katib's name for {dial}, which is also given ({obj[dial]!r}, "
                                                  f"not {value!r}): give one of them"))
        return
    obj[dial] = value


def _resume_policy(spec: dict[str, Any], out: Normalised) -> None:
    if "resumePolicy" not in spec:
        return
    policy = spec.pop("resumePolicy")
    if policy not in RESUME_POLICIES:
        out.errors.append(Note("spec.resumePolicy", f"{policy!r} is not one of Katib's resume policies "
                                                    f"({', '.join(RESUME_POLICIES)})"))
        return
    out.warnings.append(Note("spec.resumePolicy", f"{policy} has no effect in Dial: {RESUME_POLICIES[policy]}"))


def _objective(objective: dict[str, Any], out: Normalised) -> None:
    path = "spec.objective"
    if "objectiveMetricName" in objective and not isinstance(objective["objectiveMetricName"], str):
        out.errors.append(Note(f"{path}.objectiveMetricName", "Katib's name for metricName takes one metric name; "
                                                              "for several objectives use objective.objectives"))
        objective.pop("objectiveMetricName")
    _rename(objective, "objectiveMetricName", "metricName", path, out)
    if "metricStrategies" not in objective:
        return
    strategies = objective.pop("metricStrategies")
    if not isinstance(strategies, list) or not all(isinstance(s, dict) and "name" in s for s in strategies):
        out.errors.append(Note(f"{path}.metricStrategies", "Katib's metricStrategies is a list of {name, value} "
                                                           "(value min, max or latest); Dial's form is "
                                                           "metricStrategy: best or latest"))
        return
    kind = objective.get("type")
    objective_names = [objective.get("metricName")] + [o.get("metricName") for o in objective.get("objectives") or []
                                                       if isinstance(o, dict)]
    for i, strategy in enumerate(strategies):
        where = f"{path}.metricStrategies[{i}]"
        value = strategy.get("value")
        if value not in METRIC_STRATEGIES:
            out.errors.append(Note(f"{where}.value", f"{value!r} is not one of Katib's {', '.join(METRIC_STRATEGIES)}"))
            continue
        if strategy["name"] not in objective_names:
            out.warnings.append(Note(where, f"{strategy['name']!r} is not an objective: Dial records every metric's "
                                            f"latest, min and max, and the {value} strategy changes nothing"))
            continue
        best = {"minimize": "min", "maximize": "max"}.get(kind)
        if value == "latest":
            wanted = "latest"
        elif best is None or value == best:
            wanted = "best"
        else:
            out.errors.append(Note(f"{where}.value", f"{value!r} for a {kind} objective: Dial's metricStrategy takes a "
                                                     f"trial's best value ({best}) or its latest"))
            continue
        if objective.get("metricStrategy", wanted) != wanted:
            out.errors.append(Note(where, f"asks for {wanted!r} but metricStrategy is {objective['metricStrategy']!r}: "
                                          "give one of them"))
            continue
        objective["metricStrategy"] = wanted


def _algorithm(algorithm: dict[str, Any], path: str, out: Normalised) -> None:
    _rename(algorithm, "algorithmName", "name", path, out)
    if isinstance(algorithm.get("name"), str):
        name = algorithm["name"]
        if name in NAS_ALGORITHMS:
            out.errors.append(Note(f"{path}.name", f"{name} is a neural architecture search algorithm; NAS is out of "
                                                   "scope for Dial"))
        algorithm["name"] = ALGORITHM_NAMES.get(name, name)
    if "algorithmSettings" not in algorithm:
        return
    pairs = algorithm.pop("algorithmSettings")
    if not isinstance(pairs, list):
        out.errors.append(Note(f"{path}.algorithmSettings", "Katib's algorithmSettings is a list of {name, value} "
                                                            "pairs; for a mapping use settings (Dial's name)"))
        return
    settings: dict[str, Any] = {}
    for i, pair in enumerate(pairs):
        if not isinstance(pair, dict) or not isinstance(pair.get("name"), str) or set(pair) - {"name", "value"}:
            out.errors.append(Note(f"{path}.algorithmSettings[{i}]", "expected {name, value} (Katib's form of one "
                                                                     "entry of settings)"))
            continue
        if pair["name"] in settings:
            out.errors.append(Note(f"{path}.algorithmSettings[{i}].name", f"{pair['name']!r} is given twice"))
            continue
        settings[pair["name"]] = setting_value(pair.get("value"))
    if algorithm.get("settings"):
        out.errors.append(Note(f"{path}.algorithmSettings", "is Katib's form of settings, which is also given: "
                                                            "give one of them"))
        return
    algorithm["settings"] = settings


def _random_state(spec: dict[str, Any], out: Normalised) -> None:
    """Katib's `random_state` setting is Dial's experiment `seed` for strategies that have no setting of that name."""
    algorithm = spec.get("algorithm")
    if not isinstance(algorithm, dict) or not isinstance(algorithm.get("settings"), dict):
        return
    if algorithm.get("name") not in ("random", "grid") or "random_state" not in algorithm["settings"]:
        return
    state = algorithm["settings"].pop("random_state")
    if "seed" in spec and spec["seed"] != state:
        out.errors.append(Note("spec.algorithm.settings.random_state", f"is Katib's name for seed, which is also given "
                                                                       f"({spec['seed']!r}, not {state!r})"))
        return
    spec["seed"] = state


def _parameter(parameter: dict[str, Any], path: str, out: Normalised) -> None:
    if "parameterType" in parameter and parameter["parameterType"] not in PARAMETER_TYPES:
        out.errors.append(Note(f"{path}.parameterType", f"{parameter.pop('parameterType')!r} is not one of Katib's "
                                                        f"parameter types {', '.join(PARAMETER_TYPES)} (Dial's type)"))
    _rename(parameter, "parameterType", "type", path, out)
    space = parameter.get("feasibleSpace")
    if not isinstance(space, dict):
        return
    where = f"{path}.feasibleSpace"
    for bound in ("min", "max", "step"):
        if bound in space:
            space[bound] = number_value(space[bound])
    if parameter.get("type") == "discrete" and isinstance(space.get("list"), list):
        space["list"] = [number_value(v) for v in space["list"]]
    if "distribution" not in space:
        return
    distribution = space.pop("distribution")
    if distribution not in DISTRIBUTION_SCALES:
        out.errors.append(Note(f"{where}.distribution", f"{distribution!r} is not one of Katib's distributions "
                                                        f"({', '.join(DISTRIBUTION_SCALES)}); Dial's scale is "
                                                        "linear or log"))
        return
    scale = DISTRIBUTION_SCALES[distribution]
    if space.get("scale", scale) != scale:
        out.errors.append(Note(f"{where}.distribution", f"{distribution} means scale {scale}, but scale is "
                                                        f"{space['scale']!r}: give one of them"))
        return
    if space.get("list") is not None:
        out.warnings.append(Note(f"{where}.distribution", f"{distribution} has no effect on a list of values "
                                                          "(every value is equally likely)"))
        return
    space["scale"] = scale
    if distribution in ("normal", "logNormal"):
        out.warnings.append(Note(f"{where}.distribution",
                                 f"{distribution}: Dial draws {'log-' if scale == 'log' else ''}uniformly within "
                                 f"min..max (scale {scale}); the bell around the middle of the range is not reproduced"))


def _hyperband_resource(spec: dict[str, Any], out: Normalised) -> None:
    """Katib's hyperband sets the resource parameter itself, from r_l / eta**s_max up to r_l, whatever its
    feasibleSpace says (Katib's examples give min = max); Dial's hyperband keeps within the range, so the
    range becomes Katib's."""
    algorithm = spec.get("algorithm")
    if not isinstance(algorithm, dict) or algorithm.get("name") != "hyperband":
        return
    settings = algorithm.get("settings") or {}
    r_l, name = settings.get("r_l"), settings.get("resource_name")
    if not isinstance(r_l, (int, float)) or isinstance(r_l, bool) or r_l < 1 or "min_resource" in settings:
        return
    eta = settings.get("eta", 3)
    eta = int(eta) if isinstance(eta, (int, float)) and not isinstance(eta, bool) and eta >= 2 else 3
    settings["eta"] = eta  # Katib truncates eta to a whole number
    s_max = int(math.log(r_l) / math.log(eta))
    low = r_l / eta**s_max
    for i, parameter in enumerate(spec.get("parameters") or []):
        if not isinstance(parameter, dict) or parameter.get("name") != name:
            continue
        space = parameter.get("feasibleSpace")
        if not isinstance(space, dict) or (space.get("min"), space.get("max")) == (low, r_l):
            return
        if parameter.get("type") == "int":
            low, r_l = int(low), int(r_l)
        before = f"{space.get('min')}..{space.get('max')}"
        space["min"], space["max"] = low, r_l
        space.pop("step", None)
        out.warnings.append(Note(f"spec.parameters[{i}].feasibleSpace",
                                 f"hyperband sets {name!r} itself (Katib's rule: from r_l/eta**s_max = {low:g} to "
                                 f"r_l = {r_l:g}), so its range {before} becomes {low:g}..{r_l:g}"))
        return


def _metrics_collector(spec: dict[str, Any], out: Normalised) -> None:
    path = "spec.metricsCollectorSpec"
    katib = spec.pop("metricsCollectorSpec")
    if "metricsCollector" in spec:
        out.errors.append(Note(path, "is Katib's form of metricsCollector, which is also given: give one of them"))
        return
    if not isinstance(katib, dict) or set(katib) - {"source", "collector"}:
        out.errors.append(Note(path, "Katib's metricsCollectorSpec has source and collector; Dial's form is "
                                     "metricsCollector: {kind, format, path}"))
        return
    source = katib.get("source") or {}
    collector = katib.get("collector") or {}
    kind = collector.get("kind", "StdOut")
    file_path = (source.get("fileSystemPath") or {})
    dial: dict[str, Any] = {}
    if kind not in COLLECTOR_KINDS:
        out.errors.append(Note(f"{path}.collector.kind", f"{kind!r} is not one of Katib's collector kinds "
                                                         f"({', '.join(COLLECTOR_KINDS)})"))
        return
    if kind == "PrometheusMetric" or "httpGet" in source:
        out.errors.append(Note(f"{path}.collector.kind", "Dial does not scrape Prometheus endpoints: print metrics to "
                                                         "stdout or write them to a file (StdOut or File)"))
        return
    if kind == "Custom":
        where = file_path.get("path")
        out.warnings.append(Note(f"{path}.collector.customCollector",
                                 "Dial does not run custom collector containers; it reads " +
                                 (f"{where} with its File collector" if where else "the training's stdout") +
                                 ", taking both of Katib's text forms (name=value and "
                                 "{metricName: name, metricValue: value}) unless filter.metricsFormat is given"))
        kind = "File" if where else "StdOut"
    dial["kind"] = kind
    if kind in ("File", "TensorFlowEvent"):
        if "path" in file_path:
            dial["path"] = file_path["path"]
        expected = "Directory" if kind == "TensorFlowEvent" else "File"
        if file_path.get("kind", expected) != expected:
            out.errors.append(Note(f"{path}.source.fileSystemPath.kind", f"a {kind} collector reads a "
                                                                         f"{expected.lower()}, not a "
                                                                         f"{file_path['kind']!r}"))
    if "format" in file_path:
        if file_path["format"] not in ("TEXT", "JSON"):
            out.errors.append(Note(f"{path}.source.fileSystemPath.format", f"{file_path['format']!r} is not TEXT or "
                                                                           "JSON (Dial's metricsCollector.format)"))
            return
        dial["format"] = file_path["format"]
    formats = (source.get("filter") or {}).get("metricsFormat")
    if formats is not None:
        dial["metricsFormat"] = formats
    elif collector.get("kind") == "Custom" and dial.get("format", "TEXT") == "TEXT":
        # A custom collector parses what its own training prints, which Dial cannot know: Katib's two
        # documented text forms cover its examples (the custom example's mnist.log has the second).
        dial["metricsFormat"] = list(CUSTOM_COLLECTOR_FORMATS)
    spec["metricsCollector"] = dial


def _trial_template(template: dict[str, Any], out: Normalised) -> None:
    if "retain" in template:
        template.pop("retain")
        out.warnings.append(Note("spec.trialTemplate.retain", "has no effect in Dial: a trial's Job stays until its "
                                                              "experiment is deleted (an early-stopped trial's Job "
                                                              "is deleted when it is stopped)"))
    if template.get("trialSpec") is None and template.get("configMap") is None:
        return
    if template.get("trialSpec") is not None and template.get("configMap") is not None:
        out.errors.append(Note("spec.trialTemplate.configMap", "the template comes from trialSpec or from a "
                                                               "ConfigMap, not both"))


# Katib's shapes, for the CRD schema only: the API server accepts a Katib manifest as written, and
# `normalise` turns it into Dial's fields before anything else reads it (nothing is stored in these).


class NameValue(ApiModel):
    """One entry of Katib's algorithmSettings or metricStrategies (`value` is a string)."""

    name: str
    value: str | None = None


class KatibFileSystemPath(ApiModel):
    path: str | None = None
    kind: Literal["File", "Directory"] | None = None
    format: Literal["TEXT", "JSON"] | None = None


class KatibFilter(ApiModel):
    metrics_format: list[str] = Field(default_factory=list)


class KatibSource(ApiModel):
    file_system_path: KatibFileSystemPath | None = None
    filter: KatibFilter | None = None
    http_get: dict[str, Any] | None = None


class KatibCollector(ApiModel):
    kind: str = "StdOut"
    custom_collector: dict[str, Any] | None = None


class KatibMetricsCollectorSpec(ApiModel):
    """Katib's metricsCollectorSpec: read as Dial's metricsCollector."""

    source: KatibSource | None = None
    collector: KatibCollector | None = None


def katib_alias(name: str) -> Any:
    """A Katib-only field: in the CRD schema so the API server accepts it, normalised away before validation."""
    dial = KATIB_FIELDS.get(name, (None, None))[1]
    if dial and dial != name:
        text = f"Katib's form of {dial}: accepted, and read as {dial} on the way in."
    else:
        text = "Katib's field: accepted with a warning (or an error that says why), never stored."
    return Field(default=None, exclude=True, description=text)
