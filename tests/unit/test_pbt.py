"""Population based training: generations, exploit/explore, determinism, bounds, checkpoint placeholders."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from helpers import NOW, apply, experiment, finished_trial, manifest

from dial.api import ParameterSpec, TrialPhase
from dial.engine import ExperimentError, load_experiment, plan, render_job_spec, validate_experiment
from dial.engine.plan import history as history_of
from dial.engine.validation import parse_experiment
from dial.examples import katib_pbt, pbt_train
from dial.metrics.parsing import MetricReader
from dial.kube.jobs import CHECKPOINT_VOLUME, CollectorSettings, kube_spec_errors, trial_job
from dial.search import SearchSpace, TrialRecord, make_strategy
from dial.search.pbt import perturb, split_generations

SPACE = SearchSpace.from_parameters([ParameterSpec.model_validate(s) for s in (
    {"name": "lr", "type": "double", "feasibleSpace": {"min": 1e-4, "max": 1.0, "scale": "log"}},
    {"name": "layers", "type": "int", "feasibleSpace": {"min": 1, "max": 6}},
    {"name": "optimizer", "type": "categorical", "feasibleSpace": {"list": ["adam", "sgd", "rmsprop"]}},
    {"name": "width", "type": "discrete", "feasibleSpace": {"list": [32, 64, 128]}},
)])
SETTINGS = {"n_population": 4, "truncation_threshold": 0.25}


def pbt(**settings: object):
    return make_strategy("pbt", {**SETTINGS, **settings}, SPACE, seed=5)


def finish(proposals, history: list[TrialRecord], losses: list[float | None]) -> list[TrialRecord]:
    for p, loss in zip(proposals, losses):
        history.append(TrialRecord(len(history), p.assignment, loss, True, parent=p.parent))
    return history


def test_first_generation_is_random_and_the_next_waits_for_all_of_it():
    strategy = pbt()
    first = strategy.propose_trials([], 10)
    assert len(first) == 4 and all(p.parent is None for p in first)
    history = [TrialRecord(i, p.assignment, 0.5, True) for i, p in enumerate(first[:3])]
    history.append(TrialRecord(3, first[3].assignment))  # still running
    assert strategy.propose_trials(history, 4) == []


def test_bottom_member_copies_a_top_checkpoint_and_perturbs_its_parameters_others_continue():
    strategy = pbt()
    history = finish(strategy.propose_trials([], 4), [], [0.9, 0.1, 0.5, 0.7])  # member 1 best, member 0 worst
    second = strategy.propose_trials(history, 4)
    assert [p.parent for p in second] == [1, 1, 2, 3]
    for member in (1, 2, 3):
        assert second[member].assignment == history[member].assignment
    donor, explored = history[1].assignment, second[0].assignment
    assert explored["lr"] in (pytest.approx(donor["lr"] * 0.8), pytest.approx(donor["lr"] * 1.2))
    assert abs(explored["layers"] - donor["layers"]) >= 1 and explored["optimizer"] != donor["optimizer"]
    assert abs(SPACE.dimensions[3].index_of(explored["width"]) - SPACE.dimensions[3].index_of(donor["width"])) == 1
    assert SPACE.contains(explored)


def test_generations_follow_the_parent_chain():
    strategy = pbt()
    history = finish(strategy.propose_trials([], 4), [], [0.9, 0.1, 0.5, 0.7])
    history = finish(strategy.propose_trials(history, 4), history, [0.2, 0.05, 0.6, 0.8])
    third = strategy.propose_trials(history, 4)
    assert [len(g) for g in split_generations(history)] == [4, 4]
    assert [p.parent for p in third][:3] == [4, 5, 6] and third[3].parent in (4, 5)  # member 3 is now the worst


def test_same_seed_and_history_give_the_same_proposals_whatever_the_batch_size():
    strategy = pbt()
    history = finish(strategy.propose_trials([], 4), [], [0.3, 0.1, 0.5, 0.7])
    all_at_once = strategy.propose_trials(history, 4)
    one_by_one = []
    for _ in range(4):
        # Launched one at a time, as with parallelTrialCount 1: running siblings join the history.
        proposal = strategy.propose_trials([*history, *[TrialRecord(len(history) + i, p.assignment, None, False, parent=p.parent)
                                                        for i, p in enumerate(one_by_one)]], 1)
        one_by_one += proposal
    assert one_by_one == all_at_once
    assert make_strategy("pbt", SETTINGS, SPACE, seed=6).propose_trials([], 4) != strategy.propose_trials([], 4)


def test_failed_segments_rank_last_and_a_generation_without_results_starts_over():
    strategy = pbt(truncation_threshold=0.5)
    history = finish(strategy.propose_trials([], 4), [], [None, 0.1, None, 0.7])
    assert [p.parent for p in strategy.propose_trials(history, 4)] == [1, 1, 1, 3]
    wiped = finish(strategy.propose_trials([], 4), [], [None, None, None, None])
    restart = strategy.propose_trials(wiped, 4)
    assert all(p.parent is None for p in restart) and all(SPACE.contains(p.assignment) for p in restart)


def test_a_stopped_segment_is_neither_continued_nor_copied_whatever_it_reported():
    strategy = pbt(truncation_threshold=0.5)
    history = finish(strategy.propose_trials([], 4), [], [0.01, 0.1, 0.5, 0.7])
    history[0] = TrialRecord(0, history[0].assignment, 0.01, True, incomplete=True)  # e.g. interrupted
    parents = [p.parent for p in strategy.propose_trials(history, 4)]
    assert parents[1:3] == [1, 2] and parents[0] in (1, 2) and parents[3] in (1, 2)


def test_engine_marks_segments_that_did_not_succeed_incomplete():
    exp = pbt_experiment()
    trials = [finished_trial(exp, 0, [0.3]), finished_trial(exp, 1, [0.2], phase=TrialPhase.failed)]
    assert [r.incomplete for r in history_of(exp, trials)] == [False, True]


def test_resample_probability_one_draws_fresh_values():
    strategy = pbt(resample_probability=1.0)
    history = finish(strategy.propose_trials([], 4), [], [0.9, 0.1, 0.5, 0.7])
    explored, donor = strategy.propose_trials(history, 4)[0], history[1].assignment
    assert explored.parent == 1
    assert explored.assignment["lr"] not in (pytest.approx(donor["lr"] * 0.8), pytest.approx(donor["lr"] * 1.2))


@pytest.mark.parametrize(("name", "value"), [("lr", 1e-4), ("lr", 1.0), ("layers", 1), ("layers", 6),
                                             ("optimizer", "adam"), ("width", 32), ("width", 128)])
def test_perturbation_moves_inside_the_bounds_even_from_a_bound(name, value):
    rng = np.random.default_rng(0)
    dim = next(d for d in SPACE.dimensions if d.name == name)
    for _ in range(50):
        moved = perturb(dim, value, (0.5, 3.0), rng)
        assert dim.contains(moved) and moved != value, (dim.name, value, moved)


@pytest.mark.parametrize(("settings", "path", "message"), [
    ({"truncation_threshold": 0.6}, "spec.algorithm.settings.truncation_threshold", "less than or equal to 0.5"),
    ({"n_population": 1}, "spec.algorithm.settings.n_population", "greater than or equal to 2"),
    ({"n_population": 3, "truncation_threshold": 0.2}, "spec.algorithm", "exploits no member"),
    ({"suggestion_trial_dir": "ckpt"}, "spec.algorithm.settings.suggestion_trial_dir", "absolute path"),
    ({"resample_probability": 1.5}, "spec.algorithm.settings.resample_probability", "less than or equal to 1"),
    ({"perturbation_factors": [0.0, 1.2]}, "spec.algorithm.settings.perturbation_factors", "must be > 0"),
])
def test_invalid_settings_name_the_field(settings, path, message):
    errors = validate_experiment(pbt_experiment(settings=settings))
    assert any(e.path == path and message in e.message for e in errors), errors


def test_pbt_template_with_one_checkpoint_placeholder_is_refused():
    exp = experiment(algorithm={"name": "pbt", "settings": SETTINGS})
    container = exp.spec.trial_template.job_spec["template"]["spec"]["containers"][0]
    container["command"].append("--checkpoint-dir=${trialParameters.checkpointDir}")
    messages = [str(e) for e in validate_experiment(exp)]
    assert any("spec.trialTemplate.trialSpec: algorithm pbt needs ${trialParameters.parentCheckpointDir}" in m
               for m in messages)


def test_pbt_template_without_checkpoint_placeholders_is_katibs_convention_dial_run_needs_the_directory_named():
    from dial.local.runner import check_runnable

    exp = experiment(algorithm={"name": "pbt", "settings": SETTINGS})
    assert validate_experiment(exp) == []  # each trial's own directory is mounted at suggestion_trial_dir
    with pytest.raises(ExperimentError, match="Katib's checkpoint convention: dial run gives each trial its own"):
        check_runnable(exp)  # the command names no suggestion_trial_dir: its trials would share a real directory
    exp.spec.trial_template.job_spec["template"]["spec"]["containers"][0]["command"].append(
        "--checkpoint=/var/lib/dial/checkpoints")
    check_runnable(exp)


def test_dial_run_puts_each_katib_trials_own_directory_where_the_command_names_suggestion_trial_dir(tmp_path):
    from dial.local.commands import local_command

    exp = experiment(algorithm={"name": "pbt", "settings": {**SETTINGS, "suggestion_trial_dir": "/ckpt/"}})
    container = exp.spec.trial_template.job_spec["template"]["spec"]["containers"][0]
    container["command"] += ["--checkpoint=/ckpt/", "--log=/ckpt/x/log.txt", "--other=/ckpt2"]
    container["env"] = [{"name": "CKPT", "value": "/ckpt"}]
    command, env, _ = local_command(exp, "exp-0004", {"lr": 0.1, "layers": 2}, parent="exp-0001",
                                    checkpoint_root=tmp_path)
    assert command[-3:] == [f"--checkpoint={tmp_path}/exp-0004/", f"--log={tmp_path}/exp-0004/x/log.txt", "--other=/ckpt2"]
    assert env["CKPT"] == f"{tmp_path}/exp-0004"


def test_dial_run_fills_a_katib_trials_directory_with_a_fresh_copy_of_its_parents(tmp_path):
    from dial.local.backend import own_checkpoint

    (tmp_path / "exp-0001").mkdir()
    (tmp_path / "exp-0001" / "training.ckpt").write_bytes(b"parent")
    (tmp_path / "exp-0004").mkdir()
    (tmp_path / "exp-0004" / "stale").write_text("left by an interrupted run")
    own = own_checkpoint(tmp_path, "exp-0004", "exp-0001")
    assert sorted(p.name for p in own.iterdir()) == ["training.ckpt"] and (own / "training.ckpt").read_bytes() == b"parent"
    assert list(own_checkpoint(tmp_path, "exp-0000", None).iterdir()) == []


def test_pbt_refuses_zoom_and_warm_start():
    data = pbt_experiment().model_dump(by_alias=True, exclude_none=True, mode="json")
    data["spec"]["algorithm"]["zoom"] = {"afterTrials": 4}
    data["spec"]["warmStart"] = {"experiments": ["earlier"]}
    paths = [e.path for e in validate_experiment(parse_experiment(data))]
    assert "spec.algorithm.zoom" in paths and "spec.warmStart" in paths


def test_checkpoint_placeholders_without_pbt_are_refused():
    errors = validate_experiment(pbt_experiment(algorithm="random"))
    assert [e.path for e in errors] == ["spec.trialTemplate.trialSpec", "spec.trialTemplate.trialSpec"]
    assert "only provided by algorithm pbt" in errors[0].message


def test_plan_records_the_parent_and_the_template_receives_both_checkpoint_directories():
    exp = pbt_experiment()
    trials = apply(exp, [])
    assert [t.spec.parent_trial for t in trials] == [None] * 4
    trials = [finished_trial(exp, t.spec.index, [loss], assignment=t.spec.parameter_assignments)
              for t, loss in zip(trials, [0.9, 0.1, 0.5, 0.7])]
    new = plan(exp, trials, now=NOW).create
    assert [p.parent for p in new] == ["exp-0001", "exp-0001", "exp-0002", "exp-0003"]
    args = command(render_job_spec(exp, new[0].name, new[0].assignment, parent=new[0].parent, checkpoint_root="/ck"))
    assert "--save=/ck/exp-0004" in args and "--resume=/ck/exp-0001" in args
    first = command(render_job_spec(exp, "exp-0000", trials[0].spec.parameter_assignments))
    assert "--save=/var/lib/dial/checkpoints/exp-0000" in first and "--resume=" in first


def test_operator_mounts_the_checkpoint_claim_and_renders_the_stored_parent():
    exp = pbt_experiment(settings={"checkpoint_claim_name": "ckpt", "suggestion_trial_dir": "/ckpt"})
    stored = {"apiVersion": "dial.dev/v1alpha1", "kind": "Trial", "metadata": {"name": "exp-0005", "uid": "u"},
              "spec": {"experiment": "exp", "index": 5, "parentTrial": "exp-0001",
                       "parameterAssignments": {"lr": 0.01, "layers": 2}}}
    pod = trial_job(exp, stored, CollectorSettings())["spec"]["template"]["spec"]
    assert {"name": CHECKPOINT_VOLUME, "persistentVolumeClaim": {"claimName": "ckpt"}} in pod["volumes"]
    training = pod["containers"][0]
    assert {"name": CHECKPOINT_VOLUME, "mountPath": "/ckpt"} in training["volumeMounts"]
    assert "--resume=/ckpt/exp-0001" in training["command"] and "--save=/ckpt/exp-0005" in training["command"]
    assert kube_spec_errors(exp) == []


def test_operator_without_a_claim_or_a_shared_volume_mounts_the_claim_it_creates():
    assert kube_spec_errors(pbt_experiment()) == []
    stored = {"apiVersion": "dial.dev/v1alpha1", "kind": "Trial", "metadata": {"name": "exp-0000", "uid": "u"},
              "spec": {"experiment": "exp", "index": 0, "parameterAssignments": {"lr": 0.01, "layers": 2}}}
    pod = trial_job(pbt_experiment(), stored, CollectorSettings())["spec"]["template"]["spec"]
    assert {"name": CHECKPOINT_VOLUME, "persistentVolumeClaim": {"claimName": "exp-pbt"}} in pod["volumes"]


def test_operator_reports_invalid_settings_once_without_raising():
    exp = pbt_experiment(settings={"truncation_threshold": 0.9, "checkpoint_claim_name": "ckpt"})
    assert kube_spec_errors(exp) == []  # validate_experiment names spec.algorithm.settings.truncation_threshold
    assert [e.path for e in validate_experiment(exp)] == ["spec.algorithm.settings.truncation_threshold"]


def test_example_validates():
    exp = load_experiment(open("examples/pbt/experiment.yaml").read(), "examples/pbt/experiment.yaml")
    assert exp.spec.algorithm.name == "pbt"


def test_example_training_resumes_its_parent_instead_of_starting_over(tmp_path, capsys):
    parent, child, copy = tmp_path / "parent", tmp_path / "child", tmp_path / "copy"
    pbt_train.main(["--lr=0.01", "--alpha=0.0001", "--epochs=2", f"--checkpoint-dir={parent}"])
    fresh_output = capsys.readouterr().out
    pbt_train.main(["--lr=0.02", "--alpha=0.0001", "--epochs=0", f"--checkpoint-dir={copy}", f"--parent-checkpoint-dir={parent}"])
    pbt_train.main(["--lr=0.02", "--alpha=0.0001", "--epochs=1", f"--checkpoint-dir={child}", f"--parent-checkpoint-dir={parent}"])
    resumed_output = capsys.readouterr().out
    assert "epoch=2 " in fresh_output and "epoch=3 " in resumed_output and "epoch=1 " not in resumed_output
    weights = {d: pickle.loads((d / "model.pkl").read_bytes()) for d in (parent, copy, child)}
    np.testing.assert_array_equal(weights[copy].coef_, weights[parent].coef_)  # loaded as saved
    assert weights[copy].eta0 == 0.02  # with this segment's hyperparameters
    assert not np.array_equal(weights[child].coef_, weights[parent].coef_)  # and trained further
    state = json.loads((child / "state.json").read_text())
    assert state["epoch"] == 3 and [s["lr"] for s in state["lineage"]] == [0.01, 0.02]


def test_katib_example_training_resumes_its_checkpoint_as_if_never_interrupted(tmp_path, capsys):
    # Katib's pbt_test.py flags and checkpoint: `--checkpoint` is read (training.ckpt) if present, then saved.
    katib_pbt.main(["--lr=0.002", "--epochs=20", f"--checkpoint={tmp_path / 'segments'}/"])
    first = capsys.readouterr().out
    assert first.splitlines()[:2] == ["epoch 21:", "lr=0.0020"]
    assert pickle.loads((tmp_path / "segments" / "training.ckpt").read_bytes())["step"] == 21
    katib_pbt.main(["--lr=0.002", "--epochs=10", f"--checkpoint={tmp_path / 'segments'}"])
    resumed = capsys.readouterr().out
    katib_pbt.main(["--lr=0.002", "--epochs=30", f"--checkpoint={tmp_path / 'whole'}"])
    whole = capsys.readouterr().out
    assert resumed.startswith("epoch 31:") and resumed == whole  # 20 + 10 steps are the same as 30 in one go
    points = MetricReader(["Validation-accuracy"]).feed(resumed.splitlines())
    [accuracy] = [p.value for p in points if p.name == "Validation-accuracy"]
    assert 0 < accuracy < 1
    # A learning rate far above the optimum (0.001 at accuracy 0) gets nowhere, as in pbt_test.py.
    katib_pbt.main(["--lr=0.02", "--epochs=30", f"--checkpoint={tmp_path / 'high'}"])
    assert capsys.readouterr().out.endswith("Validation-accuracy=0.0000\n")


def pbt_experiment(*, settings: dict | None = None, algorithm: str = "pbt"):
    data = manifest(algorithm={"name": algorithm, "settings": {**SETTINGS, **(settings or {})} if algorithm == "pbt" else {}},
                    parallelTrialCount=4, maxTrialCount=12)
    container = data["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] += ["--save=${trialParameters.checkpointDir}", "--resume=${trialParameters.parentCheckpointDir}"]
    return parse_experiment(data)


def command(job_spec: dict) -> list[str]:
    return job_spec["template"]["spec"]["containers"][0]["command"]


def test_unknown_setting_is_refused_with_its_name():
    with pytest.raises(ExperimentError, match="spec.algorithm.settings.population: unknown field"):
        data = pbt_experiment().model_dump(by_alias=True, exclude_none=True, mode="json")
        data["spec"]["algorithm"]["settings"]["population"] = 4
        load_experiment(json.dumps(data))


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
def test_zero_and_values_pinned_at_a_bound_still_move(value):
    """0 x any factor is 0: a momentum or weight decay at zero would otherwise never be explored."""
    dim = next(d for d in SearchSpace.from_parameters([ParameterSpec.model_validate(
        {"name": "momentum", "type": "double", "feasibleSpace": {"min": 0.0, "max": 1.0}})]).dimensions)
    rng = np.random.default_rng(1)
    moves = [perturb(dim, value, (0.8, 1.2), rng) for _ in range(40)]
    assert all(dim.contains(m) and m != value for m in moves)
    if value == 0.0:
        assert moves == [pytest.approx(0.1)] * len(moves)  # what 1.2 (or 0.8, turned inwards) moves 0.5 by
