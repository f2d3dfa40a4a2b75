"""`kubectl dial` (the `kubectl-dial` executable): status, list, suspend, resume, stop and logs of Dial experiments.

`stop NAME` ends an experiment gracefully: it lowers spec.maxTrialCount to the number of trials
already counted against the budget, so no new trial starts, running trials finish on their own
merit and the experiment completes as Succeeded (MaxTrialCountReached) with every result kept. It
records who stopped it and the old budget in the `dial.dev/stopped-by` annotation. When no trial
was started yet (maxTrialCount cannot be 0) it suspends the experiment instead. `suspend` stops
running trials now; `resume` lets trials start again.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from rich.console import Console

from dial.api.experiment import ExperimentPhase
from dial.kubectl.cluster import STOPPED_ANNOTATION, ClusterError, DialCluster, budget_used
from dial.kubectl.views import experiments_table, status_view

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def _now() -> datetime:
    return datetime.now(timezone.utc)


def cmd_list(cluster: DialCluster, args: argparse.Namespace, console: Console) -> int:
    experiments = cluster.experiments(all_namespaces=args.all_namespaces)
    if not experiments:
        where = "any namespace" if args.all_namespaces else f"namespace {cluster.namespace!r}"
        print(f"No Dial experiments found in {where}.", file=sys.stderr)
        return 0
    console.print(experiments_table(experiments, _now(), show_namespace=args.all_namespaces))
    return 0


def cmd_status(cluster: DialCluster, args: argparse.Namespace, console: Console) -> int:
    experiment = cluster.experiment(args.name)
    console.print(status_view(experiment, cluster.trials(args.name), _now()))
    return 0


def cmd_suspend(cluster: DialCluster, args: argparse.Namespace, console: Console) -> int:
    cluster.patch_experiment(args.name, {"spec": {"suspend": True}})
    print(f"experiment {args.name} suspended: running trials are stopped and none start until "
          f"`kubectl dial resume {args.name}`")
    return 0


def cmd_resume(cluster: DialCluster, args: argparse.Namespace, console: Console) -> int:
    experiment = cluster.patch_experiment(args.name, {"spec": {"suspend": False}})
    note = ""
    if STOPPED_ANNOTATION in (experiment.metadata.annotations or {}):
        note = (f" (it was stopped: maxTrialCount is {experiment.spec.max_trial_count}; raise it with "
                f"`kubectl patch experiment {args.name} --type=merge -p '{{\"spec\":{{\"maxTrialCount\":N}}}}'`)")
    print(f"experiment {args.name} resumed{note}")
    return 0


def cmd_stop(cluster: DialCluster, args: argparse.Namespace, console: Console) -> int:
    experiment = cluster.experiment(args.name)
    if experiment.status.phase in (ExperimentPhase.succeeded, ExperimentPhase.failed):
        print(f"experiment {args.name} already finished ({experiment.status.phase.value}): nothing to stop")
        return 0
    used = budget_used(cluster.trials(args.name))
    old = experiment.spec.max_trial_count
    mark = f"kubectl-dial at {_now().isoformat(timespec='seconds')}; maxTrialCount was {old}"
    if used == 0:
        cluster.patch_experiment(args.name, {"metadata": {"annotations": {STOPPED_ANNOTATION: mark}},
                                             "spec": {"suspend": True}})
        print(f"experiment {args.name} had started no trial: suspended it instead (maxTrialCount cannot be 0)")
        return 0
    if used >= old:
        print(f"experiment {args.name} already started all {old} trials of its budget: it ends when they finish")
        return 0
    cluster.patch_experiment(args.name, {"metadata": {"annotations": {STOPPED_ANNOTATION: mark}},
                                         "spec": {"maxTrialCount": used}})
    print(f"experiment {args.name} stopped: maxTrialCount {old} -> {used}; no new trial starts, "
          "running trials finish and their results are kept")
    return 0


def cmd_logs(cluster: DialCluster, args: argparse.Namespace, console: Console) -> int:
    trial = cluster.trial(args.trial)
    pods = cluster.trial_pods(trial.name)
    if not pods:
        print(f"kubectl dial: trial {trial.name} has no pod (phase {trial.phase.value}"
              + (f", {trial.status.reason}" if trial.status.reason else "") + ")", file=sys.stderr)
        return EXIT_FAILED
    pod = pods[0]
    container = args.container
    if container is None:
        template = cluster.experiment(trial.spec.experiment).spec.trial_template
        names = [c.name for c in pod.spec.containers]
        container = template.primary_container_name if template.primary_container_name in names else names[0]
    for chunk in cluster.logs(pod.metadata.name, container, follow=args.follow, tail_lines=args.tail):
        sys.stdout.write(chunk)
        sys.stdout.flush()
    return 0


def _connection_flags(default: object) -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--namespace", "-n", default=default, help="namespace (default: the kubeconfig context's)")
    flags.add_argument("--kubeconfig", default=default, help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    flags.add_argument("--context", default=default, help="kubeconfig context")
    return flags


def build_parser() -> argparse.ArgumentParser:
    # Flags are accepted before and after the subcommand; the subcommand's copy must not reset
    # a value given before it, hence SUPPRESS as its default.
    common = _connection_flags(argparse.SUPPRESS)
    parser = argparse.ArgumentParser(prog="kubectl dial", parents=[_connection_flags(None)],
                                     description="Look at and steer Dial hyperparameter-tuning experiments.",
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    listing = sub.add_parser("list", parents=[common], help="experiments with phase, progress and best objective")
    listing.add_argument("--all-namespaces", "-A", action="store_true")
    listing.set_defaults(handler=cmd_list)
    status = sub.add_parser("status", parents=[common], help="one experiment: budget, best and top trials, running curves")
    status.add_argument("name")
    status.set_defaults(handler=cmd_status)
    for name, handler, text in (("suspend", cmd_suspend, "stop running trials now and start none"),
                                ("resume", cmd_resume, "let a suspended experiment start trials again"),
                                ("stop", cmd_stop, "start no new trial; let running ones finish (see below)")):
        command = sub.add_parser(name, parents=[common], help=text)
        command.add_argument("name")
        command.set_defaults(handler=handler)
    logs = sub.add_parser("logs", parents=[common], help="the training container's log of a trial")
    logs.add_argument("trial")
    logs.add_argument("--container", "-c", default=None, help="container (default: the primary training container)")
    logs.add_argument("--follow", "-f", action="store_true", help="keep streaming while the trial runs")
    logs.add_argument("--tail", type=int, default=None, help="only the last N lines")
    logs.set_defaults(handler=cmd_logs)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cluster = DialCluster(namespace=args.namespace, kubeconfig=args.kubeconfig, context=args.context)
        return args.handler(cluster, args, Console())
    except ClusterError as exc:
        print(f"kubectl dial {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
