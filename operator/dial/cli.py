"""The `dial` command: run | crds | validate | report (and, with the operator, operator | collect)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from dial import __version__
from dial.api.experiment import Experiment, ExperimentPhase

# The engine (the planner, every strategy, scipy) is imported by the commands that use it, not here: the
# collector sidecar (`dial collect`) starts in every trial pod and needs none of it.

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
DEFAULT_RESULTS_DIR = Path("dial-results")


def _load(path: Path) -> Experiment:
    from dial.engine import ExperimentError, experiment_warnings, load_experiment

    try:
        text = path.read_text()
    except OSError as exc:
        raise ExperimentError([], str(path)) from exc
    experiment = load_experiment(text, str(path))
    # Accepted but not meant to be silent: Katib fields that mean nothing (or something else) in Dial.
    for warning in experiment_warnings(experiment):
        print(f"{path}: warning: {warning}", file=sys.stderr)
    return experiment


def cmd_run(args: argparse.Namespace) -> int:
    from dial.local.display import Display
    from dial.local.results import default_output_dir, latest_output_dir, load_results
    from dial.local.runner import LocalRunner, check_runnable, utcnow
    from dial.local.signals import Interrupted, StopRequests, silence_stdout
    from dial.local.warm_start import local_warm_start
    from dial.engine.resume import changes

    experiment = _load(args.experiment)
    check_runnable(experiment)
    trials = []
    if args.resume:
        output = args.output or latest_output_dir(DEFAULT_RESULTS_DIR, experiment.name)
        if output is None or not (output / "results.json").exists():
            where = output or f"{DEFAULT_RESULTS_DIR}/{experiment.name}-*"
            print(f"dial run: --resume: no earlier results found in {where}", file=sys.stderr)
            return EXIT_BAD_INPUT
        previous, trials = load_results(output)
        if changed := changes(previous, experiment):
            what = "\n".join(f"  {line}" for line in changed)
            if not args.allow_changes:
                print(f"dial run: --resume: {args.experiment} differs from the experiment recorded in {output}:\n"
                      f"{what}\nthe recorded trials answer the old question; restore the file, start a new run "
                      "(without --resume), or pass --allow-changes to continue anyway", file=sys.stderr)
                return EXIT_BAD_INPUT
            print(f"resuming with a changed experiment (--allow-changes):\n{what}", file=sys.stderr)
        experiment.status = previous.status
        print(f"resuming {experiment.name} in {output}: {len(trials)} trials already recorded")
    else:
        output = args.output or default_output_dir(DEFAULT_RESULTS_DIR, experiment.name, utcnow())
        if (output / "results.json").exists():
            print(f"dial run: {output} already holds results; pass --resume to continue them "
                  "or choose another --output", file=sys.stderr)
            return EXIT_BAD_INPUT
        # Read once: a resumed run keeps this snapshot (in results.json) rather than reading again.
        experiment.status.warm_start = local_warm_start(experiment, base_dir=Path.cwd(), results_root=DEFAULT_RESULTS_DIR)
        if experiment.status.warm_start is not None:
            print("warm start: " + "; ".join(experiment.status.warm_start.notes))
    metrics = None
    if args.metrics_port is not None:
        from dial.metrics.exporter import serve_metrics

        metrics = serve_metrics(args.metrics_port, args.metrics_address)
        print(f"metrics: http://{args.metrics_address}:{args.metrics_port}/metrics")
    runner = LocalRunner(experiment, output, base_dir=Path.cwd(), trials=trials,
                         display=Display(live=None if args.live is None else args.live),
                         grace_seconds=args.grace_period, metrics=metrics)
    try:
        with StopRequests() as stops:
            final = runner.run(stops)
    except Interrupted as cause:
        if cause.signum == signal.SIGPIPE:
            silence_stdout()
        print(f"\ninterrupted ({cause.why}): observations kept in {output}; continue with "
              f"`dial run {args.experiment} --output {output} --resume`", file=sys.stderr)
        return cause.exit_code
    status = final.status
    print(f"\n{experiment.name}: {status.phase.value} ({status.conditions[0].reason}: {status.conditions[0].message})")
    if status.best_trial is not None:
        params = ", ".join(f"{k}={v}" for k, v in status.best_trial.parameters.items())
        print(f"best trial {status.best_trial.name}: {experiment.spec.objective.primary.metric_name}="
              f"{status.best_trial.objective:.6g} with {params}")
    if status.pareto_front is not None:
        shown = "" if len(status.pareto_front) == status.pareto_front_size else f", {len(status.pareto_front)} shown"
        print(f"Pareto front ({status.pareto_front_size} trials{shown}):")
        primary = experiment.spec.objective.primary
        for entry in sorted(status.pareto_front, key=lambda e: primary.loss(e.objectives[primary.metric_name])):
            values = " ".join(f"{k}={v:.6g}" for k, v in entry.objectives.items())
            params = ", ".join(f"{k}={v}" for k, v in entry.parameters.items())
            print(f"  {entry.name}: {values} with {params}")
    print(f"results: {output}/results.json and {output}/trials.csv")
    return 0 if status.phase is ExperimentPhase.succeeded else EXIT_FAILED


def cmd_crds(args: argparse.Namespace) -> int:
    from dial.api.crds import render_crds, write_crds

    # By default both copies: the chart ships its own, and a stale one would install old schemas.
    directories = args.directory or [d for d in (Path("crds"), Path("charts/dial/crds")) if d == Path("crds") or d.is_dir()]
    if args.check:
        rendered = render_crds()
        stale = [str(d / name) for d in directories for name, text in rendered.items()
                 if not (d / name).exists() or (d / name).read_text() != text]
        if stale:
            print(f"stale CRDs: {', '.join(stale)}; run `dial crds`", file=sys.stderr)
            return EXIT_FAILED
        return 0
    for directory in directories:
        for path in write_crds(directory):
            print(f"wrote {path}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    experiment = _load(args.experiment)
    print(f"{args.experiment}: experiment {experiment.name!r} is valid "
          f"({len(experiment.spec.parameters)} parameters, algorithm {experiment.spec.algorithm.name})")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from dial.report import write_report

    if (args.results is None) == (args.experiment is None):
        print("dial report: give a results directory or --experiment NAME (not both)", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.results is not None:
        from dial.local.results import RESULTS_FILE, load_results

        if not (args.results / RESULTS_FILE).exists():
            print(f"dial report: {args.results}: no {RESULTS_FILE} (expected the --output directory of `dial run`)",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
        experiment, trials = load_results(args.results)
        out = args.out or args.results / "report.html"
    else:
        from dial.kubectl.cluster import ClusterError, DialCluster

        try:
            cluster = DialCluster(namespace=args.namespace, kubeconfig=args.kubeconfig, context=args.context)
            experiment = cluster.experiment(args.experiment)
            trials = cluster.trials(args.experiment)
        except ClusterError as exc:
            print(f"dial report: {exc}", file=sys.stderr)
            return EXIT_FAILED
        out = args.out or Path(f"{args.experiment}-report.html")
    files = write_report(experiment, trials, out)
    print(f"wrote {files.html} ({len(trials)} trials)")
    for path in files.pngs.values():
        print(f"wrote {path}")
    return 0


def cmd_operator(args: argparse.Namespace) -> int:
    from dial.kube.jobs import CollectorSettings
    from dial.kube.operator import run_operator

    if bool(args.namespaces) == args.all_namespaces:
        print("dial operator: give --namespace NS (one or more) or --all-namespaces", file=sys.stderr)
        return EXIT_BAD_INPUT
    collector = CollectorSettings(image=args.collector_image, service_account=args.collector_service_account)
    lease = None
    if args.leader_election:
        from dial.kube.leadership import LeaseSettings, default_identity

        if not args.leader_election_namespace:
            print("dial operator: --leader-election needs --leader-election-namespace (or $POD_NAMESPACE)",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
        try:
            lease = LeaseSettings(namespace=args.leader_election_namespace, name=args.leader_election_id,
                                  identity=args.leader_election_identity or default_identity(),
                                  lease_duration_s=args.lease_duration, renew_deadline_s=args.renew_deadline,
                                  retry_period_s=args.retry_period)
        except ValueError as exc:
            print(f"dial operator: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    run_operator(namespaces=args.namespaces, all_namespaces=args.all_namespaces, collector=collector,
                 resync_seconds=args.resync_seconds, liveness_endpoint=args.liveness, verbose=args.verbose,
                 metrics_port=args.metrics_port, workers=args.workers, lease=lease,
                 readiness_endpoint=args.readiness, cached_reads=args.cached_reads)
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    import json
    import signal
    import threading

    from pydantic import ValidationError

    from dial.api.experiment import MetricsFormat, ObjectiveSpec
    from dial.kube.client import Kube, load_api_client
    from dial.metrics.collector import Collector, FileFollower, LineSource
    from dial.metrics.parsing import MetricReader

    try:
        objective = ObjectiveSpec.model_validate(json.loads(args.objective))
    except (ValueError, ValidationError) as exc:
        print(f"dial collect: --objective: not an objective spec: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    kube = Kube(load_api_client())
    if args.format == "TensorFlowEvent":  # a directory of event files, read as JSON metric lines
        from dial.metrics.tfevents import EventDirectoryFollower

        follower: LineSource = EventDirectoryFollower(args.source, objective.metric_names)
        reader = MetricReader(objective.metric_names, MetricsFormat.json)
    else:
        follower = FileFollower(args.source)
        reader = MetricReader(objective.metric_names, MetricsFormat(args.format), patterns=args.metrics_format)
    collector = Collector(follower, reader, objective,
                          lambda patch: kube.patch_trial_status(args.namespace, args.trial, patch), interval=args.interval)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.ready_file is not None:  # from here on a SIGTERM flushes: the training may start
        args.ready_file.write_text("ready\n")
    collector.run(stop)
    return 0


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dial", description="Hyperparameter tuning on a laptop or on Kubernetes.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="internal commands (used by the chart, CI and trial pods, not run by hand):\n"
               "  crds      write the CRDs generated from the API models (crds/ and the chart's copy)\n"
               "  collect   (trial sidecar) report a trial's metrics to its Trial status")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,validate,report,operator}")

    run = sub.add_parser("run", help="run an experiment with local processes, no cluster")
    run.add_argument("experiment", type=Path, help="experiment YAML file")
    run.add_argument("--output", "-o", type=Path, default=None,
                     help=f"results directory (default: {DEFAULT_RESULTS_DIR}/<name>-<time>)")
    run.add_argument("--resume", action="store_true",
                     help=f"continue an earlier run: --output, else the latest {DEFAULT_RESULTS_DIR}/<name>-* "
                          "(refused if the space, objective, algorithm, seed or template changed)")
    run.add_argument("--allow-changes", action="store_true",
                     help="with --resume: continue even though the experiment file changed in those fields")
    run.add_argument("--grace-period", type=float, default=5.0, metavar="SECONDS",
                     help="when stopping a trial, seconds between SIGTERM and SIGKILL (default: %(default)s)")
    run.add_argument("--metrics-port", type=_port, default=None, metavar="PORT",
                     help="serve Prometheus metrics at http://ADDRESS:PORT/metrics while the run lasts")
    run.add_argument("--metrics-address", default="127.0.0.1", metavar="ADDRESS",
                     help="address for --metrics-port (default: %(default)s; 0.0.0.0 for every interface)")
    live = run.add_mutually_exclusive_group()
    live.add_argument("--live", dest="live", action="store_true", default=None, help="always show the live table")
    live.add_argument("--no-live", dest="live", action="store_false", help="print one line per event")
    run.set_defaults(handler=cmd_run)

    crds = sub.add_parser("crds", description="Write the CRDs generated from the API models (crds/ and the chart's copy).")
    crds.add_argument("directory", type=Path, nargs="*",
                      help="where to write them (default: crds/ and charts/dial/crds/ when it exists)")
    crds.add_argument("--check", action="store_true", help="exit 1 when a directory is stale")
    crds.set_defaults(handler=cmd_crds)

    validate = sub.add_parser("validate", help="check an experiment file without running it")
    validate.add_argument("experiment", type=Path, help="experiment YAML file: checked as `dial run` checks it, "
                                                       "nothing is run")
    validate.set_defaults(handler=cmd_validate)

    operator = sub.add_parser("operator", help="run the Kubernetes operator (kopf) for some namespaces or all")
    operator.add_argument("--namespace", "-n", dest="namespaces", action="append", default=[],
                          help="watch this namespace (repeatable)")
    operator.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace")
    operator.add_argument("--liveness", default=None, metavar="URL",
                          help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz")
    operator.add_argument("--readiness", default=None, metavar="URL",
                          help="serve a readiness probe (200 while the API server answers, leader or standby), "
                               "e.g. http://0.0.0.0:8081/readyz")
    election = operator.add_argument_group(
        "leader election", "run several replicas: only the one holding a coordination.k8s.io Lease reconciles")
    election.add_argument("--leader-election", action="store_true", help="campaign for the Lease before reconciling")
    election.add_argument("--leader-election-namespace", default=os.environ.get("POD_NAMESPACE"), metavar="NS",
                          help="namespace of the Lease (default: $POD_NAMESPACE)")
    election.add_argument("--leader-election-id", default="dial-operator", metavar="NAME",
                          help="name of the Lease (default: %(default)s)")
    election.add_argument("--leader-election-identity", default=None, metavar="ID",
                          help="this replica's holder identity (default: $POD_NAME, else host-pid)")
    election.add_argument("--lease-duration", type=int, default=15, metavar="S",
                          help="a standby takes over when the leader has not renewed for this long "
                               "(default: %(default)s)")
    election.add_argument("--renew-deadline", type=int, default=10, metavar="S",
                          help="the leader stops writing and exits when it could not renew for this long "
                               "(default: %(default)s)")
    election.add_argument("--retry-period", type=int, default=2, metavar="S",
                          help="how often the Lease is renewed or tried (default: %(default)s)")
    operator.add_argument("--collector-image", default=os.environ.get("DIAL_COLLECTOR_IMAGE", f"dial-worker:{__version__}"),
                          help="image of the metrics collector sidecar (default: $DIAL_COLLECTOR_IMAGE or %(default)s)")
    operator.add_argument("--collector-service-account", default="dial-collector",
                          help="ServiceAccount of trial pods that do not name one (default: %(default)s)")
    operator.add_argument("--resync-seconds", type=float, default=30.0,
                          help="reconcile every experiment this often even without events (default: %(default)s)")
    operator.add_argument("--metrics-port", type=_port, default=None, metavar="PORT",
                          help="serve Prometheus metrics at http://0.0.0.0:PORT/metrics")
    operator.add_argument("--workers", type=int, default=16,
                          help="reconciles run at once, each for a different experiment (default: %(default)s)")
    operator.add_argument("--cached-reads", action=argparse.BooleanOptionalAction, default=True,
                          help="serve a reconcile's reads from what the watches delivered, with fresh LISTs only at "
                               "start, after a failure and every tenth resync; --no-cached-reads reads everything "
                               "fresh on every reconcile (default: cached)")
    operator.add_argument("--verbose", "-v", action="store_true", help="debug logging, kopf's included")
    operator.set_defaults(handler=cmd_operator)

    collect = sub.add_parser("collect", description="(trial sidecar) Report a trial's metrics to its Trial status.")
    collect.add_argument("--namespace", required=True)
    collect.add_argument("--trial", required=True, help="the Trial's name")
    collect.add_argument("--source", type=Path, required=True, help="the training's output file or metrics file")
    collect.add_argument("--format", choices=["TEXT", "JSON", "TensorFlowEvent"], default="TEXT",
                         help="TensorFlowEvent: --source is a directory of TensorFlow event files")
    collect.add_argument("--metrics-format", action="append", default=None, metavar="REGEX",
                         help="Katib's filter: a regular expression whose groups are a metric's name and value "
                              "(repeatable; TEXT only)")
    collect.add_argument("--objective", required=True, help="the experiment's spec.objective as JSON")
    collect.add_argument("--interval", type=float, default=1.0, help="seconds between status writes (default: %(default)s)")
    collect.add_argument("--ready-file", type=Path, default=None, help="file to create once ready to collect")
    collect.set_defaults(handler=cmd_collect)

    report = sub.add_parser("report", help="write an HTML page and PNG charts of a run's or a cluster experiment's results")
    report.add_argument("results", type=Path, nargs="?", default=None, help="a `dial run` results directory")
    report.add_argument("--experiment", "-e", default=None, help="read this Experiment and its Trials from the cluster")
    report.add_argument("--namespace", "-n", default=None, help="the experiment's namespace (default: the context's)")
    report.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    report.add_argument("--context", default=None, help="kubeconfig context")
    report.add_argument("--out", type=Path, default=None,
                        help="HTML file to write; PNGs go beside it as <stem>-<chart>.png "
                             "(default: RESULTS/report.html or ./<experiment>-report.html)")
    report.set_defaults(handler=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except BrokenPipeError:  # `dial ... | head`: the reader has what it wanted
        from dial.local.signals import silence_stdout

        silence_stdout()
        return 128 + signal.SIGPIPE
    except Exception as exc:
        validation = sys.modules.get("dial.engine.validation")  # loaded by every command that can raise it
        if validation is None or not isinstance(exc, validation.ExperimentError):
            raise
        if exc.__cause__ is not None and not exc.errors:
            print(f"dial {args.command}: {exc.source}: {exc.__cause__}", file=sys.stderr)
        else:
            print(f"dial {args.command}: invalid experiment\n{exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
