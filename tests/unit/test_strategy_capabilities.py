"""Strategies' capability flags: what the engine and backends ask of a strategy instead of its name."""

from __future__ import annotations

import pytest

from dial.engine.checkpoints import checkpoint_settings, uses_checkpoints
from dial.engine.validation import validate_experiment
from dial.search import STRATEGIES
from dial.search.base import Strategy
from helpers import experiment

ALL = sorted({cls for cls in STRATEGIES.values()}, key=lambda cls: cls.name)


@pytest.mark.parametrize("strategy", ALL, ids=lambda cls: cls.name)
def test_a_strategy_that_cannot_zoom_or_be_warm_started_says_why(strategy: type[Strategy]):
    # Without its own words, the reason must come with its checkpoint errors.
    assert strategy.supports_zoom or strategy.why_no_zoom or strategy.needs_checkpoints
    assert strategy.supports_warm_start or strategy.why_no_warm_start or strategy.needs_checkpoints


@pytest.mark.parametrize("strategy", [cls for cls in ALL if cls.needs_checkpoints], ids=lambda cls: cls.name)
def test_a_strategy_that_needs_checkpoints_says_where_they_live(strategy: type[Strategy]):
    settings = strategy.Settings()
    assert isinstance(getattr(settings, "suggestion_trial_dir"), str)
    assert hasattr(settings, "checkpoint_claim_name")


def test_checkpoints_follow_the_flag_not_the_name():
    assert [cls.name for cls in ALL if cls.needs_checkpoints] == ["pbt"]
    assert uses_checkpoints(experiment(algorithm={"name": "population-based-training"}))  # an alias
    assert checkpoint_settings(experiment(algorithm={"name": "random"})) is None


def test_hyperband_is_multi_fidelity_and_refuses_zoom_with_its_reason():
    assert STRATEGIES["hyperband"].is_multi_fidelity and not STRATEGIES["random"].is_multi_fidelity
    exp = experiment(algorithm={"name": "hyperband", "settings": {"resource_name": "layers"},
                                "zoom": {"afterTrials": 4}})
    assert "spec.algorithm.zoom: hyperband's brackets assume one fixed space; it cannot zoom" in [
        str(e) for e in validate_experiment(exp)]
