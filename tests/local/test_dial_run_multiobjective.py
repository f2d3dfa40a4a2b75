"""`dial run` of the multi-objective example: every objective recorded, the Pareto front in the status and files."""

from __future__ import annotations

import csv
from pathlib import Path

from dial.search.pareto import dominates
from dial_cli import ROOT, run_experiment


def test_multi_objective_example_reports_its_pareto_front(tmp_path: Path) -> None:
    out = tmp_path / "out"
    data = run_experiment(ROOT / "examples/multi-objective/experiment.yaml", out)
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

    printed = data["stdout"]
    assert f"Pareto front ({len(front)} trials)" in printed and all(n in printed for n in front)
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert {r["trial"] for r in rows if r["pareto_front"] == "true"} == set(front)
    assert all(float(r["objective_accuracy"]) == values[r["trial"]]["accuracy"] for r in rows)
