"""Running the `dial` command as a user does, for the tests in this folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DIAL = [sys.executable, "-m", "dial.cli"]


def dial(*args: str, cwd: Path = ROOT, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DIAL, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def results(directory: Path) -> dict[str, Any]:
    return json.loads((directory / "results.json").read_text())


def example_spec(tmp_path: Path, example: str, name: str | None = None, **spec: object) -> Path:
    """examples/<example>/experiment.yaml with `spec` fields replaced, written under `tmp_path`."""
    data = yaml.safe_load((ROOT / "examples" / example / "experiment.yaml").read_text())
    if name is not None:
        data["metadata"]["name"] = name
    data["spec"].update(spec)
    path = tmp_path / f"{name or example}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_experiment(spec_path: Path, out: Path, *, cwd: Path = ROOT) -> dict[str, Any]:
    """`dial run` to completion; its results.json, with what it printed under "stdout"."""
    done = dial("run", str(spec_path), "--output", str(out), "--no-live", cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    data = results(out)
    data["stdout"] = done.stdout
    return data
