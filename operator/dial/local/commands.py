"""What `dial run` runs for a trial (the primary container's command, env and workingDir), and whether it can run an experiment at all."""

from __future__ import annotations

from pathlib import Path

from dial.api.experiment import CollectorKind, Experiment
from dial.api.space import ParameterValue
from dial.engine import ExperimentError, SpecError, render_job_spec
from dial.engine.checkpoints import checkpoint_settings, katib_checkpoints, relocate
from dial.engine.template import rendered_primary_container, substitute


def local_command(experiment: Experiment, trial_name: str, assignment: dict[str, ParameterValue], *, parent: str | None = None,
                  checkpoint_root: Path | None = None) -> tuple[list[str], dict[str, str], str | None]:
    """The primary container's command, plain env values and workingDir, parameters substituted.

    With pbt and Katib's convention, suggestion_trial_dir (and paths below it) in the command and env become the
    trial's own directory `<checkpoint_root>/<trial>`, which the backend fills with its parent's checkpoint first:
    what a pod finds mounted there (`dial.kube.jobs`), without a mount.
    """
    template = experiment.spec.trial_template
    job_spec = render_job_spec(experiment, trial_name, assignment, parent=parent,
                               checkpoint_root=str(checkpoint_root) if checkpoint_root is not None else None)
    container = rendered_primary_container(template, job_spec)
    command = [str(c) for c in [*(container.get("command") or []), *(container.get("args") or [])]]
    env = {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}
    settings = checkpoint_settings(experiment)
    if settings is not None and katib_checkpoints(experiment) and checkpoint_root is not None:
        own = str(checkpoint_root / trial_name)
        command = [relocate(c, settings.suggestion_trial_dir, own) for c in command]
        env = {name: relocate(value, settings.suggestion_trial_dir, own) for name, value in env.items()}
    return command, env, container.get("workingDir")


def check_runnable(experiment: Experiment) -> None:
    """Locally a trial needs an explicit command: there is no image entrypoint to fall back on."""
    template = experiment.spec.trial_template
    if template.config_map is not None:
        source = template.config_map
        raise ExperimentError([SpecError("spec.trialTemplate.configMap",
                                         f"dial run cannot read ConfigMap {source.config_map_name!r}: put the template "
                                         f"({source.template_path}) under spec.trialTemplate.trialSpec")])
    if template.trial_spec is not None and not template.is_job:
        kind = template.manifest.get("kind")
        raise ExperimentError([SpecError("spec.trialTemplate.trialSpec",
                                         f"dial run runs a batch/v1 Job's primary container; a {kind} trial runs on "
                                         "Kubernetes, whose controller for it makes the pods")])
    if experiment.spec.metrics_collector.kind in (CollectorKind.tensorflow_event, CollectorKind.none):
        raise ExperimentError([SpecError("spec.metricsCollector.kind",
                                         f"dial run reads metrics from stdout or a file (StdOut or File), not with "
                                         f"{experiment.spec.metrics_collector.kind.value}")])
    if katib_checkpoints(experiment):
        _check_katib_checkpoints(experiment)
    command, _, _ = local_command(experiment, "check", {p.name: 0 for p in experiment.spec.parameters})
    if not command:
        raise ExperimentError([SpecError("spec.trialTemplate.trialSpec.spec.template.spec.containers[].command",
                                         "dial run needs the primary container's command (or args)")])


def _check_katib_checkpoints(experiment: Experiment) -> None:
    """Katib's convention needs suggestion_trial_dir in the command or env, for dial run to put the trial's own
    directory in its place: left to a default inside the training, every trial would share one real directory."""
    settings = checkpoint_settings(experiment)
    assert settings is not None
    mount = settings.suggestion_trial_dir
    assignment = {p.name: 0 for p in experiment.spec.parameters}
    plain, plain_env, _ = local_command(experiment, "check", assignment)
    moved, moved_env, _ = local_command(experiment, "check", assignment, checkpoint_root=Path("/dial-run-check"))
    if mount == "/" or (plain == moved and plain_env == moved_env):
        raise ExperimentError([SpecError("spec.trialTemplate.trialSpec",
                                         "pbt with Katib's checkpoint convention: dial run gives each trial its own "
                                         "checkpoint directory (under the output's checkpoints/) where the training "
                                         f"container's command, args or env name suggestion_trial_dir {mount!r}, and "
                                         "they name it nowhere; pass it (e.g. --checkpoint=" + mount + "), or use "
                                         "${trialParameters.checkpointDir} and ${trialParameters.parentCheckpointDir}")])


def substitute_trial_fields(experiment: Experiment, trial_name: str, text: str) -> str:
    """`${trialSpec.Name}` and the other trial fields in a text (the metrics file's path); no parameters."""
    return substitute(text, {}, {"Name": trial_name, "Namespace": "default", "Experiment": experiment.name})
