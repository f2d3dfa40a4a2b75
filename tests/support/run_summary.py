"""Lines for the end of a test run's output, from any test process (pytest-xdist workers included).

A test's own output is captured, and a worker's terminal is not the user's, so tests that measure something
worth reading after every run (the chaos tally, the HA fail-over times) record it here; the process that
owns the terminal prints every section once, after the results. Records are JSON lines in a directory the
controlling process creates and its workers inherit through the environment.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter

import pytest

ENV = "DIAL_RUN_SUMMARY_DIR"


def _record(entry: dict) -> None:
    directory = os.environ.get(ENV)
    if not directory:  # not under pytest with this plugin (a test module run by hand)
        return
    with open(os.path.join(directory, f"{os.getpid()}.jsonl"), "a") as f:
        f.write(json.dumps(entry) + "\n")


def count(section: str, key: str, **counts: int) -> None:
    """Add `counts` to the row `key` of `section` (summed over every test and process)."""
    _record({"section": section, "key": key, "counts": counts})


def line(section: str, text: str) -> None:
    _record({"section": section, "line": text})


def section_lines() -> dict[str, list[str]]:
    directory = os.environ.get(ENV)
    entries = []
    for name in sorted(os.listdir(directory)) if directory and os.path.isdir(directory) else []:
        with open(os.path.join(directory, name)) as f:
            entries += [json.loads(text) for text in f if text.strip()]
    sections: dict[str, list[str]] = {}
    rows: dict[str, dict[str, Counter]] = {}
    for entry in entries:
        sections.setdefault(entry["section"], [])
        if "line" in entry:
            sections[entry["section"]].append(entry["line"])
        else:
            rows.setdefault(entry["section"], {}).setdefault(entry["key"], Counter()).update(entry["counts"])
    for section, by_key in rows.items():
        sections[section] += [f"{key:66s} " + "  ".join(f"{name} {value:3d}" for name, value in counts.items())
                              for key, counts in by_key.items()]
    return sections


class RunSummary:
    def __init__(self) -> None:
        self.owned: str | None = None

    def pytest_configure(self, config: pytest.Config) -> None:
        if not hasattr(config, "workerinput") and not os.environ.get(ENV):
            self.owned = tempfile.mkdtemp(prefix="dial-run-summary-")
            os.environ[ENV] = self.owned  # xdist starts its workers after this, with this environment

    def pytest_terminal_summary(self, terminalreporter) -> None:
        for section, lines in section_lines().items():
            terminalreporter.write_line(f"\n{section}")
            for text in lines:
                terminalreporter.write_line("  " + text)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.owned:
            shutil.rmtree(self.owned, ignore_errors=True)
            os.environ.pop(ENV, None)


def register(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("dial-run-summary"):
        # pytest_configure is a historic hook: a plugin registered during it is configured at once
        config.pluginmanager.register(RunSummary(), "dial-run-summary")
