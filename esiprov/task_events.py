"""Task events that reach Flower: each worker sends every task event at once instead of buffering them.

With an event loop (Redis and RabbitMQ both have one), Celery's consumer
buffers ``task-*`` events and flushes them from the loop. The flush publishes
the buffer and then empties it, outside any lock against the threads that
append to it: with the thread pool esiprov's workers run, an event a step's
thread appends during that publish is dropped unsent, and Flower shows the task
as never finished (celery/celery#10434, in the 5.6 line esiprov pins). Sending
each event at once goes through the dispatcher's own lock; task events are few
(three per resource) and off unless a monitor turns them on, so nothing is lost
by not batching them.
"""
from __future__ import annotations

from typing import Any

from celery import Celery, bootsteps


class UnbufferedTaskEvents(bootsteps.StartStopStep):
    """Runs after the consumer's Events step, each time the consumer (re)starts it."""

    requires = ("celery.worker.consumer.events:Events",)

    def start(self, c: Any) -> None:
        c.event_dispatcher.buffer_group = frozenset()


def install(app: Celery) -> None:
    """Make every worker of ``app`` send its task events unbuffered."""
    app.steps["consumer"].add(UnbufferedTaskEvents)
