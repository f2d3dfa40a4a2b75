"""Checkpoint directories for population based training: the placeholders a trial template receives."""

from __future__ import annotations

import posixpath

from dial.api.experiment import Experiment
from dial.search import STRATEGIES
from dial.search.pbt import PbtSettings, PopulationBasedTraining

CHECKPOINT_DIR = "checkpointDir"
PARENT_CHECKPOINT_DIR = "parentCheckpointDir"
CHECKPOINT_PLACEHOLDERS = (CHECKPOINT_DIR, PARENT_CHECKPOINT_DIR)


def uses_checkpoints(experiment: Experiment) -> bool:
    return STRATEGIES.get(experiment.spec.algorithm.name) is PopulationBasedTraining


def pbt_settings(experiment: Experiment) -> PbtSettings | None:
    """The experiment's pbt settings, or None for other algorithms (assumes a validated spec)."""
    if not uses_checkpoints(experiment):
        return None
    return PbtSettings.model_validate(experiment.spec.algorithm.settings)


def checkpoint_values(root: str, trial_name: str, parent: str | None) -> dict[str, str]:
    """The checkpoint placeholders of one trial: its own directory, and its parent's ('' in generation 0)."""
    return {CHECKPOINT_DIR: posixpath.join(root, trial_name),
            PARENT_CHECKPOINT_DIR: posixpath.join(root, parent) if parent else ""}


def katib_checkpoints(experiment: Experiment) -> bool:
    """pbt with Katib's convention: the template names no checkpoint placeholder, because every trial finds its
    own checkpoint directory, pre-filled with its parent's, mounted at `suggestion_trial_dir`."""
    return uses_checkpoints(experiment) and not (experiment.spec.trial_template.placeholders() & set(CHECKPOINT_PLACEHOLDERS))
