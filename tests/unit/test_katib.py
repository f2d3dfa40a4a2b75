"""Katib's own example Experiments pass `dial validate` with only apiVersion changed, read as Dial's one form."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from dial.api.katib import normalise, setting_value
from dial.cli import main
from dial.engine import ExperimentError, experiment_warnings, load_experiment
from dial.engine.validation import parse_experiment
from dial.metrics.parsing import parse_pattern_line
from helpers import manifest

DATA = Path(__file__).resolve().parents[1] / "data"
KATIB_EXAMPLES = sorted((DATA / "katib").rglob("*.yaml"))
DIAL_API_VERSION = "apiVersion: dial.dev/v1alpha1\nkind: Experiment"


def as_dial(path: Path) -> str:
    """The file as a migrating user has it: Katib's, with only the apiVersion changed."""
    text = path.read_text()
    assert text.count("apiVersion: kubeflow.org/v1beta1\nkind: Experiment") == 1
    return text.replace("apiVersion: kubeflow.org/v1beta1\nkind: Experiment", DIAL_API_VERSION)


def example(relative: str) -> str:
    return as_dial(DATA / "katib" / relative)


def test_the_whole_set_of_katib_examples_is_here() -> None:
    assert len(KATIB_EXAMPLES) == 29
    assert not any("nas" in p.parts for p in KATIB_EXAMPLES)


