"""Child processes for local services: free loopback ports, readiness waits, sure teardown.

Every launcher in devenv (etcd, Redis, Heat, switches, workers) is a Service:
started on ports it picked itself, logged to a file, waited for until it
answers, and stopped (TERM, then KILL) when the ``with`` block ends.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Self, Sequence


class ServiceError(RuntimeError):
    """A local service did not start; the message carries the tail of its log."""


def free_port(host: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> int:
    """A port the OS considers free on ``host`` right now."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Call ``check`` until it is true; raise TimeoutError naming ``what`` after ``timeout`` s.

    A ServiceError from ``check`` (the process died) ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except ServiceError:
            raise
        except Exception:  # noqa: BLE001 - a service that is still starting may refuse anything
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f} s")
        time.sleep(interval)


def tcp_open(host: str, port: int) -> bool:
    """True when something accepts TCP connections on host:port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _dying_with_parent(argv: Sequence[str]) -> list[str]:
    """argv run under ``setpriv --pdeathsig``: the child gets SIGTERM if its parent dies, so a killed
    test run leaves no services behind. (Not a preexec_fn: forking a process that runs gRPC threads
    and running Python before exec crashes the child.)"""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else list(argv)


class Service:
    """One child process with a log file; a context manager that always stops it."""

    def __init__(self, name: str, argv: Sequence[str], log_dir: Path,
                 env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = Path(log_dir) / f"{name}.log"
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None

    def start(self, ready: Callable[[], bool], timeout: float = 30.0) -> "Service":
        """Start the process and wait until ``ready()``; on failure stop it and raise ServiceError."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(_dying_with_parent(self.argv), stdout=log, stderr=subprocess.STDOUT,
                                         env=self.env, cwd=self.cwd, start_new_session=True)
        try:
            wait_until(lambda: self._alive() and ready(), timeout, self.name)
        except TimeoutError as exc:
            self.stop()
            raise ServiceError(f"{exc}; last log lines:\n{self.log_tail()}") from None
        except ServiceError:
            self.stop()
            raise
        return self

    def _alive(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise ServiceError(f"{self.name} exited with {self.proc.returncode}; "
                               f"last log lines:\n{self.log_tail()}")
        return True

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, grace: float = 10.0) -> None:
        """TERM the process group, KILL it after ``grace`` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.proc.wait(5)

    def kill(self) -> None:
        """Stop at once, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self._signal(signal.SIGKILL)
            self.proc.wait(5)

    def freeze(self, frozen: bool = True) -> None:
        """SIGSTOP (or SIGCONT) the process: it keeps its sockets open and answers nothing,
        as a hung server does."""
        if self.proc is not None and self.proc.poll() is None:
            self._signal(signal.SIGSTOP if frozen else signal.SIGCONT)

    def _signal(self, sig: int) -> None:
        if self.proc is None:
            return  # never started: nothing to signal
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def __enter__(self) -> "Service":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LocalServer:
    """Base of the devenv launchers: one Service, with a scratch dir of its own that stop() removes.

    Subclasses implement ``start()`` by preparing ``workdir`` and calling ``_launch``.
    ``with X().start() as x`` and ``with X() as x`` both start it exactly once.
    """

    def __init__(self, log_dir: Path | None = None) -> None:
        self._log_dir = log_dir
        self.workdir: Path | None = None  # scratch dir, removed by stop()
        self._service: Service | None = None
        self._ready: Callable[[], bool] = lambda: True

    def start(self) -> Self:
        raise NotImplementedError

    def _launch(self, name: str, argv: Sequence[str], ready: Callable[[], bool], timeout: float,
                env: dict[str, str] | None = None) -> Self:
        """Start the process and wait for ``ready``; on any failure clean everything up and re-raise."""
        log_dir = self._log_dir or self.workdir
        if log_dir is None:
            raise ServiceError(f"{name}: no log directory (start() makes workdir before it launches)")
        self._service = Service(name, argv, log_dir, env)
        self._ready = ready
        try:
            self._service.start(ready, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the process and delete the scratch dir."""
        if self._service is not None:
            self._service.stop()
            self._service = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def kill(self) -> None:
        """SIGKILL the process, as a crash would; the scratch dir stays until stop()."""
        if self._service is not None:
            self._service.kill()

    def freeze(self, frozen: bool = True) -> None:
        """Hang the server (SIGSTOP), or let it go on (SIGCONT)."""
        if self._service is not None:
            self._service.freeze(frozen)

    def restart(self, timeout: float = 30.0) -> None:
        """Kill the process, as a crash would, and start it again: same ports, same data."""
        if self._service is None:
            raise ServiceError("restart of a server that was never started")
        self._service.kill()
        self._service.start(self._ready, timeout)

    def __enter__(self) -> Self:
        return self if self._service is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
