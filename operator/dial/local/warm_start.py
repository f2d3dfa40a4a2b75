"""Warm start for `dial run`: read earlier runs' results files (or the latest run of a named experiment)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from dial.api.experiment import Experiment
from dial.api.trial import Trial
from dial.api.warm_start import WarmStartStatus
from dial.engine import ExperimentError, SpecError
from dial.engine.warm_start import snapshot
from dial.local.results import RESULTS_FILE, latest_output_dir


def local_warm_start(experiment: Experiment, *, base_dir: Path, results_root: Path) -> WarmStartStatus | None:
    """The snapshot of the earlier trials the spec names; ExperimentError names a file that cannot be read."""
    spec = experiment.spec.warm_start
    if spec is None:
        return None
    sources: list[tuple[str, list[Trial] | None]] = []
    for i, name in enumerate(spec.experiments):
        run = latest_output_dir(results_root, name)
        if run is None:
            raise ExperimentError([SpecError(f"spec.warmStart.experiments[{i}]",
                                             f"no results of a `dial run` of {name!r} in {results_root}/ "
                                             "(name its results.json in resultsFiles instead)")])
        sources.append((name, _read(run / RESULTS_FILE, f"spec.warmStart.experiments[{i}]")))
    for i, file in enumerate(spec.results_files):
        path = Path(file) if Path(file).is_absolute() else base_dir / file
        sources.append((file, _read(path, f"spec.warmStart.resultsFiles[{i}]")))
    return snapshot(experiment, sources)


def _read(path: Path, field: str) -> list[Trial]:
    try:
        data = json.loads(path.read_text())
        return [Trial.model_validate(t) for t in data["trials"]]
    except OSError as exc:
        raise ExperimentError([SpecError(field, f"cannot read {path}: {exc.strerror or exc}")]) from None
    except (ValueError, KeyError, TypeError, ValidationError) as exc:
        reason = "not JSON" if isinstance(exc, json.JSONDecodeError) else "not a `dial run` results.json"
        raise ExperimentError([SpecError(field, f"{path} is {reason}")]) from None
