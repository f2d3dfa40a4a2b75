"""Checkpoint directories for population based training: the placeholders a trial template receives."""

from __future__ import annotations

import posixpath
import re

from dial.api.experiment import Experiment
from dial.search import STRATEGIES
from dial.search.base import CheckpointSettings

CHECKPOINT_DIR = "checkpointDir"
PARENT_CHECKPOINT_DIR = "parentCheckpointDir"
CHECKPOINT_PLACEHOLDERS = (CHECKPOINT_DIR, PARENT_CHECKPOINT_DIR)


def uses_checkpoints(experiment: Experiment) -> bool:
    strategy = STRATEGIES.get(experiment.spec.algorithm.name)
    return strategy is not None and strategy.needs_checkpoints


def checkpoint_settings(experiment: Experiment) -> CheckpointSettings | None:
    """Where the experiment's strategy keeps checkpoints, or None for one without (assumes a validated spec)."""
    if not uses_checkpoints(experiment):
        return None
    settings = STRATEGIES[experiment.spec.algorithm.name].Settings.model_validate(experiment.spec.algorithm.settings)
    assert isinstance(getattr(settings, "suggestion_trial_dir", None), str), "needs_checkpoints without CheckpointSettings"
    return settings  # type: ignore[return-value]


def checkpoint_values(root: str, trial_name: str, parent: str | None) -> dict[str, str]:
    """The checkpoint placeholders of one trial: its own directory, and its parent's ('' in generation 0)."""
    return {CHECKPOINT_DIR: posixpath.join(root, trial_name),
            PARENT_CHECKPOINT_DIR: posixpath.join(root, parent) if parent else ""}


def katib_checkpoints(experiment: Experiment) -> bool:
    """pbt with Katib's convention: the template names no checkpoint placeholder, because every trial finds its
    own checkpoint directory, pre-filled with its parent's, mounted at `suggestion_trial_dir`."""
    return uses_checkpoints(experiment) and not (experiment.spec.trial_template.placeholders() & set(CHECKPOINT_PLACEHOLDERS))


def relocate(text: str, mount: str, directory: str) -> str:
    """`text` (an argument, an env value) with `mount`, or any path below it, moved under `directory`:
    `--checkpoint=/var/log/katib/checkpoints/` becomes `--checkpoint=<directory>/`. `dial run` gives Katib's
    convention's trials their own directory this way, since no volume can be mounted for a process."""
    if mount == "/":
        return text  # every absolute path is below it: nothing can be told apart (check_runnable refuses it)
    # Whole path components only: not /opt/var/log/..., not /var/log/katib/checkpoints2.
    pattern = re.compile(rf"(?<![\w.\-/]){re.escape(mount)}(?![\w.\-])")
    return pattern.sub(lambda _: directory, text)
