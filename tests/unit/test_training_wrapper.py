"""The sh wrapper around the training command: output teed, exit code kept, SIGTERM reaches the children."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dial.kube.jobs import TRAINING_WRAPPER


def start(tmp_path: Path, *command: str, ready: bool = True) -> tuple[subprocess.Popen, Path]:
    output = tmp_path / "output.log"
    ready_file = tmp_path / "collector.ready"
    if ready:
        ready_file.write_text("ready\n")
    env = {**os.environ, "DIAL_OUTPUT_FILE": str(output), "DIAL_COLLECTOR_READY": str(ready_file)}
    # Its own session, as PID 1 of a container: the test signals the wrapper alone, like the kubelet.
    proc = subprocess.Popen(["sh", "-c", TRAINING_WRAPPER, "dial-training", *command], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, output


def test_output_is_teed_and_exit_code_kept(tmp_path):
    proc, output = start(tmp_path, sys.executable, "-c",
                         "import sys; print('epoch=1 loss=0.5'); print('oops', file=sys.stderr); sys.exit(3)")
    stdout, _ = proc.communicate(timeout=30)
    assert proc.returncode == 3
    assert output.read_text().splitlines() == ["epoch=1 loss=0.5", "oops"]
    assert stdout.decode().splitlines() == ["epoch=1 loss=0.5", "oops"]  # still in the container log
    assert not Path(f"{output}.fifo").exists()


def test_missing_command_exits_127(tmp_path):
    proc, _ = start(tmp_path, "no-such-trainer-binary")
    proc.communicate(timeout=30)
    assert proc.returncode == 127


def test_waits_for_the_collector(tmp_path):
    proc, output = start(tmp_path, sys.executable, "-c", "print('loss=1')", ready=False)
    time.sleep(1.0)
    assert proc.poll() is None and not output.exists()
    (tmp_path / "collector.ready").write_text("ready\n")
    proc.communicate(timeout=30)
    assert proc.returncode == 0 and output.read_text() == "loss=1\n"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the child")
def test_sigterm_stops_the_children_too(tmp_path):
    # Each line in one write(2): the two processes share the pipe, and print() may split a line into several
    # writes (PYTHONUNBUFFERED), which the other process's line can land between.
    child_code = "import os\nos.write(1, f'child {os.getpid()}\\n'.encode())\nwhile True: sum(range(10000))"
    parent_code = (f"import os, subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {child_code!r}])\n"
                   "os.write(1, b'parent started\\n')\nwhile True: sum(range(10000))")
    proc, output = start(tmp_path, sys.executable, "-c", parent_code)
    try:
        _check_sigterm_reaches_the_child(proc, output)
    finally:
        # a failed check must not leave two busy loops behind (the wrapper is a session leader)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def _check_sigterm_reaches_the_child(proc: subprocess.Popen, output: Path) -> None:
    deadline = time.monotonic() + 30
    while not (found := re.search(r"^child (\d+)$", output.read_text() if output.exists() else "", re.M)):
        assert time.monotonic() < deadline, "child never started"
        time.sleep(0.05)
    child_pid = int(found.group(1))
    os.kill(proc.pid, signal.SIGTERM)  # the wrapper only, as the kubelet does
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM  # the training's own status: killed by SIGTERM
    deadline = time.monotonic() + 10
    while _alive(child_pid):
        assert time.monotonic() < deadline, "the training's child survived SIGTERM"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
