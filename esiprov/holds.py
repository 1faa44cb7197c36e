"""Which worker holds each in-flight workflow's message, kept alive by that worker's etcd lease.

A Celery worker that dies keeps the messages it had received: Redis hands them
back only after the visibility timeout, RabbitMQ once it notices the dead
connection, and a frozen host (SIGSTOP, a network partition) keeps them as long
as it is frozen. So every worker process that consumes keeps one etcd lease of
``HOLD_TTL`` seconds alive, and as it receives a workflow step (before running
it, or while its countdown waits in the worker) it records under
``/esi-worker/holds/`` that it holds that resource's workflow, on its lease.
When the worker dies or freezes, the lease expires, etcd deletes its holds, and
the leading watcher, which watches them (esiprov.recovery), sends those
workflows again. Steps are idempotent, so a worker that was only slow costs a
duplicate check, never a duplicate stack.

The hold is written synchronously when the message arrives: a worker killed a
moment later has recorded it already. A hold that cannot be written (etcd
unreachable) is logged; the broker's own redelivery and the periodic resync
remain behind it.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery import signals

from esiprov import keys
from esiprov.documents import HoldRecord, resource_of_task
from esiprov.settings import current
from esiprov.store import Store, StoreError

log = logging.getLogger(__name__)

#: seconds a dead or frozen worker's holds outlive it: the longest a crash strands a workflow
HOLD_TTL = 10


class Holder:
    """One worker's lease and the holds it puts on it; safe to call from several threads."""

    def __init__(self, store: Store, name: str, ttl: int = HOLD_TTL) -> None:
        self.store = store
        self.name = name
        self.ttl = ttl
        self._lease: int | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._keeper = threading.Thread(target=self._keep, name="esiprov-holds", daemon=True)

    def start(self) -> "Holder":
        self._keeper.start()
        return self

    def hold(self, rtype: str, rid: str, task_id: str) -> None:
        """Record that this worker holds the message ``task_id`` of resource ``rtype`` ``rid``."""
        record = HoldRecord(worker=self.name, task=task_id, at=time.time())
        for attempt in range(2):  # a lease that expired meanwhile (a frozen worker) is replaced once
            lease = None
            try:
                lease = self._current_lease()
                self.store.commit(puts={keys.hold(rtype, rid): record}, lease=lease)
                return
            except StoreError as exc:
                if attempt:
                    log.warning("%s: cannot record that %s holds it: %s", task_id, self.name, exc)
                if lease is not None:
                    self._forget(lease)

    def stop(self) -> None:
        """End the lease now: the holds vanish at once, so the leader resends what was still held."""
        self._stopped.set()
        with self._lock:
            lease, self._lease = self._lease, None
        if lease is not None:
            try:
                self.store.revoke(lease)
            except StoreError:
                pass  # it expires on its own

    def _current_lease(self) -> int:
        with self._lock:
            if self._lease is None:
                self._lease = self.store.grant(self.ttl)
            return self._lease

    def _forget(self, lease: int) -> None:
        with self._lock:
            if self._lease == lease:
                self._lease = None

    def _keep(self) -> None:
        """Refresh the lease three times per TTL; a lost one is replaced at the next hold."""
        while not self._stopped.wait(self.ttl / 3):
            with self._lock:
                lease = self._lease
            if lease is None:
                continue
            try:
                alive = self.store.refresh(lease)
            except StoreError as exc:
                log.warning("cannot refresh the holds lease of %s: %s", self.name, exc)
                continue
            if not alive:
                log.warning("the holds lease of %s expired (was this worker frozen?); its workflows "
                            "were sent again", self.name)
                self._forget(lease)


_holder: Holder | None = None
_holder_lock = threading.Lock()


def _worker_holder(name: str) -> Holder:
    """This worker process's Holder, started on the first message it receives."""
    global _holder
    with _holder_lock:
        if _holder is None:
            _holder = Holder(Store.connect(current()), name).start()
        return _holder


def _received(sender: Any, request: Any, **_: Any) -> None:
    """Celery's task_received, in the process that consumes (before the task runs or its countdown waits)."""
    found = resource_of_task(request.id)
    if found is not None:
        _worker_holder(sender.hostname).hold(*found, request.id)


def _shutdown(**_: Any) -> None:
    if _holder is not None:
        _holder.stop()


def install() -> None:
    """Make every worker of this Celery app hold what it receives (called once, where the app is built)."""
    signals.task_received.connect(_received, weak=False)
    signals.worker_shutdown.connect(_shutdown, weak=False)
