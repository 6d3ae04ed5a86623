"""Run the CLI as a child process whose output is read line by line and which can be stopped with its children.

Slicer's ``PythonSlicer`` is a launcher that starts the real interpreter as a child, so stopping only the
launcher would leave the inference running. The process is therefore started in its own session (POSIX) or
process group (Windows) and stopped as a whole.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence

__all__ = ["OutputPump", "start_process", "stop_process_tree"]


def start_process(command: Sequence[str], env: Mapping[str, str], cwd: str | None = None) -> subprocess.Popen:
    """Start ``command`` (an argument list, no shell) with stdout and stderr merged into one UTF-8 text pipe."""
    options: dict = {}
    if os.name == "nt":
        startup = subprocess.STARTUPINFO()
        startup.dwFlags |= subprocess.STARTF_USESHOWWINDOW
        startup.wShowWindow = 0
        options = {"startupinfo": startup, "creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    else:
        options = {"start_new_session": True}
    return subprocess.Popen(list(command), env=dict(env), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, encoding="utf-8", errors="replace", bufsize=1,
                            **options)


def stop_process_tree(process: subprocess.Popen, timeout: float = 10.0) -> int | None:
    """Kill ``process`` and every process it started; return its exit code (``None`` if it would not die).

    On POSIX the whole process group is killed, even when the launcher itself has already exited.
    """
    if os.name == "nt":
        if process.poll() is None:
            subprocess.run(["taskkill", "/T", "/F", "/PID", str(process.pid)], capture_output=True, check=False)
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


class OutputPump:
    """Collect a process's output lines in a background thread so the GUI thread can poll without blocking."""

    def __init__(self, process: subprocess.Popen) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self._lines.put(line.rstrip("\r\n"))
        process.stdout.close()

    @property
    def finished(self) -> bool:
        """True once the output stream has ended (the process closed it or exited)."""
        return not self._thread.is_alive()

    def drain(self) -> list[str]:
        """The lines read since the last call."""
        lines = []
        while True:
            try:
                lines.append(self._lines.get_nowait())
            except queue.Empty:
                return lines

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)
