"""The Grafana dashboard in charts/dial: its PromQL, and that PromQL made concrete for a Prometheus query."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parents[2] / "charts" / "dial" / "dashboards" / "dial.json"
METRIC = re.compile(r"\bdial_[a-z_]+\b")


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) for every target of every panel."""
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]


def variable_queries(dashboard: dict[str, Any]) -> dict[str, str]:
    """name -> label_values(...) query of each query variable."""
    return {v["name"]: v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"}


def concrete(expr: str, *, namespace: str, experiment: str, rate_interval: str = "1m", time_range: str = "15m") -> str:
    """The expression as Grafana sends it with these variables chosen (Kubernetes names need no regex escaping)."""
    for name in (namespace, experiment):
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name), name
    return (expr.replace("$namespace", namespace).replace("$experiment", experiment)
            .replace("$__rate_interval", rate_interval).replace("$__range", time_range))
