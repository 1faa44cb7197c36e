"""The baseline: a bare Celery chain of three no-op tasks and a callback, with esiprov's Celery settings.

Same celeryconfig (acks late, prefetch 1, events, started tracking, result
backend) and the same broker as the esiprov run; only its own queue, so the two
never mix. The steps are immutable signatures like esiprov's, and they get the
same per-task options esiprov's steps have (``STEP_OPTIONS``), so the ratio
compares the work, not the settings. The callback counts finished chains in Redis.

    celery -A bench.barechain worker ...   # the worker side
"""
from __future__ import annotations

import time
from functools import lru_cache

import redis
from celery import Celery, chain
from kombu import Exchange, Queue

from tasks import app as esiprov_app

QUEUE = "bench_bare"

app = Celery("bench-bare")
app.config_from_object("celeryconfig")
app.conf.update(task_queues=[Queue(QUEUE, Exchange(QUEUE), routing_key=QUEUE)], task_default_queue=QUEUE,
                task_routes={}, beat_schedule={})
#: per-task options of esiprov's intermediate steps, applied to the no-op steps too
STEP_OPTIONS = {"ignore_result": esiprov_app.tasks["esiprov.heat_worker"].ignore_result}


@lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    return redis.Redis.from_url(app.conf.broker_url)


@app.task(name="bench.noop", **STEP_OPTIONS)
def noop() -> None:
    """One step that does nothing."""


@app.task(name="bench.done")
def done(counter: str) -> None:
    """The callback: one more chain finished."""
    _redis().incr(counter)


def run(chains: int, timeout: float = 300.0) -> float:
    """Submit ``chains`` chains and wait for all their callbacks; seconds from first submit to last callback."""
    counter = f"bench:bare:{time.time_ns()}"
    started = time.monotonic()
    for _ in range(chains):
        chain(noop.si(), noop.si(), noop.si(), done.si(counter)).apply_async()
    while int(_redis().get(counter) or 0) < chains:
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"bare chains: {int(_redis().get(counter) or 0)} of {chains} after {timeout:.0f} s")
        time.sleep(0.02)
    return time.monotonic() - started
