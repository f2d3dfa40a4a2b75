"""Shared fixtures of the unit tests; `helpers` and `tests/support` are importable from here."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from helm_chart import helm_binary  # noqa: E402


@pytest.fixture(scope="session")
def helm() -> str:
    """The helm binary built with the local control plane (skips when it cannot be built)."""
    path, why = helm_binary()
    if path is None:
        pytest.skip(why)
    return path
