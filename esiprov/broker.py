"""Has the broker lost its messages? A marker message parked where nobody consumes it tells.

The broker is disposable: Redis restarted without persistence, flushed, or
failed over to an empty replica, or a new RabbitMQ node, keeps none of the
messages of the workflows in flight. Nothing in Celery says so. esiprov parks
one persistent message in a durable queue of its own (``esiprov.epoch``) that
no worker consumes; as long as it is there, so is everything else the broker
was given. When it is gone, the leading watcher sends every workflow in flight
again (esiprov.recovery), then parks a new marker. On a broker that never saw
esiprov the first check finds no marker either: that resends the workflows in
flight once, which is harmless (every step is idempotent).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterable, Iterator

import amqp.exceptions
import redis.exceptions
from celery import Celery
from kombu import Connection, Exchange, Queue
from kombu.exceptions import OperationalError

#: the queue holding the marker; no esiprov worker consumes it
EPOCH_QUEUE = "esiprov.epoch"
#: what a broker that does not answer, or refuses esiprov, raises: kombu wraps most transport errors in
#: OperationalError, but some come through as they are (Redis's, and RabbitMQ refusing a login or a vhost)
BROKER_ERRORS = (OperationalError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                 amqp.exceptions.ConnectionError, amqp.exceptions.AccessRefused)


def check(app: Celery) -> None:
    """Raise one of BROKER_ERRORS unless the broker answers (and takes the credentials)."""
    with _connected(app):
        pass


def lost_messages(app: Celery) -> bool:
    """True when the marker is gone: the broker lost what it held. Raises one of BROKER_ERRORS when it does not answer."""
    with _connected(app) as connection:
        return message_count(connection, EPOCH_QUEUE) == 0


def queue_depths(app: Celery, names: Iterable[str]) -> dict[str, int]:
    """Messages waiting in each queue (not those a worker has received), for ``esiprov status``.

    A passive declare through kombu: RabbitMQ's message_count; on Redis kombu sums the queue's
    lists (LLEN per priority). Raises one of BROKER_ERRORS when the broker does not answer.
    """
    with _connected(app) as connection:
        return {name: message_count(connection, name) for name in names}


def park_marker(app: Celery) -> None:
    """Park a new marker, once everything in flight has been sent again."""
    queue = Queue(EPOCH_QUEUE, durable=True, auto_delete=False, routing_key=EPOCH_QUEUE)
    with _connected(app) as connection, connection.Producer() as producer:
        producer.publish({"parked_at": time.time()}, exchange="", routing_key=EPOCH_QUEUE,
                         declare=[queue], delivery_mode=Exchange.PERSISTENT_DELIVERY_MODE, serializer="json", retry=False)


@contextmanager
def _connected(app: Celery) -> Iterator[Connection]:
    """A broker connection from the app's pool, tried once."""
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1)
        yield connection


def message_count(connection: Connection, queue: str) -> int:
    """Messages in ``queue``; 0 when the queue does not exist (RabbitMQ closes the channel then)."""
    channel = connection.channel()
    try:
        # kombu's stubs type channel() as the abstract StdChannel; every transport's channel declares queues
        return int(channel.queue_declare(queue, passive=True).message_count)  # type: ignore[attr-defined]
    except connection.channel_errors:
        return 0
    finally:
        connection.maybe_close_channel(channel)  # the broker's 404 may have closed it already
