"""`dial --version` and the help texts a new user reads first."""

from __future__ import annotations

import pytest

from dial import __version__
from dial.cli import main


def help_of(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as info:
        main([*args])
    assert info.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert help_of(capsys, "--version") == f"dial {__version__}"


def test_run_help_gives_the_grace_period_default_and_where_resume_looks(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_of(capsys, "run", "--help")
    assert "seconds between SIGTERM and SIGKILL (default: 5.0)" in text
    assert "else the latest dial-results/<name>-*" in text and "--allow-changes" in text


def test_validate_help_describes_its_argument(capsys: pytest.CaptureFixture[str]) -> None:
    assert "experiment YAML file: checked as `dial run` checks it" in help_of(capsys, "validate", "--help")


def test_internal_subcommands_are_listed_apart(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    user, _, internal = capsys.readouterr().out.partition("internal commands")
    assert all(f"    {name} " in user for name in ("run", "validate", "report", "operator"))
    assert "crds" not in user and "collect" not in user
    assert "  crds " in internal and "  collect " in internal
