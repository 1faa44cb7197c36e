"""What every task of a worker process works with: the settings, one etcd connection, the app.

Built once per worker process — as each child of a prefork pool starts
(``worker_process_init``), or at the first task of a process that runs tasks
itself (the default thread pool) — and handed to the steps, so nothing below a
step reaches for a global. Never built before a fork: a gRPC channel must not
cross one.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from celery import Celery, signals

from esiprov.app import app
from esiprov.settings import Settings, current
from esiprov.store import Store


@dataclass(frozen=True)
class Context:
    settings: Settings
    store: Store
    app: Celery


_contexts: dict[int, Context] = {}


def context() -> Context:
    """This process's context (built now if its worker did not build it at start)."""
    pid = os.getpid()
    if pid not in _contexts:
        settings = current()
        _contexts[pid] = Context(settings, Store.connect(settings), app)
    return _contexts[pid]


def _build(**_: Any) -> None:
    context()


def install() -> None:
    """Build each prefork child's context as it starts (called once, where the steps are registered)."""
    signals.worker_process_init.connect(_build, weak=False)
