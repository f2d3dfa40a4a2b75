"""One trial as a local process: started in its own session, output captured, stopped gracefully."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

TAIL_LINES = 40


class TrialProcess:
    """Runs a command, tees its output to a log file and hands its lines (or a metrics file's) to the runner."""

    def __init__(self, command: list[str], *, env: dict[str, str], cwd: Path, log_path: Path,
                 metrics_file: Path | None = None):
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self.metrics_file = metrics_file
        self.lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._terminated_at: float | None = None
        self._killed = False
        self.start_error: str | None = None
        try:
            self.popen: subprocess.Popen[bytes] | None = subprocess.Popen(
                command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            self.popen = None
            self.start_error = start_error(command, cwd, env, exc)
            return
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()
        self._file_reader: threading.Thread | None = None
        if metrics_file is not None:
            self._file_reader = threading.Thread(target=self._follow_file, daemon=True)
            self._file_reader.start()

    def _read_output(self) -> None:
        assert self.popen is not None and self.popen.stdout is not None
        with self.log_path.open("ab") as log:
            for raw in self.popen.stdout:
                log.write(raw)
                log.flush()
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                self.tail.append(line)
                if self.metrics_file is None:
                    self.lines.put(line)

    def _follow_file(self) -> None:
        assert self.metrics_file is not None
        position = 0
        pending = b""
        while True:
            done = self.popen is None or self.popen.poll() is not None
            try:
                with self.metrics_file.open("rb") as f:
                    f.seek(position)
                    chunk = f.read()
                    position = f.tell()
            except FileNotFoundError:
                chunk = b""
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                self.lines.put(raw.decode("utf-8", errors="replace"))
            if done:
                if pending:
                    self.lines.put(pending.decode("utf-8", errors="replace"))
                return
            time.sleep(0.1)

    def drain(self) -> list[str]:
        out = []
        while True:
            try:
                out.append(self.lines.get_nowait())
            except queue.Empty:
                return out

    def poll(self) -> int | None:
        """The exit code once the process has ended and all its output has been read."""
        if self.popen is None:
            return 127
        code = self.popen.poll()
        if code is None:
            return None
        # A child left behind may hold the output pipe open: then do not wait for its end.
        self._reader.join(timeout=0.2 if group_members(self.popen.pid) else 5)
        if self._file_reader is not None:
            self._file_reader.join(timeout=5)
        return code

    @property
    def signalled(self) -> bool:
        """Whether this process was ever sent a stop signal (else it ended, or is running, on its own)."""
        return self._terminated_at is not None

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def group_alive(self) -> bool:
        """Whether anything of its process group still runs: the process itself or a child it left behind."""
        return self.popen is not None and (self.popen.poll() is None or bool(group_members(self.popen.pid)))

    def kill(self) -> None:
        """SIGKILL the whole process group now."""
        if self.group_alive:
            self._terminated_at = self._terminated_at or time.monotonic()
            self._killed = True
            self._signal(signal.SIGKILL)

    def terminate(self, grace_seconds: float) -> None:
        """SIGTERM the process group now, SIGKILL it once the grace period has passed (call repeatedly)."""
        if not self.group_alive:
            return
        now = time.monotonic()
        if self._terminated_at is None:
            self._terminated_at = now
            self._signal(signal.SIGTERM)
        elif not self._killed and now - self._terminated_at >= grace_seconds:
            self._killed = True
            self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        assert self.popen is not None
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass


def start_error(command: list[str], cwd: Path, env: dict[str, str], exc: OSError) -> str:
    """Why a trial's command could not start, naming where it was looked for."""
    program = command[0] if command else ""
    if not cwd.is_dir():
        return (f"cannot start {program!r}: the working directory {cwd} does not exist "
                "(the container's workingDir, relative to where `dial run` was started)")
    if isinstance(exc, FileNotFoundError):
        if os.sep in program and not os.path.isabs(program):
            return (f"cannot start {program!r}: no such file in {cwd.resolve()} (a relative command is looked up in "
                    "the trial's working directory: where `dial run` was started, or the container's workingDir)")
        if os.sep in program:
            return f"cannot start {program!r}: no such file"
        path = env.get("PATH", "").split(os.pathsep)
        shown = os.pathsep.join(path[:3]) + (f"{os.pathsep}... ({len(path)} directories)" if len(path) > 3 else "")
        return (f"cannot start {program!r}: command not found on PATH ({shown}); "
                f"the trial's working directory was {cwd.resolve()}")
    if isinstance(exc, PermissionError):
        return f"cannot start {program!r}: permission denied (is it executable? chmod +x {program})"
    return f"cannot start {program!r}: {exc.strerror or exc}"


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of a process group; from /proc where there is one."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
        fields = text[text.rfind(")") + 2:].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def trial_environment(extra: dict[str, str]) -> dict[str, str]:
    """The runner's environment, its Python first on PATH, unbuffered output, plus the trial's own."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env
