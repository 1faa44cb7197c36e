"""The baseline: a bare Celery chain of three no-op tasks and a callback, on Celery's defaults.

Its settings are its own, not esiprov's celeryconfig: the broker and result
backend (the same Redis as esiprov's run), ``task_acks_late``, the JSON
serializer, and Celery's defaults for everything else (prefetch multiplier 4,
no events, no started-tracking, results stored). The bench starts its worker with
the pool and concurrency of esiprov's default worker (celeryconfig's
``worker_pool``/``worker_concurrency``, given on the command line), so the two
sides differ in the work, not in the worker. The callback counts finished chains
in Redis.

    celery -A bench.barechain worker -P threads -c 16   # the worker side
"""
from __future__ import annotations

import os
import time
from functools import lru_cache

import redis
from celery import Celery, chain

from esiprov.settings import current

if "ESIPROV_BROKER_URL" not in os.environ:  # never the default broker: that may be someone else's Redis
    raise RuntimeError("bench.barechain needs ESIPROV_BROKER_URL (the bench's own Redis)")
_settings = current()  # ESIPROV_BROKER_URL / ESIPROV_RESULT_BACKEND: the bench's Redis

app = Celery("bench-bare")
app.conf.update(
    broker_url=_settings.broker_url,
    result_backend=_settings.result_backend,
    task_acks_late=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
)


@lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    return redis.Redis.from_url(app.conf.broker_url)


@app.task(name="bench.noop")
def noop() -> None:
    """One step that does nothing."""


@app.task(name="bench.done")
def done(counter: str) -> None:
    """The callback: one more chain finished."""
    _redis().incr(counter)


def run(chains: int, timeout: float = 300.0) -> tuple[float, int]:
    """Submit ``chains`` chains and wait for all their callbacks.

    Returns (seconds from the first submit to the last callback seen, Redis commands this
    function sent itself: the polls of the counter), so a caller can leave its own out of a count.
    """
    counter = f"bench:bare:{time.time_ns()}"
    started = time.monotonic()
    for _ in range(chains):
        chain(noop.si(), noop.si(), noop.si(), done.si(counter)).apply_async()
    polls = 1
    while int(_redis().get(counter) or 0) < chains:
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"bare chains: {int(_redis().get(counter) or 0)} of {chains} after {timeout:.0f} s")
        time.sleep(0.02)
        polls += 1
    return time.monotonic() - started, polls
