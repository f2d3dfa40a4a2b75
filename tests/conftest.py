"""Plugins for every test directory: turns on the shared local cluster (hack/cluster_turns.py), so that
test processes (`pytest -n`) can share it, and the end-of-run summary (tests/support/run_summary.py)."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "hack"))
sys.path.insert(0, str(ROOT / "tests" / "support"))

import cluster_turns  # noqa: E402
import run_summary  # noqa: E402


def pytest_configure(config):
    cluster_turns.register(config)
    run_summary.register(config)
