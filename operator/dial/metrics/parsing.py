"""Parse metric reports from trial output: `name=value` text (Katib's default) or JSON lines."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Iterable

from dial.api.experiment import MetricsFormat

STEP_KEYS = ("step", "epoch", "iteration", "iter", "trial_step", "global_step")  # global_step: Katib's hypertune
_NUMBER = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|NaN|inf|Inf|infinity|Infinity)"
_PAIR = re.compile(rf"(?<![\w.-])([A-Za-z_][\w./-]*)\s*=\s*({_NUMBER})(?![\w.])")


@dataclass(frozen=True)
class MetricPoint:
    name: str
    step: float | None
    value: float


def parse_text_line(line: str) -> tuple[float | None, dict[str, float]]:
    """`epoch=3 loss=0.41 accuracy=0.87` -> (3, {"loss": 0.41, "accuracy": 0.87})."""
    pairs: dict[str, float] = {}
    for name, raw in _PAIR.findall(line):
        try:
            pairs[name] = float(raw)
        except ValueError:
            continue
    return _split_step(pairs)


def parse_pattern_line(line: str, patterns: list[re.Pattern[str]]) -> tuple[float | None, dict[str, float]]:
    """Katib's `metricsFormat` filter: each regular expression's first group is a name, its second a value
    (`{metricName: loss, metricValue: 0.41}` with `{metricName: ([\\w|-]+), metricValue: ((-?\\d+)(\\.\\d+)?)}`)."""
    pairs: dict[str, float] = {}
    for pattern in patterns:
        for match in pattern.finditer(line):
            try:
                pairs[match.group(1).strip()] = float(match.group(2))
            except (TypeError, ValueError):
                continue
    return _split_step(pairs)


def parse_json_line(line: str) -> tuple[float | None, dict[str, float]]:
    """`{"step": 3, "accuracy": 0.87}` -> (3, {"accuracy": 0.87}); anything else -> (None, {})."""
    text = line.strip()
    if not text.startswith("{"):
        return None, {}
    try:
        obj = json.loads(text, parse_constant=lambda c: float(c))
    except ValueError:
        return None, {}
    if not isinstance(obj, dict):
        return None, {}
    pairs = {}
    for name, raw in obj.items():
        if isinstance(raw, bool):
            continue
        if isinstance(raw, (int, float)):
            pairs[str(name)] = float(raw)
        elif isinstance(raw, str):
            try:
                pairs[str(name)] = float(raw)
            except ValueError:
                continue
    return _split_step(pairs)


def _split_step(pairs: dict[str, float]) -> tuple[float | None, dict[str, float]]:
    step = None
    for key in STEP_KEYS:
        if key in pairs and math.isfinite(pairs[key]):
            step = pairs.pop(key)
            break
    return step, pairs


@dataclass(frozen=True)
class ReadSummary:
    """What a trial's output held, for saying why its objective is missing."""

    format: MetricsFormat
    names_seen: tuple[str, ...]  # every metric name found, wanted or not, in first-seen order
    n_lines: int
    n_lines_with_metrics: int

    def describe(self) -> str:
        how = "name=value pairs" if self.format is MetricsFormat.text else "JSON objects with numbers"
        if not self.n_lines:
            return "the training printed nothing"
        if not self.names_seen:
            return f"none of its {self.n_lines} output lines held a metric ({self.format.value}: {how})"
        return (f"metrics seen: {', '.join(self.names_seen)}; {self.n_lines - self.n_lines_with_metrics} of "
                f"{self.n_lines} output lines held no metric")


@dataclass
class MetricReader:
    """Turns lines of output into metric points for the metrics of interest, numbering steps
    where the output gives none. Never raises on bad input."""

    metric_names: list[str]
    format: MetricsFormat = MetricsFormat.text
    # Katib's metricsFormat regular expressions, instead of name=value pairs (TEXT only).
    patterns: list[str] | None = None
    _auto_step: dict[str, int] = field(default_factory=dict)
    _names_seen: dict[str, None] = field(default_factory=dict)
    _n_lines: int = 0
    _n_lines_with_metrics: int = 0

    def summary(self) -> ReadSummary:
        return ReadSummary(self.format, tuple(self._names_seen), self._n_lines, self._n_lines_with_metrics)

    def feed(self, lines: Iterable[str]) -> list[MetricPoint]:
        compiled = [re.compile(p) for p in self.patterns or ()]
        if compiled:
            def parse(line: str) -> tuple[float | None, dict[str, float]]:
                return parse_pattern_line(line, compiled)
        else:
            parse = parse_json_line if self.format is MetricsFormat.json else parse_text_line
        points: list[MetricPoint] = []
        for line in lines:
            step, values = parse(line[:10_000])
            self._n_lines += 1
            if values:
                self._n_lines_with_metrics += 1
                self._names_seen.update(dict.fromkeys(values))
            for name in self.metric_names:
                if name in values:
                    auto = self._auto_step.get(name, 0) + 1
                    self._auto_step[name] = auto
                    points.append(MetricPoint(name, step if step is not None else float(auto), values[name]))
        return points