@pytest.mark.parametrize("path", KATIB_EXAMPLES, ids=lambda p: str(p.relative_to(DATA / "katib")))
def test_every_katib_example_passes_dial_validate(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy_ = tmp_path / path.name
    copy_.write_text(as_dial(path))
    assert main(["validate", str(copy_)]) == 0
    out = capsys.readouterr().out
    name = yaml.safe_load(path.read_text())["metadata"]["name"]
    assert f"experiment {name!r} is valid" in out


@pytest.mark.parametrize("path", KATIB_EXAMPLES, ids=lambda p: str(p.relative_to(DATA / "katib")))
def test_every_katib_example_is_read_into_dials_own_fields(path: Path) -> None:
    katib = yaml.safe_load(path.read_text())["spec"]
    experiment = load_experiment(as_dial(path), str(path))
    spec = experiment.spec
    assert spec.objective.metric_name == katib["objective"]["objectiveMetricName"]
    assert spec.objective.type.value == katib["objective"]["type"]
    assert spec.algorithm.name == {"bayesianoptimization": "bayesian"}.get(katib["algorithm"]["algorithmName"],
                                                                          katib["algorithm"]["algorithmName"])
    assert [p.name for p in spec.parameters] == [p["name"] for p in katib["parameters"]]
    assert [p.type.value for p in spec.parameters] == [p["parameterType"] for p in katib["parameters"]]
    # One form on the way out: none of Katib's names survive in what Dial writes (status, results, kubectl).
    wire = experiment.to_wire()["spec"]
    wire["trialTemplate"].pop("trialSpec", None)  # the workload is the user's, passed through as written
    assert not field_names(wire) & {"objectiveMetricName", "algorithmName", "algorithmSettings", "parameterType",
                                    "distribution", "metricsCollectorSpec", "metricStrategies", "resumePolicy", "retain"}


def field_names(obj: Any) -> set[str]:
    if isinstance(obj, dict):
        return set(obj) | {n for v in obj.values() for n in field_names(v)}
    if isinstance(obj, list):
        return {n for v in obj for n in field_names(v)}
    return set()


def test_bounds_given_as_strings_are_numbers() -> None:
    experiment = load_experiment(example("hp-tuning/grid.yaml"))
    lr = experiment.spec.parameter("lr").feasible_space
    assert (lr.min, lr.max, lr.step) == (0.01, 0.05, 0.005)
    assert experiment.spec.algorithm.name == "grid"


def test_algorithm_settings_become_typed_settings() -> None:
    bayesian = load_experiment(example("hp-tuning/bayesian-optimization.yaml")).spec.algorithm
    assert (bayesian.name, bayesian.settings) == ("bayesian", {"random_state": 10})
    pbt = load_experiment(example("hp-tuning/simple-pbt.yaml")).spec.algorithm.settings
    assert pbt == {"suggestion_trial_dir": "/var/log/katib/checkpoints/", "n_population": 40, "truncation_threshold": 0.2}
    cmaes = load_experiment(example("hp-tuning/cma-es.yaml")).spec.algorithm.settings
    assert cmaes == {"restart_strategy": "ipop"}


def test_early_stopping_reads_katibs_names() -> None:
    rule = load_experiment(example("early-stopping/median-stop.yaml")).spec.early_stopping
    assert rule is not None and (rule.name, rule.settings) == ("medianstop", {"min_trials_required": 1, "start_step": 2})


@pytest.mark.parametrize(("text", "value"), [("10", 10), ("0.2", 0.2), ("true", True), ("ipop", "ipop"),
                                             ("/var/log/x/", "/var/log/x/"), ("-3", -3), ("1e-3", 0.001), ("nan", "nan")])
def test_setting_strings_are_read_as_their_values(text: str, value: Any) -> None:
    assert setting_value(text) == value


def test_distributions_become_scales_and_bells_are_a_warning() -> None:
    experiment = load_experiment(example("hp-tuning/hyperopt-distribution.yaml"))
    scales = {p.name: p.feasible_space.scale.value for p in experiment.spec.parameters}
    assert scales == {"lr": "linear", "momentum": "linear", "epochs": "log", "batch_size": "log"}
    warned = {w.path for w in experiment.warnings}
    assert warned == {"spec.parameters[0].feasibleSpace.distribution", "spec.parameters[3].feasibleSpace.distribution"}


def test_metrics_collector_spec_becomes_metrics_collector() -> None:
    json_file = load_experiment(example("metrics-collector/file-metrics-collector-with-json-format.yaml"))
    assert json_file.spec.metrics_collector.to_wire() == {"kind": "File", "format": "JSON", "path": "/katib/mnist.json"}
    text_file = load_experiment(example("metrics-collector/file-metrics-collector.yaml")).spec.metrics_collector
    assert (text_file.kind.value, text_file.path) == ("File", "/katib/mnist.log")
    assert text_file.metrics_format == ["{metricName: ([\\w|-]+), metricValue: ((-?\\d+)(\\.\\d+)?)}"]
    events = load_experiment(example("kubeflow-training-operator/tfjob-mnist-with-summaries.yaml")).spec.metrics_collector
    assert (events.kind.value, events.path) == ("TensorFlowEvent", "/mnist-with-summaries-logs/test")
    regex = load_experiment(example("kubeflow-training-operator/xgboostjob-lightgbm.yaml")).spec.metrics_collector
    assert (regex.kind.value, regex.metrics_format) == ("StdOut", ["(\\w+\\s\\w+)\\s:\\s((-?\\d+)(\\.\\d+)?)"])


def test_a_custom_collector_is_read_with_dials_file_collector_and_a_warning() -> None:
    experiment = load_experiment(example("metrics-collector/custom-metrics-collector.yaml"))
    collector = experiment.spec.metrics_collector
    assert (collector.kind.value, collector.path) == ("File", "/katib/mnist.log")
    # both of Katib's text forms: its mnist.log holds `{metricName: accuracy, metricValue: 0.9}` lines
    assert parse_pattern_line("{metricName: accuracy, metricValue: 0.91};{metricName: loss, metricValue: 0.3}",
                              [re.compile(f) for f in collector.metrics_format]) == (None, {"accuracy": 0.91, "loss": 0.3})
    assert parse_pattern_line("epoch=2 loss=0.25", [re.compile(f) for f in collector.metrics_format]) == (2.0, {"loss": 0.25})
    [warning] = experiment.warnings
    assert warning.path == "spec.metricsCollectorSpec.collector.customCollector"
    assert "does not run custom collector containers" in warning.message


def test_metric_strategies_of_the_objective_set_metric_strategy() -> None:
    experiment = load_experiment(example("metrics-collector/metrics-collection-strategy.yaml"))
    assert experiment.spec.objective.metric_strategy.value == "best"  # loss: min, and the objective is minimised
    [warning] = experiment.warnings
    assert warning.path == "spec.objective.metricStrategies[0]" and "'accuracy' is not an objective" in warning.message


def test_latest_metric_strategy() -> None:
    data = yaml.safe_load(example("metrics-collector/metrics-collection-strategy.yaml"))
    data["spec"]["objective"]["metricStrategies"] = [{"name": "loss", "value": "latest"}]
    assert parse_experiment(data).spec.objective.metric_strategy.value == "latest"


@pytest.mark.parametrize(("relative", "path", "words"), [
    ("resume-experiment/long-running-resume.yaml", "spec.resumePolicy", "LongRunning has no effect in Dial"),
    ("resume-experiment/from-volume-resume.yaml", "spec.resumePolicy", "FromVolume has no effect in Dial"),
    ("early-stopping/median-stop.yaml", "spec.trialTemplate.retain", "has no effect in Dial"),
    ("hp-tuning/hyperband.yaml", "spec.parameters[2].feasibleSpace", "hyperband sets 'num-epochs' itself"),
    ("tekton/pipeline-run.yaml", "spec.trialTemplate.trialParameters[0].name", "'lr' reaches no trial"),
])
def test_katib_fields_without_a_dial_meaning_are_warnings(relative: str, path: str, words: str) -> None:
    warnings = experiment_warnings(load_experiment(example(relative)))
    assert any(w.path == path and words in w.message for w in warnings), warnings


def test_warnings_are_printed_by_dial_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "resume.yaml"
    path.write_text(example("resume-experiment/long-running-resume.yaml"))
    assert main(["validate", str(path)]) == 0
    assert f"{path}: warning: spec.resumePolicy: LongRunning has no effect in Dial" in capsys.readouterr().err


def test_hyperband_takes_katibs_resource_rule() -> None:
    experiment = load_experiment(example("hp-tuning/hyperband.yaml"))
    epochs = experiment.spec.parameter("num-epochs").feasible_space
    assert (epochs.min, epochs.max) == (1, 2)  # r_l = 2, eta = 2: s_max = 1, so 2 / 2**1 .. 2
    assert experiment.spec.algorithm.settings == {"resource_name": "num-epochs", "eta": 2, "r_l": 2}


def test_random_state_of_random_search_is_the_seed() -> None:
    data = yaml.safe_load(example("hp-tuning/random.yaml"))
    data["spec"]["algorithm"]["algorithmSettings"] = [{"name": "random_state", "value": "7"}]
    experiment = parse_experiment(data)
    assert experiment.spec.seed == 7 and experiment.spec.algorithm.settings == {}


def test_katibs_dial_form_passes_through_unchanged() -> None:
    data = manifest()
    result = normalise(data)
    assert result.data == data and not result.warnings and not result.errors


def errors_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ExperimentError) as caught:
        load_experiment(yaml.safe_dump(data))
    return [str(e) for e in caught.value.errors]


