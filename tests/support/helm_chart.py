"""The helm binary hack/cluster builds, and `helm template` of charts/dial as parsed documents."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "dial"


def helm_binary() -> tuple[str | None, str]:
    """(path, "") or (None, why it cannot be built): `hack/cluster build` is cached after the first time.
    Binaries only: rendering a chart needs no image (and an image build would mount overlays under a unit test)."""
    r = subprocess.run([sys.executable, str(ROOT / "hack" / "cluster"), "build", "--binaries"], capture_output=True, text=True,
                       timeout=1800)
    paths = dict(line.split(": ", 1) for line in r.stdout.splitlines() if ": " in line)
    if r.returncode != 0 or "helm" not in paths:
        return None, f"helm cannot be built here: {r.stderr[-500:]}"
    return paths["helm"], ""


def render(helm: str, *sets: str, namespace: str = "dial", release: str = "t") -> list[dict[str, Any]]:
    args = [arg for s in sets for arg in ("--set", s)]
    r = subprocess.run([helm, "template", release, str(CHART), "-n", namespace, *args], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]
