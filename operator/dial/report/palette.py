"""Colours shared by the PNGs and the HTML page, so a phase looks the same in both."""

from __future__ import annotations

from dial.api.trial import TrialPhase

PHASE_COLORS: dict[TrialPhase, str] = {
    TrialPhase.pending: "#9e9e9e",
    TrialPhase.running: "#1f77b4",
    TrialPhase.succeeded: "#2ca02c",
    TrialPhase.failed: "#d62728",
    TrialPhase.early_stopped: "#ff7f0e",
    TrialPhase.metrics_unavailable: "#9467bd",
}
BEST_COLOR = "#111111"
CUT_MARKER_COLOR = "#d62728"
FRONT_COLOR = "#e6550d"  # trials on the Pareto front
DOMINATED_COLOR = "#9ecae1"
# Perceptually uniform, readable in grey: objective colour scales in both renderers.
OBJECTIVE_SCALE = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"]
