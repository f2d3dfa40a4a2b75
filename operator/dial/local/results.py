"""A local run's results on disk: `results.json` (everything) and `trials.csv` (one row a trial)."""

from __future__ import annotations

import csv
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Sequence

from dial.api.experiment import Experiment
from dial.api.trial import Trial
from dial.engine.front import front_trials

RESULTS_FILE = "results.json"
CSV_FILE = "trials.csv"


def save_results(directory: Path, experiment: Experiment, trials: Sequence[Trial]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    data = {"experiment": experiment.to_wire(), "trials": [t.to_wire() for t in trials]}
    _atomic_write(directory / RESULTS_FILE, json.dumps(data, indent=1))
    _atomic_write(directory / CSV_FILE, _csv_text(experiment, trials))


def load_results(directory: Path) -> tuple[Experiment, list[Trial]]:
    data = json.loads((directory / RESULTS_FILE).read_text())
    return Experiment.model_validate(data["experiment"]), [Trial.model_validate(t) for t in data["trials"]]


def _csv_text(experiment: Experiment, trials: Sequence[Trial]) -> str:
    import io

    names = [p.name for p in experiment.spec.parameters]
    objective = experiment.spec.objective
    metrics = objective.metric_names
    # Multi-objective runs add each objective's value and whether the trial is on the Pareto front.
    objectives = [t.metric_name for t in objective.targets] if objective.is_multi else []
    front = {t.name for t in front_trials(experiment, trials)} if objective.is_multi else set()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["trial", "index", "phase", "reason", "objective", *[f"objective_{m}" for m in objectives],
                     *(["pareto_front"] if objectives else []), *names,
                     *[f"{m}_latest" for m in metrics], "seconds", "exit_code"])
    for t in trials:
        s = t.status
        seconds = (s.completion_time - s.start_time).total_seconds() if s.completion_time and s.start_time else ""
        latest = [(o.latest if (o := s.observation(m)) else "") for m in metrics]
        values = [(s.objectives or {}).get(m, "") for m in objectives]
        on_front = [str(t.name in front).lower()] if objectives else []
        writer.writerow([t.name, t.spec.index, s.phase.value, s.reason or "", "" if s.objective is None else s.objective,
                         *values, *on_front, *[t.spec.parameter_assignments.get(n, "") for n in names], *latest, seconds,
                         "" if s.exit_code is None else s.exit_code])
    return out.getvalue()


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def default_output_dir(base: Path, experiment_name: str, now: datetime) -> Path:
    return base / f"{experiment_name}-{now.strftime('%Y%m%d-%H%M%S')}"


def latest_output_dir(base: Path, experiment_name: str) -> Path | None:
    runs = sorted(p for p in base.glob(f"{experiment_name}-*") if (p / RESULTS_FILE).exists())
    return runs[-1] if runs else None
