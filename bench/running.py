"""The esiprov processes a benchmark's waits depend on: a wait fails at once when one has exited.

Without this a worker that dies (or is killed from outside: the machine is shared) would leave
the bench waiting for its whole timeout. ``with running(start_worker(...)) as worker:`` registers
the process while the block runs; ``check()`` raises if any registered process has exited.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from esiprov.devenv.process import Service

_running: list[Service] = []


@contextmanager
def running(service: Service) -> Iterator[Service]:
    """``with service``, registered for ``check`` while the block runs."""
    with service:
        _running.append(service)
        try:
            yield service
        finally:
            _running.remove(service)


def check() -> None:
    """Raise RuntimeError naming the first registered process that has exited."""
    for service in _running:
        if service.proc is not None and service.proc.poll() is not None:
            raise RuntimeError(f"{service.name} exited with {service.proc.returncode} during the run; "
                               f"see {service.log_path}")


def wait_for(cond: threading.Condition, predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """``cond.wait_for(predicate)`` (with ``cond`` held) for up to ``timeout`` seconds, checking every
    second that the registered processes still run; TimeoutError naming ``what``."""
    waited = 0.0
    while not cond.wait_for(predicate, min(1.0, timeout - waited)):
        waited += 1.0
        check()
        if waited >= timeout:
            raise TimeoutError(f"{what} after {timeout:.0f} s")
