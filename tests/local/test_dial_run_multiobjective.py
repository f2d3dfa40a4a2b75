"""`dial run` of the multi-objective example: every objective recorded, the Pareto front in the status and files."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from dial.search.pareto import dominates

ROOT = Path(__file__).resolve().parents[2]


def test_multi_objective_example_reports_its_pareto_front(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "dial.cli", "run", "examples/multi-objective/experiment.yaml",
                          "--output", str(out), "--no-live"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    data = json.loads((out / "results.json").read_text())
    status, trials = data["experiment"]["status"], data["trials"]
    assert len(trials) == 20 and all(t["status"]["phase"] == "Succeeded" for t in trials)
    assert "bestTrial" not in status
    values = {t["metadata"]["name"]: t["status"]["objectives"] for t in trials}
    assert all(set(v) == {"accuracy", "nodes"} for v in values.values())

    def losses(name: str) -> tuple[float, float]:
        return -values[name]["accuracy"], values[name]["nodes"]

    front = [e["name"] for e in status["paretoFront"]]
    assert status["paretoFrontSize"] == len(front) >= 3
    # Exactly the non-dominated trials: none dominated by any trial, every other trial dominated by one.
    for name in values:
        dominated = any(dominates(losses(other), losses(name)) for other in values)
        assert dominated is (name not in front), name
    for entry in status["paretoFront"]:
        assert entry["objectives"] == values[entry["name"]]
    # The front spans the trade-off: a small forest and an accurate one.
    assert min(values[n]["nodes"] for n in front) < 500 and max(values[n]["accuracy"] for n in front) > 0.95

    assert f"Pareto front ({len(front)} trials)" in run.stdout and all(n in run.stdout for n in front)
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert {r["trial"] for r in rows if r["pareto_front"] == "true"} == set(front)
    assert all(float(r["objective_accuracy"]) == values[r["trial"]]["accuracy"] for r in rows)
