"""The worker image ships every command the chart and the operator run, as the package it installs."""

from __future__ import annotations

import importlib.util
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from setuptools import find_packages

from dial.cli import build_parser

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from helm_chart import CHART, ROOT, render  # noqa: E402

DOCKERFILE = ROOT / "worker_image" / "Dockerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def console_scripts() -> dict[str, str]:
    return PYPROJECT["project"]["scripts"]


def packaged_modules() -> set[str]:
    """Modules `pip install .` puts in the image: pyproject's package discovery, run the same way."""
    find = PYPROJECT["tool"]["setuptools"]["packages"]["find"]
    where = ROOT / find["where"][0]
    modules = set()
    for package in find_packages(where=str(where), include=find["include"]):
        directory = where / package.replace(".", "/")
        modules.add(package)
        modules.update(f"{package}.{p.stem}" for p in directory.glob("*.py") if p.stem != "__init__")
    return modules


def assert_dial_command(argv: list[str], subcommand: str) -> None:
    """`dial ...` resolves to a packaged console script whose parser accepts these exact arguments."""
    script, *args = argv
    assert script in console_scripts(), f"{script} is not a console script of the package"
    module = console_scripts()[script].split(":")[0]
    assert module in packaged_modules()
    parsed = build_parser().parse_args(args)
    assert parsed.command == subcommand


@pytest.mark.parametrize("sets", [(), ("watchNamespaces={a,b}", "operator.logLevel=debug"), ("metrics.enabled=false",)])
def test_the_charts_operator_command_exists_and_accepts_its_arguments(helm, sets):
    docs = render(helm, *sets)
    container = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert_dial_command([*container["command"], *container["args"]], "operator")


def test_the_collector_sidecar_command_exists_and_accepts_its_arguments():
    from dial.engine import load_experiment
    from dial.kube.jobs import COLLECTOR_CONTAINER, CollectorSettings, trial_job

    experiment = load_experiment((ROOT / "examples/sklearn-digits/experiment.yaml").read_text(), "digits")
    trial = {"metadata": {"name": "sklearn-digits-0000", "namespace": "ml", "uid": "u"},
             "apiVersion": "dial.dev/v1alpha1", "kind": "Trial",
             "spec": {"parameterAssignments": {"C": 1.0, "gamma": 0.01}}}
    job = trial_job(experiment, trial, CollectorSettings())
    sidecar = next(c for c in job["spec"]["template"]["spec"]["initContainers"] if c["name"] == COLLECTOR_CONTAINER)
    assert_dial_command([*sidecar["command"], *sidecar["args"]], "collect")


def test_every_example_trial_module_is_packaged():
    examples = sorted((ROOT / "examples").glob("*/experiment.yaml"))
    assert examples
    for path in examples:
        spec = yaml.safe_load(path.read_text())["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
        for container in spec["containers"]:
            command = container["command"]
            assert command[:2] == ["python", "-m"], f"{path}: {command}"
            assert command[2] in packaged_modules(), f"{path}: {command[2]} is not in the package"
            assert importlib.util.find_spec(command[2]) is not None


def test_dockerfile_pins_its_base_installs_the_package_and_runs_as_the_charts_user():
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG BASE=(\S+)$", text, re.M)
    assert base, "the base image is an ARG with a default"
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base.group(1)), base.group(1)
    assert re.search(r"pip install --no-compile \.\s", text), "the image installs the package's dependencies"
    assert re.search(r"pip install --no-compile --no-deps \.\s", text), "the image installs the repository's package"
    assert text.index("COPY pyproject.toml ./") < text.index("COPY operator ./operator"), \
        "dependencies are installed before the sources are copied (a code change reuses that layer)"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    user = re.search(r"^USER (\d+):(\d+)$", text, re.M)
    assert user and int(user.group(1)) == values["operator"]["runAsUser"] != 0
    ignore = (ROOT / "worker_image" / "Dockerfile.dockerignore").read_text().split()
    assert {"!pyproject.toml", "!README.md", "!operator/"} <= set(ignore)


def test_readme_documents_the_image_the_chart_refers_to():
    readme = (ROOT / "worker_image" / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["repository"] in readme
    assert "docker build -f worker_image/Dockerfile" in readme and "docker push" in readme
    assert "image.digest" in readme and "collector.image" in readme
