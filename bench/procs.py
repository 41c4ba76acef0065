"""Child processes: each workload, the HTTP server and the load generator run in their own.

A child's peak memory is its max RSS as the kernel reports it when the child is reaped
(`os.wait4`), so it covers the whole process, C allocations (SQLite, msgspec) included.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec

ROOT = Path(__file__).resolve().parent.parent


class ChildFailed(RuntimeError):
    pass


@dataclass
class Child:
    stdout: str
    stderr: str
    returncode: int
    max_rss_kib: int
    seconds: float
    cpu_seconds: float = 0.0  # user + system time of the process, from wait4
    result: dict[str, Any] = field(default_factory=dict)


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONCOLEDGER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env | (extra or {})


def _reap(proc: subprocess.Popen[bytes], timeout: float | None) -> tuple[int, int, float]:
    """Wait for `proc`; return (exit code, max RSS in KiB, CPU seconds) from the kernel."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            code = os.waitstatus_to_exitcode(status)
            proc.returncode = code
            return code, int(usage.ru_maxrss), usage.ru_utime + usage.ru_stime
        if deadline is not None and time.monotonic() > deadline:
            proc.kill()
            deadline = None
        time.sleep(0.01)


def run(
    cmd: list[str], *, env: dict[str, str] | None = None, timeout: float | None = None
) -> Child:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=_env(env), cwd=ROOT)
        code, rss, cpu = _reap(proc, timeout)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        return Child(out.read().decode(), err.read().decode(), code, rss, seconds, cpu)


def worker(name: str, args: dict[str, Any], *, timeout: float | None = None) -> Child:
    """Run `bench.worker` for one workload; its result is the last line of its output."""
    child = run(
        [sys.executable, "-m", "bench.worker", name, msgspec.json.encode(args).decode()],
        timeout=timeout,
    )
    if child.returncode != 0:
        raise ChildFailed(f"workload {name} failed ({child.returncode}):\n{child.stderr[-3000:]}")
    child.result = msgspec.json.decode(child.stdout.strip().splitlines()[-1])
    return child


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CLI = [sys.executable, "-m", "cli.main"]
START_SECONDS = 180


class Server:
    """uvicorn serving `app` (a factory `module:function`) in one process on a free port; or,
    with `serve_args`, `oncoledger serve --port PORT *serve_args` (store from `env`)."""

    def __init__(
        self, app: str, env: dict[str, str] | None = None, *, serve_args: list[str] | None = None
    ) -> None:
        self.app = app
        self.env = env or {}
        self.serve_args = serve_args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.max_rss_kib = 0
        self.cpu_seconds = 0.0
        self.output = ""
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in __exit__, read after)

    def command(self) -> list[str]:
        if self.serve_args is not None:
            return [*CLI, "serve", "--port", str(self.port), *self.serve_args]
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            self.app,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--log-level",
            "warning",
            "--no-access-log",
        ]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Server:
        self.proc = subprocess.Popen(
            self.command(), stdout=self._log, stderr=self._log, env=_env(self.env), cwd=ROOT
        )
        # Generous: several worker processes starting on a busy 2-core machine take a while.
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ChildFailed(f"server {self.app} exited at start:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        log = self.log()
        self.__exit__()
        raise ChildFailed(
            f"server {self.app} did not answer /health within {START_SECONDS} s:\n{log}"
        )

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-3000:]

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
            _, self.max_rss_kib, self.cpu_seconds = _reap(self.proc, timeout=30)
        self.output = self.log()
        self._log.close()


class Background:
    """A long-running child (a projector, say), stopped with SIGTERM by its own pid."""

    def __init__(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=self._log, env=_env(env), cwd=ROOT
        )
        self.max_rss_kib = 0
        self.cpu_seconds = 0.0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> str:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            _, self.max_rss_kib, self.cpu_seconds = _reap(self.proc, timeout=60)
        self._log.seek(0)
        text = self._log.read().decode(errors="replace")
        self._log.close()
        return text
