"""The Grafana dashboard: valid JSON, the panels the issue asks for, and PromQL that only names real series."""

from __future__ import annotations

import re
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from kubernetes.client.rest import ApiException
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dial.engine.trials import finalize_trial
from dial.metrics.exporter import METRIC_NAMES, DialMetrics
from helpers import NOW, experiment, finished_trial, running_trial
from test_multiobjective import two_objective_experiment_with_a_front

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from dashboard import METRIC, load, panel_queries, variable_queries  # noqa: E402

SELECTOR_LABELS = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"")
BY = re.compile(r"\bby\s*\(([^)]*)\)")


@pytest.fixture(scope="module")
def exported_labels() -> dict[str, set[str]]:
    """Sample name -> label names, from a scrape of an exporter that saw every kind of event."""
    metrics = DialMetrics(started_at=NOW - timedelta(hours=1))
    exp = experiment(earlyStopping={"name": "medianstop"})
    exp.metadata.namespace = "ml"
    stopped = running_trial(exp, 0, [3.0])
    stopped.status.start_time = NOW - timedelta(seconds=5)
    stopped.status.stop_reason, stopped.status.stop_message = "medianstop", "worse than the median"
    finalize_trial(exp, stopped, exit_code=None, now=NOW)
    metrics.plan(exp, [stopped, running_trial(exp, 1, [2.0]), finished_trial(exp, 2, [1.0])], now=NOW)
    metrics.plan(*two_objective_experiment_with_a_front("ml-pareto"), now=NOW)
    metrics.reconcile_failed(ApiException(status=409))
    text = generate_latest(metrics.registry).decode()
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return labels


def test_dashboard_is_valid_json_with_namespace_and_experiment_variables():
    dashboard = load()
    assert dashboard["uid"] and dashboard["title"] == "Dial"
    variables = variable_queries(dashboard)
    assert set(variables) == {"namespace", "experiment"}
    assert "$namespace" in variables["experiment"]


def test_dashboard_has_the_panels_the_issue_lists():
    titles = " | ".join(p["title"].lower() for p in load()["panels"])
    for words in ("experiments by phase", "best objective", "learning curves", "trials by phase",
                  "early stops by rule", "trial duration percentiles", "proposal latency percentiles",
                  "reconcile errors"):
        assert words in titles, words


def test_every_panel_query_names_only_metrics_the_exporter_exports(exported_labels):
    queries = panel_queries(load()) + [("variable " + k, v) for k, v in variable_queries(load()).items()]
    used = set()
    for title, expr in queries:
        names = METRIC.findall(expr)
        assert names, f"{title}: {expr} names no dial_ metric"
        for name in names:
            assert name in exported_labels, f"{title}: {name} is not exported (have {sorted(exported_labels)})"
            used.add(re.sub(r"_(bucket|sum|count)$", "", name))
    assert used == set(METRIC_NAMES), f"metrics without a panel: {set(METRIC_NAMES) - used}"


def test_every_label_a_query_filters_or_groups_by_exists_on_its_metric(exported_labels):
    for title, expr in panel_queries(load()) + list(variable_queries(load()).items()):
        available = set().union(*(exported_labels[n] for n in METRIC.findall(expr)))
        for selector in re.findall(r"dial_[a-z_]+\{([^}]*)\}", expr):
            for label in SELECTOR_LABELS.findall(selector):
                assert label in available, f"{title}: {label} is not a label of {expr}"
        for group in BY.findall(expr):
            for label in (x.strip() for x in group.split(",")):
                assert label in available, f"{title}: by ({label}) is not a label of {expr}"


def test_panels_use_the_datasource_variable_and_do_not_overlap():
    panels = load()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells = set()
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24
        area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
