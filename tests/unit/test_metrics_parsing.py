"""Metric lines: Katib's name=value text and JSON lines; garbage is ignored, never fatal."""

from __future__ import annotations

import math

from dial.api import MetricsFormat
from dial.metrics.parsing import MetricReader, parse_json_line, parse_text_line


def test_text_pairs_with_epoch_as_step() -> None:
    assert parse_text_line("epoch=3 loss=0.41 accuracy=0.87") == (3.0, {"loss": 0.41, "accuracy": 0.87})


def test_text_accepts_exponents_spaces_and_punctuation() -> None:
    step, values = parse_text_line("INFO step = 10, lr=1e-3; val/loss=-2.5E+2 top-1=0.5")
    assert step == 10 and values == {"lr": 0.001, "val/loss": -250.0, "top-1": 0.5}


def test_text_garbage_yields_nothing() -> None:
    for line in ["", "Traceback (most recent call last):", "x==3", "loss=abc", "a=1.2.3", "\x00\xff binary",
                 "url=http://x?a=b", "=5", "loss="]:
        step, values = parse_text_line(line)
        assert values == {} or all(math.isfinite(v) for v in values.values()), line
        assert "loss" not in values


def test_text_nan_and_inf_are_reported_as_such() -> None:
    _, values = parse_text_line("loss=nan acc=inf other=-inf")
    assert math.isnan(values["loss"]) and values["acc"] == math.inf and values["other"] == -math.inf


def test_json_lines() -> None:
    assert parse_json_line('{"step": 3, "accuracy": 0.87, "tag": "x", "ok": true}') == (3.0, {"accuracy": 0.87})
    assert parse_json_line('{"accuracy": "0.5"}') == (None, {"accuracy": 0.5})
    for garbage in ["not json", "{broken", "[1, 2]", '"s"', "{}"]:
        assert parse_json_line(garbage)[1] == {}
    assert math.isnan(parse_json_line('{"loss": NaN}')[1]["loss"])


def test_reader_numbers_steps_when_output_has_none_and_filters_metrics() -> None:
    reader = MetricReader(["loss"])
    points = reader.feed(["loss=3", "noise", "acc=1 loss=2", "epoch=10 loss=1"])
    assert [(p.step, p.value) for p in points] == [(1.0, 3.0), (2.0, 2.0), (10.0, 1.0)]


def test_reader_json_format_and_huge_lines() -> None:
    reader = MetricReader(["acc"], MetricsFormat.json)
    assert [p.value for p in reader.feed(['{"acc": 0.5}', "acc=0.9", "x" * 1_000_000])] == [0.5]


def test_the_reader_summarises_what_the_output_held() -> None:
    from dial.metrics.parsing import MetricReader

    reader = MetricReader(["loss"])
    reader.feed(["epoch=1 accuracy=0.5 val_loss=2", "loading data", "accuracy=0.6"])
    summary = reader.summary()
    assert summary.names_seen == ("accuracy", "val_loss") and summary.n_lines == 3
    assert summary.describe() == "metrics seen: accuracy, val_loss; 1 of 3 output lines held no metric"
    assert MetricReader(["loss"]).summary().describe() == "the training printed nothing"
    silent = MetricReader(["loss"], MetricsFormat.json)
    silent.feed(["hello", "loss=3"])
    assert silent.summary().describe() == "none of its 2 output lines held a metric (JSON: JSON objects with numbers)"


def test_katibs_metrics_format_regular_expressions() -> None:
    from dial.metrics.parsing import MetricReader

    reader = MetricReader(["accuracy", "loss"], patterns=["{metricName: ([\\w|-]+), metricValue: ((-?\\d+)(\\.\\d+)?)}"])
    points = reader.feed(["{metricName: accuracy, metricValue: 0.8}", "epoch=1 loss=0.3",
                          "{metricName: loss, metricValue: -1.5} {metricName: accuracy, metricValue: 0.9}"])
    assert [(p.name, p.step, p.value) for p in points] == [("accuracy", 1.0, 0.8), ("accuracy", 2.0, 0.9),
                                                           ("loss", 1.0, -1.5)]


def test_lightgbm_lines_with_katibs_filter() -> None:
    from dial.metrics.parsing import MetricReader

    reader = MetricReader(["valid_1 auc"], patterns=["(\\w+\\s\\w+)\\s:\\s((-?\\d+)(\\.\\d+)?)"])
    [point] = reader.feed(["[LightGBM] [Info] Iteration:1, valid_1 auc : 0.77"])
    assert (point.name, point.value) == ("valid_1 auc", 0.77)
