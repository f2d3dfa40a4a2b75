"""The Prometheus exporter: series, labels and values as a scrape shows them."""

from __future__ import annotations

import urllib.request
from datetime import timedelta

import pytest
from kubernetes.client.rest import ApiException
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dial.api import TrialPhase
from dial.api.experiment import ExperimentPhase
from dial.engine import new_trial
from dial.engine.plan import plan
from dial.metrics.exporter import METRIC_NAMES, DialMetrics, api_error_reason, serve_metrics
from helpers import NOW, experiment, finished_trial, running_trial


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def scrape(metrics: DialMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape of the exporter's registry, keyed by name and sorted labels."""
    text = generate_latest(metrics.registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def names(samples: dict, prefix: str) -> set[str]:
    return {name for name, _ in samples if name.startswith(prefix)}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metrics(clock: FakeClock) -> DialMetrics:
    return DialMetrics(trial_retention_seconds=60, clock=clock, started_at=NOW - timedelta(hours=1))


def test_plan_returns_the_engines_plan_and_records_the_experiment(metrics):
    exp = experiment()
    trials = [finished_trial(exp, 0, [3.0, 2.0]), running_trial(exp, 1, [5.0, 4.5])]
    ours, engines = metrics.plan(exp, trials, now=NOW), plan(exp, trials, now=NOW)
    assert ours.status == engines.status and [p.name for p in ours.create] == [p.name for p in engines.create]
    s = scrape(metrics)
    assert sample(s, "dial_experiments", namespace="default", phase="Running") == 1
    assert sample(s, "dial_experiments", namespace="default", phase="Succeeded") == 0
    assert sample(s, "dial_trials", namespace="default", experiment="exp", phase="Succeeded") == 1
    assert sample(s, "dial_trials", namespace="default", experiment="exp", phase="Running") == 1
    # The plan creates one trial (parallelTrialCount 2): pending as soon as it is planned.
    assert sample(s, "dial_trials", namespace="default", experiment="exp", phase="Pending") == 1
    assert sample(s, "dial_experiment_best_objective", namespace="default", experiment="exp", metric="loss") == 2.0
    assert sample(s, "dial_trial_metric_latest", namespace="default", experiment="exp",
                  trial="exp-0001", metric="loss") == 4.5
    assert sample(s, "dial_proposal_duration_seconds_count", strategy="random") == 1


def test_every_declared_metric_is_exported_and_nothing_else(metrics):
    from test_multiobjective import two_objective_experiment_with_a_front

    exp = experiment(earlyStopping={"name": "medianstop"})
    trials = [finished_trial(exp, 0, [3.0]), running_trial(exp, 1, [5.0])]
    metrics.plan(exp, trials, now=NOW)
    metrics.plan(*two_objective_experiment_with_a_front("pareto"), now=NOW)
    s = scrape(metrics)
    exported = {name for name, _ in s if not name.endswith("_created")}
    exported = {n for n in exported if not n.endswith(("_bucket", "_sum", "_count"))} | {
        n.rsplit("_", 1)[0] for n in exported if n.endswith("_bucket")}
    assert exported == set(METRIC_NAMES)


def test_names_follow_prometheus_conventions():
    for name in METRIC_NAMES:
        assert name.startswith("dial_") and name == name.lower()
        if name.endswith("_total"):
            continue
        assert "duration" not in name or name.endswith("_seconds")


def test_finished_trial_series_are_dropped_after_the_retention(metrics, clock):
    exp = experiment()
    trial = running_trial(exp, 0, [1.0, 0.5])
    metrics.plan(exp, [trial], now=NOW)
    finished = finished_trial(exp, 0, [1.0, 0.5, 0.25])
    metrics.plan(exp, [finished], now=NOW)
    key = dict(namespace="default", experiment="exp", trial="exp-0000", metric="loss")
    assert sample(scrape(metrics), "dial_trial_metric_latest", **key) == 0.25
    clock.now += 59
    assert sample(scrape(metrics), "dial_trial_metric_latest", **key) == 0.25
    clock.now += 2
    assert sample(scrape(metrics), "dial_trial_metric_latest", **key) is None
    # Planning again does not bring a finished trial's series back.
    metrics.plan(exp, [finished], now=NOW)
    assert sample(scrape(metrics), "dial_trial_metric_latest", **key) is None


def test_trials_finished_before_the_process_started_are_not_counted_again(clock):
    metrics = DialMetrics(clock=clock, started_at=NOW + timedelta(seconds=1))
    exp = experiment()
    metrics.plan(exp, [finished_trial(exp, 0, [1.0])], now=NOW)
    s = scrape(metrics)
    assert sample(s, "dial_trial_duration_seconds_count", namespace="default", phase="Succeeded") is None
    assert sample(s, "dial_trials", namespace="default", experiment="exp", phase="Succeeded") == 1


def test_each_finished_trial_is_counted_once_with_its_duration(metrics):
    exp = experiment()
    trial = running_trial(exp, 0, [1.0])
    trial.status.start_time = NOW - timedelta(seconds=42)
    from dial.engine.trials import finalize_trial

    finalize_trial(exp, trial, exit_code=0, now=NOW)
    for _ in range(3):
        metrics.plan(exp, [trial], now=NOW)
    s = scrape(metrics)
    assert sample(s, "dial_trial_duration_seconds_count", namespace="default", phase="Succeeded") == 1
    assert sample(s, "dial_trial_duration_seconds_sum", namespace="default", phase="Succeeded") == 42
    assert sample(s, "dial_trial_duration_seconds_bucket", namespace="default", phase="Succeeded", le="30.0") == 0
    assert sample(s, "dial_trial_duration_seconds_bucket", namespace="default", phase="Succeeded", le="60.0") == 1


def test_early_stops_are_counted_by_rule_and_experiment_stops_are_not(metrics):
    exp = experiment(earlyStopping={"name": "medianstop"})
    metrics.plan(exp, [], now=NOW)
    labels = dict(namespace="default", experiment="exp", rule="medianstop")
    assert sample(scrape(metrics), "dial_trials_early_stopped_total", **labels) == 0
    by_rule = running_trial(exp, 0, [9.0])
    by_rule.status.stop_reason, by_rule.status.stop_message = "medianstop", "worse than the median"
    by_finish = running_trial(exp, 1, [9.0])
    by_finish.status.stop_reason, by_finish.status.stop_message = "ExperimentFinished", "goal reached"
    from dial.engine.trials import finalize_trial

    for t in (by_rule, by_finish):
        finalize_trial(exp, t, exit_code=None, now=NOW)
        assert t.phase is TrialPhase.early_stopped
    metrics.plan(exp, [by_rule, by_finish], now=NOW)
    metrics.plan(exp, [by_rule, by_finish], now=NOW)
    s = scrape(metrics)
    assert sample(s, "dial_trials_early_stopped_total", **labels) == 1
    assert sample(s, "dial_trials_early_stopped_total", namespace="default", experiment="exp",
                  rule="ExperimentFinished") is None
    assert sample(s, "dial_trials", namespace="default", experiment="exp", phase="EarlyStopped") == 2


def test_forget_drops_every_series_of_the_experiment(metrics):
    exp = experiment(earlyStopping={"name": "medianstop"})
    metrics.plan(exp, [running_trial(exp, 0, [1.0])], now=NOW)
    metrics.forget("default", "exp")
    s = scrape(metrics)
    assert not [key for key in s if ("experiment", "exp") in key[1]]
    assert not names(s, "dial_experiments")  # no namespace has an experiment left


def test_experiments_are_counted_per_namespace_and_phase(metrics):
    a, b = experiment(), experiment()
    a.metadata.namespace, b.metadata.namespace = "team-a", "team-b"
    metrics.plan(a, [], now=NOW)
    metrics.plan(b, [], now=NOW)
    metrics.set_phase("team-b", "broken", ExperimentPhase.failed)
    s = scrape(metrics)
    assert sample(s, "dial_experiments", namespace="team-a", phase="Running") == 1
    assert sample(s, "dial_experiments", namespace="team-b", phase="Running") == 1
    assert sample(s, "dial_experiments", namespace="team-b", phase="Failed") == 1
    assert sample(s, "dial_experiments", namespace="team-a", phase="Failed") == 0


def test_reconcile_errors_and_api_retries_exist_at_zero_and_count_by_cause(metrics):
    s = scrape(metrics)
    assert sample(s, "dial_reconcile_errors_total", kind="api") == 0
    assert sample(s, "dial_api_retries_total", reason="throttled") == 0
    metrics.reconcile_failed(ApiException(status=429, reason="Too Many Requests"))
    metrics.reconcile_failed(ApiException(status=409, reason="Conflict"))
    metrics.reconcile_failed(ConnectionRefusedError())
    metrics.reconcile_failed(KeyError("spec"))
    s = scrape(metrics)
    assert sample(s, "dial_reconcile_errors_total", kind="api") == 3
    assert sample(s, "dial_reconcile_errors_total", kind="internal") == 1
    assert sample(s, "dial_api_retries_total", reason="throttled") == 1
    assert sample(s, "dial_api_retries_total", reason="conflict") == 1
    assert sample(s, "dial_api_retries_total", reason="unavailable") == 1


@pytest.mark.parametrize("exc, reason", [
    (ApiException(status=503), "unavailable"), (ApiException(status=403), "other"), (ValueError("x"), None)])
def test_api_error_reason(exc, reason):
    assert api_error_reason(exc) == reason


def test_a_pending_trial_without_observations_has_no_metric_series(metrics):
    exp = experiment()
    metrics.plan(exp, [new_trial(exp, 0, {"lr": 0.1, "layers": 1})], now=NOW)
    assert not names(scrape(metrics), "dial_trial_metric_latest")


def test_serve_metrics_answers_a_scrape_over_http():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metrics = serve_metrics(port, "127.0.0.1")
    metrics.plan(experiment(), [], now=NOW)
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'dial_experiments{namespace="default",phase="Running"} 1.0' in body


@pytest.mark.parametrize("port", ["0", "70000", "http"])
def test_dial_run_rejects_a_bad_metrics_port(port, capsys):
    from dial.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "experiment.yaml", "--metrics-port", port])
    assert "is not a TCP port" in capsys.readouterr().err


