"""``make dev``: a whole esiprov on loopback, up until Ctrl-C, to run ``esiprov ...`` against.

etcd, Redis (the broker), real Heat, an emulated switch (the demo's), a Celery worker on every
queue, beat, the watcher (serving /metrics and /healthz) and Flower, with the shipped templates loaded. It prints the ESIPROV_*
environment as ``export`` lines to paste into another shell, then READY, then waits; Ctrl-C
(SIGINT) or SIGTERM stops everything it started. Unlike the demo it writes no resources: what to
create is the operator's to try.
"""
from __future__ import annotations

import shlex
import signal
import sys
import threading
from contextlib import ExitStack
from types import FrameType
from typing import Mapping

from esiprov.devenv.demo import SWITCH
from esiprov.devenv.flower import start_flower
from esiprov.devenv.local import LocalDeployment
from esiprov.devenv.pipeline import start_beat
from esiprov.devenv.process import free_port

#: the line printed once everything is up (after the environment)
READY = "# esiprov dev: everything is up; Ctrl-C stops it"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def exports(env: Mapping[str, str]) -> str:
    """``export NAME=value`` lines a shell takes as they are (values quoted)."""
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in sorted(env.items()))


def _interrupted(signum: int, frame: FrameType | None) -> None:
    """SIGTERM ends the run as Ctrl-C does: the ``with`` blocks stop every service on the way out."""
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupted)
    say("starting etcd, Redis, Heat, an emulated switch, a worker, beat, the watcher and Flower ...")
    try:
        with ExitStack() as stack:
            metrics = f"127.0.0.1:{free_port()}"
            local = stack.enter_context(LocalDeployment([SWITCH], watcher_env={"ESIPROV_METRICS_ADDRESS": metrics}))
            stack.enter_context(start_beat(local.env, local.work_dir))
            flower = start_flower(local.env, local.work_dir)
            stack.callback(flower.stop)
            print(f"# paste into another shell (logs in {local.work_dir}; Flower on {flower.url}; the watcher's "
                  f"metrics on http://{metrics}/metrics; switch {SWITCH.name} at {SWITCH.ip})")
            print(exports(local.env))
            print(READY, flush=True)
            threading.Event().wait()
    except KeyboardInterrupt:
        say("stopped everything")
    return 0


if __name__ == "__main__":
    sys.exit(main())