def katib_random() -> dict[str, Any]:
    return yaml.safe_load(example("hp-tuning/random.yaml"))


def test_a_wrong_api_version_is_the_only_error() -> None:
    data = katib_random()
    data["apiVersion"] = "kubeflow.org/v1beta1"
    data["spec"]["parameters"][0]["parameterType"] = "float"  # an error that would follow it
    assert errors_of(data) == ["apiVersion: expected dial.dev/v1alpha1, got 'kubeflow.org/v1beta1'; Dial reads "
                               "Katib's Experiment as it is, so change only apiVersion to dial.dev/v1alpha1"]


@pytest.mark.parametrize(("change", "expected"), [
    (lambda s: s["algorithm"].update(algorithmSettings={"random_state": "1"}),
     "spec.algorithm.algorithmSettings: Katib's algorithmSettings is a list of {name, value} pairs; for a mapping "
     "use settings (Dial's name)"),
    (lambda s: s["algorithm"].update(algorithmSettings=[{"key": "random_state"}]),
     "spec.algorithm.algorithmSettings[0]: expected {name, value} (Katib's form of one entry of settings)"),
    (lambda s: s["algorithm"].update(name="tpe"),
     "spec.algorithm.algorithmName: is Katib's name for name, which is also given ('tpe', not 'random'): give one of them"),
    (lambda s: s["objective"].update(metricStrategies={"loss": "min"}),
     "spec.objective.metricStrategies: Katib's metricStrategies is a list of {name, value} (value min, max or "
     "latest); Dial's form is metricStrategy: best or latest"),
    (lambda s: s["objective"].update(metricStrategies=[{"name": "loss", "value": "max"}]),
     "spec.objective.metricStrategies[0].value: 'max' for a minimize objective: Dial's metricStrategy takes a "
     "trial's best value (min) or its latest"),
    (lambda s: s["parameters"][0]["feasibleSpace"].update(distribution="gaussian"),
     "spec.parameters[0].feasibleSpace.distribution: 'gaussian' is not one of Katib's distributions (uniform, "
     "logUniform, normal, logNormal); Dial's scale is linear or log"),
    (lambda s: s["parameters"][1].update(parameterType="float"),
     "spec.parameters[1].parameterType: 'float' is not one of Katib's parameter types double, int, categorical, "
     "discrete (Dial's type)"),
    (lambda s: s.update(metricsCollectorSpec={"source": {"fileSystemPath": {"path": "/m", "format": "YAML"}},
                                              "collector": {"kind": "File"}}),
     "spec.metricsCollectorSpec.source.fileSystemPath.format: 'YAML' is not TEXT or JSON (Dial's "
     "metricsCollector.format)"),
    (lambda s: s.update(resumePolicy="Sometimes"),
     "spec.resumePolicy: 'Sometimes' is not one of Katib's resume policies (Never, LongRunning, FromVolume)"),
    (lambda s: s.update(metricsCollectorSpec={"collector": {"kind": "PrometheusMetric"}}),
     "spec.metricsCollectorSpec.collector.kind: Dial does not scrape Prometheus endpoints: print metrics to stdout "
     "or write them to a file (StdOut or File)"),
    (lambda s: s.update(metricsCollectorSpec={"collector": {"kind": "TensorFlowEvent"},
                                              "source": {"fileSystemPath": {"path": "/logs", "kind": "File"}}}),
     "spec.metricsCollectorSpec.source.fileSystemPath.kind: a TensorFlowEvent collector reads a directory, not a 'File'"),
    (lambda s: s.update(algorithmName="random"),
     "spec.algorithmName: unknown field here: Katib's algorithmName belongs in spec.algorithm or spec.earlyStopping "
     "(Dial's name)"),
    (lambda s: s["parameters"][0].update(distribution="uniform"),
     "spec.parameters[0].distribution: unknown field here: Katib's distribution belongs in "
     "spec.parameters[].feasibleSpace (Dial's scale)"),
])
def test_a_katib_name_used_the_wrong_way_names_the_dial_meaning(change: Any, expected: str) -> None:
    data = katib_random()
    change(data["spec"])
    assert errors_of(data) == [expected]


