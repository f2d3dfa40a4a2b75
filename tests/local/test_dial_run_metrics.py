"""`dial run --metrics-port`: a laptop run serves the same Prometheus metrics as the operator."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from dial_cli import DIAL, ROOT, example_spec
from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> list[tuple[str, dict[str, str], float]] | None:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except (urllib.error.URLError, ConnectionError):
        return None
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def test_dial_run_serves_metrics_while_it_runs(tmp_path: Path) -> None:
    path = example_spec(tmp_path, "sklearn-digits", maxTrialCount=6)
    port = free_port()
    run = subprocess.Popen([*DIAL, "run", str(path), "--output", str(tmp_path / "out"),
                            "--no-live", "--metrics-port", str(port)], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    seen: list[tuple[str, dict[str, str], float]] = []
    deadline = time.monotonic() + 300
    while run.poll() is None and time.monotonic() < deadline:
        seen.extend(scrape(port) or [])
        time.sleep(0.2)
    output = run.communicate(timeout=10)[0]
    assert run.returncode == 0, output
    assert f"metrics: http://127.0.0.1:{port}/metrics" in output

    def values(name: str, **labels: str) -> list[float]:
        return [v for n, lab, v in seen if n == name and all(lab.get(k) == x for k, x in labels.items())]

    experiment = dict(namespace="default", experiment="sklearn-digits")
    assert 1.0 in values("dial_experiments", namespace="default", phase="Running")
    assert max(values("dial_trials", **experiment, phase="Running")) >= 1
    assert max(values("dial_trials", **experiment, phase="Succeeded")) >= 1
    # Learning curves: running trials' accuracy, fold by fold, is a value between 0 and 1.
    accuracy = values("dial_trial_metric_latest", **experiment, metric="accuracy")
    assert accuracy and all(0 <= v <= 1 for v in accuracy)
    assert {lab["trial"] for n, lab, _ in seen if n == "dial_trial_metric_latest"} >= {"sklearn-digits-0000"}
    assert max(values("dial_experiment_best_objective", **experiment, metric="accuracy")) > 0.5
    assert values("dial_trials_early_stopped_total", **experiment, rule="medianstop")
    assert max(values("dial_proposal_duration_seconds_count", strategy="random")) >= 1
    assert max(values("dial_trial_duration_seconds_count", namespace="default", phase="Succeeded")) >= 1
