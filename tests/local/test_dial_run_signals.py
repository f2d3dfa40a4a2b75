"""`dial run` stopped from outside (SIGTERM, SIGHUP, Ctrl-C twice, a closed output pipe) leaves no trial process behind."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from dial_cli import DIAL, ROOT, results
from test_dial_run import write_experiment

# Each trial starts a child that ignores SIGTERM (only SIGKILL of the whole group ends it), then
# reports a point every 0.1 s for a minute. The marker in both command lines finds them in `ps`.
TRAINING = ("import signal, subprocess, sys, time\n"
            "subprocess.Popen([sys.executable, '-c', 'import signal, time; signal.signal(signal.SIGTERM, "
            "signal.SIG_IGN); time.sleep(300)', sys.argv[2] + '-child'])\n"
            "for step in range(1, 600):\n"
            "    print(f'step={step} loss={float(sys.argv[1]) ** 2 + 1 / step:.6f}', flush=True); time.sleep(0.1)\n")


def survivors(marker: str) -> list[str]:
    """Processes (not zombies) whose command line holds the marker."""
    table = subprocess.run(["ps", "-ww", "-eo", "stat=,args="], capture_output=True, text=True).stdout
    return [line for line in table.splitlines() if marker in line and not line.lstrip().startswith("Z")]


def start(tmp_path: Path, marker: str, *, grace: float, stdout: int | None = subprocess.PIPE) -> tuple[subprocess.Popen, Path]:
    path = write_experiment(tmp_path, "signals", ["python", "-c", TRAINING, "${trialParameters.x}", marker],
                            maxTrialCount=4, parallelTrialCount=2)
    out = tmp_path / "out"
    proc = subprocess.Popen([*DIAL, "run", str(path), "--output", str(out), "--no-live", "--grace-period", str(grace)],
                            cwd=ROOT, stdout=stdout, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        running = [t for t in (results(out)["trials"] if (out / "results.json").exists() else [])
                   if t["status"]["phase"] == "Running" and t["status"]["observations"]]
        if len(running) == 2 and len(survivors(f"{marker}-child")) == 2:
            return proc, out
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("the trials did not start")


def assert_stopped_cleanly(proc: subprocess.Popen, out: Path, marker: str, *, code: int, why: str,
                           stderr: str) -> None:
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr, stderr
    assert survivors(marker) == []  # the trials, and the children they started
    data = results(out)
    interrupted = [t for t in data["trials"] if t["status"]["reason"] == "Interrupted"]
    assert len(interrupted) == 2 and all(t["status"]["phase"] == "EarlyStopped" for t in interrupted)
    assert all(t["status"]["message"] == f"interrupted: {why}" for t in interrupted)
    assert data["experiment"]["status"]["phase"] == "Suspended"
    assert data["experiment"]["status"]["conditions"][0]["reason"] == "Interrupted"
    assert "--resume" in stderr


@pytest.mark.parametrize("sig, why", [(signal.SIGTERM, "SIGTERM"), (signal.SIGHUP, "SIGHUP (the terminal closed)"),
                                      (signal.SIGINT, "Ctrl-C (SIGINT)")])
def test_a_stop_signal_stops_every_trials_process_group(tmp_path: Path, sig: signal.Signals, why: str) -> None:
    marker = f"dial-signal-test-{sig.name}-{tmp_path.name}"
    proc, out = start(tmp_path, marker, grace=1)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert f"{why}: stopping 2 running trials (SIGTERM sent; SIGKILL in 1s" in stderr
    assert_stopped_cleanly(proc, out, marker, code=128 + sig, why=why, stderr=stderr)


def test_a_second_ctrl_c_kills_at_once_instead_of_waiting_out_the_grace_period(tmp_path: Path) -> None:
    marker = f"dial-signal-test-twice-{tmp_path.name}"
    proc, out = start(tmp_path, marker, grace=60)
    proc.send_signal(signal.SIGINT)
    time.sleep(1.0)
    assert proc.poll() is None  # waiting for the children that ignore SIGTERM
    began = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - began < 15
    assert "Ctrl-C (SIGINT) again: killing the trials' processes now" in stderr
    assert_stopped_cleanly(proc, out, marker, code=130, why="Ctrl-C (SIGINT)", stderr=stderr)


def test_a_closed_output_pipe_stops_the_run_like_a_signal(tmp_path: Path) -> None:
    marker = f"dial-signal-test-pipe-{tmp_path.name}"
    proc, out = start(tmp_path, marker, grace=1)
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("started ")  # what `| head -1` reads before it exits
    proc.stdout.close()
    stderr = proc.stderr.read() if proc.stderr else ""
    proc.wait(timeout=60)
    assert "the output pipe was closed: stopping 2 running trials" in stderr
    assert_stopped_cleanly(proc, out, marker, code=141, why="the output pipe was closed", stderr=stderr)