def test_nas_experiments_are_refused_as_out_of_scope() -> None:
    text = (DATA / "katib-nas" / "darts-cpu.yaml").read_text().replace("kubeflow.org/v1beta1", "dial.dev/v1alpha1", 1)
    with pytest.raises(ExperimentError) as caught:
        load_experiment(text)
    messages = [str(e) for e in caught.value.errors]
    assert "spec.nasConfig: neural architecture search (Katib's nasConfig, ENAS and DARTS) is out of scope for Dial, " \
           "which tunes hyperparameters only" in messages
    assert "spec.algorithm.name: darts is a neural architecture search algorithm; NAS is out of scope for Dial" in messages


def test_a_trial_kind_without_pod_templates_is_refused_naming_the_kind() -> None:
    data = katib_random()
    data["spec"]["trialTemplate"]["trialSpec"] = {"apiVersion": "ray.io/v1", "kind": "RayJob",
                                                   "spec": {"entrypoint": "python train.py ${trialParameters.learningRate} "
                                                                          "${trialParameters.momentum}"}}
    [error] = errors_of(data)
    assert error.startswith("spec.trialTemplate.trialSpec: Dial does not know where a RayJob (ray.io/v1) keeps its "
                            "pod templates")


def test_primary_pod_labels_that_pick_no_pod_are_an_error() -> None:
    data = yaml.safe_load(example("kubeflow-training-operator/tfjob-mnist-with-summaries.yaml"))
    data["spec"]["trialTemplate"]["primaryPodLabels"] = {"training.kubeflow.org/replica-type": "chief"}
    [error] = errors_of(data)
    assert error.startswith("spec.trialTemplate.primaryPodLabels: no pod template of the TFJob has the labels "
                            "{'training.kubeflow.org/replica-type': 'chief'}")


def test_a_primary_container_missing_from_the_primary_pods_is_an_error() -> None:
    data = yaml.safe_load(example("kubeflow-training-operator/mpijob-horovod.yaml"))
    data["spec"]["trialTemplate"]["primaryContainerName"] = "mpi-worker"  # in the Worker pods, not the launcher
    [error] = errors_of(data)
    assert error == ("spec.trialTemplate.primaryContainerName: no container named 'mpi-worker' in the primary pods "
                     "(spec.mpiReplicaSpecs.Launcher.template; containers: mpi-launcher)")


def test_a_condition_that_is_not_gjson_dial_reads_is_an_error() -> None:
    data = yaml.safe_load(example("kubeflow-training-operator/mpijob-horovod.yaml"))
    data["spec"]["trialTemplate"]["successCondition"] = "status.conditions.#(type==\"Succeeded\")#|@reverse"
    [error] = errors_of(data)
    assert error == "spec.trialTemplate.successCondition: not a GJSON path Dial reads: modifier '@reverse' is not " \
                    "supported (only @this)"


