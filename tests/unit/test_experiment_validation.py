"""Experiment files: valid ones load, bad ones are refused with the field path and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dial.cli import main
from dial.engine import ExperimentError, load_experiment

from helpers import manifest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*/experiment.yaml")), ids=lambda p: p.parent.name)
def test_every_example_loads(path: Path) -> None:
    experiment = load_experiment(path.read_text(), str(path))
    assert experiment.spec.parameters


def errors_of(data: object) -> list[str]:
    with pytest.raises(ExperimentError) as info:
        load_experiment(yaml.safe_dump(data))
    return [str(e) for e in info.value.errors]


def param(name: str, kind: str, **space: object) -> dict:
    return {"name": name, "type": kind, "feasibleSpace": space}


def with_params(*params: dict) -> dict:
    data = manifest(parameters=list(params))
    container = data["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = ["python", "train.py", *[f"--{p['name']}=${{trialParameters.{p['name']}}}" for p in params]]
    return data


def test_min_greater_than_max_names_the_field() -> None:
    errors = errors_of(with_params(param("lr", "double", min=1, max=0.1)))
    assert errors == ["spec.parameters[0].feasibleSpace.min: 1 is greater than max 0.1"]


def test_log_scale_needs_positive_min() -> None:
    errors = errors_of(with_params(param("lr", "double", min=0, max=1, scale="log")))
    assert errors == ["spec.parameters[0].feasibleSpace.min: log scale needs min > 0 (got 0)"]


def test_empty_categorical_list() -> None:
    errors = errors_of(with_params(param("opt", "categorical", list=[])))
    assert len(errors) == 1 and errors[0].startswith("spec.parameters[0].feasibleSpace.list")


def test_categorical_without_list() -> None:
    errors = errors_of(with_params(param("opt", "categorical")))
    assert errors == ["spec.parameters[0].feasibleSpace.list: a categorical parameter needs a non-empty list of values"]


def test_unknown_field_is_named() -> None:
    data = manifest()
    data["spec"]["parallelTrials"] = 3
    assert errors_of(data) == ["spec.parallelTrials: unknown field (did you mean 'parallelTrialCount'?)"]


def test_missing_objective_metric() -> None:
    data = manifest()
    del data["spec"]["objective"]["metricName"]
    assert errors_of(data) == ["spec.objective.metricName: required field is missing"]


def test_bad_enum_value() -> None:
    data = manifest()
    data["spec"]["objective"]["type"] = "minimise"
    errors = errors_of(data)
    assert len(errors) == 1 and errors[0].startswith("spec.objective.type: ")
    assert "minimize" in errors[0]


def test_template_that_never_uses_a_parameter() -> None:
    data = manifest()
    data["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"] = [
        "python", "train.py", "--lr=${trialParameters.lr}"]
    errors = errors_of(data)
    assert len(errors) == 1 and errors[0].startswith("spec.parameters[1].name: parameter 'layers' is never used")


def test_undeclared_placeholder() -> None:
    data = manifest()
    data["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["args"] = [
        "--momentum=${trialParameters.momentum}"]
    assert errors_of(data) == ["spec.trialTemplate.trialSpec: ${trialParameters.momentum} is used but 'momentum' is not a parameter of this experiment"]


def test_trial_parameters_reference_unknown_parameter() -> None:
    data = manifest()
    data["spec"]["trialTemplate"]["trialParameters"] = [{"name": "lr", "reference": "learning_rate"},
                                                        {"name": "layers", "reference": "layers"}]
    assert any("'learning_rate' is not a parameter" in e for e in errors_of(data))


def test_unknown_algorithm_and_bad_settings() -> None:
    assert errors_of(manifest(algorithm={"name": "simulated-annealing"}))[0].startswith(
        "spec.algorithm.name: unknown algorithm 'simulated-annealing'")
    errors = errors_of(manifest(algorithm={"name": "bayesian", "settings": {"base_estimator": "XGB"}}))
    assert len(errors) == 1 and errors[0].startswith("spec.algorithm.settings.base_estimator:")


def test_unbounded_grid_is_refused() -> None:
    errors = errors_of(manifest(algorithm={"name": "grid"}))
    assert len(errors) == 1 and "grid needs a finite space: parameter 'lr' is continuous" in errors[0]


def test_early_stopping_settings_are_checked() -> None:
    errors = errors_of(manifest(earlyStopping={"name": "medianstop", "settings": {"start_step": 0}}))
    assert len(errors) == 1 and errors[0].startswith("spec.earlyStopping.settings.start_step:")


def test_malformed_yaml_gives_line_and_column() -> None:
    with pytest.raises(ExperimentError) as info:
        load_experiment("spec:\n  objective: [unclosed\n")
    assert "malformed YAML: line" in str(info.value)


def test_duplicate_parameter_names() -> None:
    p = param("lr", "double", min=0.1, max=1)
    assert any("declared twice" in e for e in errors_of(with_params(p, p)))


@pytest.mark.parametrize("problem", ["malformed", "min_gt_max"])
def test_dial_run_exits_2_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str], problem: str) -> None:
    path = tmp_path / "bad.yaml"
    if problem == "malformed":
        path.write_text("apiVersion: dial.dev/v1alpha1\nspec: {objective: [\n")
    else:
        path.write_text(yaml.safe_dump(with_params(param("lr", "double", min=5, max=1))))
    assert main(["run", str(path), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err
    assert ("malformed YAML" in err) if problem == "malformed" else ("spec.parameters[0].feasibleSpace.min" in err)
    assert not (tmp_path / "out").exists()


def test_unknown_primary_container_names_primary_container_name() -> None:
    data = manifest()
    data["spec"]["trialTemplate"]["primaryContainerName"] = "trainer"
    [error] = errors_of(data)
    assert error.startswith("spec.trialTemplate.primaryContainerName: no container named 'trainer'"), error
    assert error.endswith("(has 'training')"), error


@pytest.mark.parametrize("seed, words", [(-1, "greater than or equal to 0"), (1.5, "fractional part"),
                                         (2**32, "less than or equal to 4294967295")])
def test_a_negative_huge_or_fractional_seed_is_refused(seed: object, words: str) -> None:
    [error] = errors_of(manifest(seed=seed))
    assert error.startswith("spec.seed: ") and words in error


def test_a_negative_random_state_setting_is_refused() -> None:
    [error] = errors_of(manifest(algorithm={"name": "bayesian", "settings": {"random_state": -3}}))
    assert error.startswith("spec.algorithm.settings.random_state: ")


def test_a_range_with_one_value_is_refused() -> None:
    assert errors_of(with_params(param("lr", "double", min=0.5, max=0.5))) == [
        "spec.parameters[0].feasibleSpace.max: equals min (0.5), so the parameter has one value; widen the range, "
        "or write the value into the template instead"]
    assert errors_of(with_params(param("layers", "int", min=1, max=3, step=4))) == [
        "spec.parameters[0].feasibleSpace.step: 4 is wider than the range 1..3, so the parameter has one value (1); "
        "use a smaller step"]
    assert load_experiment(yaml.safe_dump(with_params(param("layers", "int", min=1, max=3, step=2))))


@pytest.mark.parametrize("text, words", [
    ("", "the file is empty: expected an Experiment mapping"),
    ("# only a comment\n", "the file is empty"),
    ("- a\n- b\n- c\n", "expected an Experiment mapping (kind: Experiment), got a list of 3 items"),
    ("apiVersion: batch/v1\nkind: Job\nspec: {}\n", "got a Job manifest; a Job is the trial template"),
])
def test_a_file_that_is_not_an_experiment_says_what_it_is(text: str, words: str) -> None:
    with pytest.raises(ExperimentError) as info:
        load_experiment(text, "f.yaml")
    assert words in str(info.value)
    assert ("spec.trialTemplate.trialSpec" in str(info.value)) == ("kind: Job" in text)


def test_a_unicode_parameter_name_says_which_characters_are_allowed() -> None:
    [error] = errors_of(with_params(param("lr_λ", "double", min=0.1, max=1)))
    assert error.startswith("spec.parameters[0].name: 'lr_λ' is not a valid name: 'λ' is not allowed; use ASCII letters")


def test_an_unknown_setting_suggests_the_field_meant() -> None:
    [error] = errors_of(manifest(earlyStopping={"name": "threshold", "settings": {"metric": "loss", "max_value": 3}}))
    assert error == "spec.earlyStopping.settings.metric: unknown field (did you mean 'metric_name'?)"
    [error] = errors_of(manifest(algorithm={"name": "bayesian", "settings": {"acquisition": "EI"}}))
    assert error.startswith("spec.algorithm.settings.acquisition: unknown field (known: base_estimator, acq_func,")


def test_an_unknown_nested_field_suggests_a_sibling() -> None:
    data = with_params(param("lr", "double", min=0.1, max=1))
    data["spec"]["parameters"][0]["feasibleSpace"]["maximum"] = 2
    assert errors_of(data) == ["spec.parameters[0].feasibleSpace.maximum: unknown field (did you mean 'max'?)"]


def test_unknown_fields_in_the_job_template_are_refused_naming_the_path() -> None:
    data = manifest()
    container = data["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["comand"] = container.pop("command")
    container["args"] = ["--lr=${trialParameters.lr}", "--layers=${trialParameters.layers}"]
    container["env"] = [{"name": "A", "valu": "1"}]
    container["resources"] = {"limits": {"nvidia.com/gpu": 1}}  # free-form keys are fine
    data["spec"]["trialTemplate"]["trialSpec"]["spec"]["backoffLimit"] = "${trialParameters.layers}"
    prefix = "spec.trialTemplate.trialSpec.spec.template.spec.containers[0]"
    assert errors_of(data) == [
        f"{prefix}.comand: unknown field of a Kubernetes Container (did you mean 'command'?)",
        f"{prefix}.env[0].valu: unknown field of a Kubernetes EnvVar (did you mean 'value'?)"]


def test_a_template_given_as_only_the_job_spec_is_checked_too() -> None:
    data = manifest()
    job_spec = data["spec"]["trialTemplate"]["trialSpec"]["spec"]
    job_spec["template"]["spec"]["restartPolicyy"] = "Never"
    data["spec"]["trialTemplate"]["trialSpec"] = job_spec
    assert errors_of(data) == ["spec.trialTemplate.trialSpec.template.spec.restartPolicyy: unknown field of a "
                               "Kubernetes PodSpec (did you mean 'restartPolicy'?)"]
