"""esiprov's own processes for local runs: a Celery worker and the watcher, as Services.

Both are real subprocesses started the way an operator starts them
(``celery -A tasks worker``, ``esiprov watch``), configured only through the
ESIPROV_* environment, so tests and the demo exercise the operator interface.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Mapping

from esiprov.devenv.process import Service

ROOT = Path(__file__).resolve().parents[2]


def _logged(service: Service, line: str) -> bool:
    try:
        return line in service.log_path.read_text(errors="replace")
    except OSError:
        return False


#: ``-P`` for a prefork pool that overrides a configured one (see start_worker)
PREFORK = "processes"


def start_worker(env: Mapping[str, str], log_dir: Path, name: str = "worker", concurrency: int | None = None,
                 queues: str | None = None, app: str = "tasks", pool: str | None = None) -> Service:
    """``celery -A tasks worker`` as an operator starts it (celeryconfig's pool and concurrency unless
    ``pool``/``concurrency`` say otherwise), ready when it logs ``ready.``.

    ``app`` names another Celery app (the benchmark's bare chain runs the same way). ``pool="prefork"``
    is given as ``-P processes``, Celery's other name for it: Celery takes ``-P prefork`` for its own
    default and runs the configured pool (celeryconfig's threads) instead.
    """
    argv = [sys.executable, "-m", "celery", "-A", app, "worker", "-l", "info", "-n", f"{name}@%h",
            "--without-gossip", "--without-mingle"]
    argv += ["-P", PREFORK if pool == "prefork" else pool] if pool else []
    argv += ["-c", str(concurrency)] if concurrency else []
    argv += ["-Q", queues] if queues else []
    service = Service(name, argv, log_dir, dict(env), cwd=ROOT)
    return service.start(lambda: _logged(service, "ready."), timeout=60)


def start_beat(env: Mapping[str, str], log_dir: Path, name: str = "beat") -> Service:
    """``celery -A tasks beat`` with its schedule file in ``log_dir``, ready once it starts its scheduler."""
    argv = [sys.executable, "-m", "celery", "-A", "tasks", "beat", "-l", "info",
            "-s", str(log_dir / f"{name}-schedule"), "--pidfile", str(log_dir / f"{name}.pid")]
    service = Service(name, argv, log_dir, dict(env), cwd=ROOT)
    return service.start(lambda: _logged(service, "beat: Starting..."), timeout=60)


#: what a watcher logs once it leads and watches, or once it stands by behind another
LEADING, STANDING_BY = "watching /config", "stands by"


def start_watcher(env: Mapping[str, str], log_dir: Path, name: str = "watcher", ready: str = LEADING) -> Service:
    """``esiprov watch``, ready once it logs ``ready`` (by default: it leads, has listed and watches)."""
    service = Service(name, [sys.executable, "-m", "esiprov.cli", "watch"], log_dir, dict(env), cwd=ROOT)
    return service.start(lambda: _logged(service, ready), timeout=60)