def test_a_configmap_template_validates_and_dial_run_says_where_to_put_it() -> None:
    from dial.local.runner import check_runnable

    experiment = load_experiment(example("trial-template/trial-configmap-source.yaml"))
    source = experiment.spec.trial_template.config_map
    assert source is not None and (source.config_map_name, source.template_path) == ("trial-templates",
                                                                                     "defaultTrialTemplate.yaml")
    with pytest.raises(ExperimentError, match="dial run cannot read ConfigMap 'trial-templates'"):
        check_runnable(experiment)


def test_trial_spec_and_config_map_together_are_an_error() -> None:
    data = katib_random()
    data["spec"]["trialTemplate"]["configMap"] = {"configMapName": "t", "templatePath": "t.yaml"}
    assert errors_of(data) == ["spec.trialTemplate.configMap: the template comes from trialSpec or from a ConfigMap, "
                               "not both"]


def test_normalise_does_not_change_its_input() -> None:
    data = katib_random()
    before = copy.deepcopy(data)
    normalise(data)
    assert data == before


def schema_problems(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    """What a structural schema with strict field validation refuses in `value`: unknown fields, wrong types,
    missing required fields (CEL rules are the integration test's: tests/integration/test_katib_examples.py)."""
    if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
        return []
    kind = schema.get("type")
    if value is None:
        return [] if schema.get("nullable") else [f"{path}: null"]
    checks = {"object": dict, "array": list, "string": str, "boolean": bool}
    if kind in checks and not isinstance(value, checks[kind]):
        return [f"{path}: not {kind}"]
    if kind in ("number", "integer") and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return [f"{path}: not {kind}"]
    if kind == "string" and "enum" in schema and value not in schema["enum"]:
        return [f"{path}: {value!r} not in {schema['enum']}"]
    problems = []
    if kind == "object" and "properties" in schema:
        problems += [f"{path}.{name}: required" for name in schema.get("required", []) if name not in value]
        for name, item in value.items():
            if name not in schema["properties"]:
                problems.append(f"{path}.{name}: unknown field")
            else:
                problems += schema_problems(item, schema["properties"][name], f"{path}.{name}")
    elif kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        for name, item in value.items():
            problems += schema_problems(item, schema["additionalProperties"], f"{path}.{name}")
    elif kind == "array":
        for i, item in enumerate(value):
            problems += schema_problems(item, schema["items"], f"{path}[{i}]")
    return problems


@pytest.mark.parametrize("path", KATIB_EXAMPLES, ids=lambda p: str(p.relative_to(DATA / "katib")))
def test_the_crd_schema_takes_every_katib_example_as_written(path: Path) -> None:
    from dial.api.crds import custom_resource_definitions

    crd = custom_resource_definitions()["dial.dev_experiments.yaml"]
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert schema_problems(yaml.safe_load(as_dial(path)), schema, "") == []


def test_the_schema_check_finds_what_strict_validation_refuses() -> None:
    from dial.api.crds import custom_resource_definitions

    schema = custom_resource_definitions()["dial.dev_experiments.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    data = yaml.safe_load(example("hp-tuning/random.yaml"))
    data["spec"]["algorithm"]["algorithmSetings"] = []
    data["spec"]["parameters"][0]["parameterType"] = "float"
    assert schema_problems(data, schema, "") == [
        ".spec.algorithm.algorithmSetings: unknown field",
        ".spec.parameters[0].parameterType: 'float' not in ['double', 'int', 'categorical', 'discrete']"]


def test_status_and_kubectl_get_show_the_algorithm_by_dials_name() -> None:
    from dial.api.crds import custom_resource_definitions
    from dial.engine import plan
    from helpers import NOW

    experiment = load_experiment(example("hp-tuning/bayesian-optimization.yaml"))
    assert plan(experiment, [], now=NOW).status.algorithm == "bayesian"  # Katib's bayesianoptimization
    columns = custom_resource_definitions()["dial.dev_experiments.yaml"]["spec"]["versions"][0]["additionalPrinterColumns"]
    assert {"name": "Algorithm", "type": "string", "jsonPath": ".status.algorithm", "priority": 1} in columns


def test_a_config_map_template_is_a_warning_that_it_is_not_checked_here() -> None:
    warnings = experiment_warnings(load_experiment(example("trial-template/trial-configmap-source.yaml")))
    assert [w.path for w in warnings] == ["spec.trialTemplate.configMap"]
    assert "read from ConfigMap 'trial-templates' (defaultTrialTemplate.yaml) when the operator runs" in warnings[0].message
