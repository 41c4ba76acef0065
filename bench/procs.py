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
    result: dict[str, Any] = field(default_factory=dict)


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONCOLEDGER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env | (extra or {})


def _reap(proc: subprocess.Popen[bytes], timeout: float | None) -> tuple[int, int]:
    """Wait for `proc`; return (exit code, max RSS in KiB) from the kernel's accounting."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            code = os.waitstatus_to_exitcode(status)
            proc.returncode = code
            return code, int(usage.ru_maxrss)
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
        code, rss = _reap(proc, timeout)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        return Child(out.read().decode(), err.read().decode(), code, rss, seconds)


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


class Server:
    """uvicorn serving `app` (a factory `module:function`) in one process on a free port."""

    def __init__(self, app: str, env: dict[str, str] | None = None) -> None:
        self.app = app
        self.env = env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.max_rss_kib = 0
        self.output = ""
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in __exit__, read after)

    def __enter__(self) -> Server:
        cmd = [
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
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=self._log, env=_env(self.env), cwd=ROOT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ChildFailed(f"server {self.app} exited at start:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.__exit__()
        raise ChildFailed(f"server {self.app} did not answer /health within 60 s:\n{self.log()}")

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-3000:]

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
            _, self.max_rss_kib = _reap(self.proc, timeout=30)
        self.output = self.log()
        self._log.close()