def test_pareto_front_members_are_exported_by_objective_and_follow_the_front(metrics):
    from dial.api import Experiment
    from test_multiobjective import multi, trial_with

    exp = Experiment.model_validate(multi())
    trials = [trial_with(exp, 0, {"error": 0.1, "speed": 1.0}), trial_with(exp, 1, {"error": 0.3, "speed": 5.0}),
              trial_with(exp, 2, {"error": 0.3, "speed": 2.0})]  # 2 is dominated by 1
    metrics.plan(exp, trials, now=NOW)
    s = scrape(metrics)
    front = {(dict(labels)["trial"], dict(labels)["metric"]): v for (name, labels), v in s.items()
             if name == "dial_experiment_pareto_front"}
    assert front == {("exp-0000", "error"): 0.1, ("exp-0000", "speed"): 1.0,
                     ("exp-0001", "error"): 0.3, ("exp-0001", "speed"): 5.0}
    # A better trial pushes both earlier members off the front: their series go with them.
    metrics.plan(exp, [*trials, trial_with(exp, 3, {"error": 0.05, "speed": 6.0})], now=NOW)
    s = scrape(metrics)
    assert {dict(labels)["trial"] for (name, labels) in s if name == "dial_experiment_pareto_front"} == {"exp-0003"}
    # A single-objective experiment has no front series.
    single = experiment()
    single.metadata.namespace = "other"
    metrics.plan(single, [finished_trial(single, 0, [1.0])], now=NOW)
    assert {dict(labels)["namespace"] for (name, labels) in scrape(metrics)
            if name == "dial_experiment_pareto_front"} == {"default"}
