"""Which worker holds each in-flight workflow's message, kept alive by that worker's etcd lease.

A Celery worker that dies keeps the messages it had received: Redis (without
kombu's ack emulation, celeryconfig.py) never hands them back, RabbitMQ once it
notices the dead connection, and a frozen host (SIGSTOP, a network partition)
keeps them as long as it is frozen. So every worker process that consumes keeps
one etcd lease of ``HOLD_TTL`` seconds alive, and as it receives a workflow step
(before running it, or while its countdown waits in the worker) it records under
``/esi-worker/holds/`` that it holds that resource's workflow, on its lease.
When the worker dies or freezes, the lease expires, etcd deletes its holds, and
the leading watcher, which watches them (esiprov.recovery), sends those
workflows again. Steps are idempotent, so a worker that was only slow costs a
duplicate check, never a duplicate stack.

The hold is written synchronously when the message arrives: a worker killed a
moment later has recorded it already. A hold that cannot be written (etcd
unreachable) is logged; RabbitMQ's redelivery and the periodic resync remain
behind it.

A workflow's hold is written once per worker, not once per message: a step this
worker published itself (the next step of its chain, a countdown re-check), of a
workflow it holds on its live lease, finds the hold in place, since no other
worker has received a message of that chain in between. Whatever else arrives is
held again: a message another worker or a command published (a requeue, the
leader's resend, a resync, a chain that moved between workers), one after this
worker's lease was lost, or one of a workflow it does not remember holding.
Each worker marks the steps it publishes with a header of its own (``FROM``),
only while it runs a step of the same workflow; a prefork pool's children
inherit the mark of the worker that holds for them.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Iterator

from celery import current_task, signals

from esiprov import keys
from esiprov.documents import FINALIZE, HoldRecord, workflow_of_task, workflow_task
from esiprov.settings import current
from esiprov.store import Store, StoreError

log = logging.getLogger(__name__)

#: seconds a dead or frozen worker's holds outlive it: the longest a crash strands a workflow
HOLD_TTL = 10
#: the message header naming the worker that published a step while running its workflow
FROM = "esiprov_from"
#: this worker's mark in FROM (made at import: a prefork pool's children share their worker's)
ME = uuid.uuid4().hex
#: workflows a worker remembers holding; one forgotten costs a write, never a lost hold
MAX_REMEMBERED = 10_000


class Holder:
    """One worker's lease and the holds it puts on it; safe to call from several threads."""

    def __init__(self, store: Store, name: str, ttl: int = HOLD_TTL) -> None:
        #: the process whose lease this is (a forked child inherits the object, not the lease's keeper)
        self.pid = os.getpid()
        self.store = store
        self.name = name
        self.ttl = ttl
        self._lease: int | None = None
        #: time.monotonic() when the lease was last known alive (granted or refreshed)
        self._alive_at = 0.0
        #: (type, id) -> (workflow name, lease) of every hold this worker wrote and may still have
        self._held: OrderedDict[tuple[str, str], tuple[str, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._keeper = threading.Thread(target=self._keep, name="esiprov-holds", daemon=True)

    def start(self) -> "Holder":
        self._keeper.start()
        return self

    def hold(self, rtype: str, rid: str, task_id: str, workflow: str = "", continued: bool = False) -> bool:
        """Record that this worker holds the message ``task_id`` of resource ``rtype`` ``rid``; whether
        it wrote. ``continued``: this worker published the message while running a step of the same
        ``workflow``, so the hold it wrote for that workflow (if any, on its live lease) is still in place."""
        if continued and self.holds(rtype, rid, workflow):
            return False
        record = HoldRecord(worker=self.name, task=task_id, at=time.time())
        for attempt in range(2):  # a lease that expired meanwhile (a frozen worker) is replaced once
            lease = None
            try:
                lease = self._current_lease()
                self.store.commit(puts={keys.hold(rtype, rid): record}, lease=lease)
                self._remember(rtype, rid, workflow, lease)
                return True
            except StoreError as exc:
                if attempt:
                    log.warning("%s: cannot record that %s holds it: %s", task_id, self.name, exc)
                if lease is not None:
                    self._forget(lease)
        return False

    def holds(self, rtype: str, rid: str, workflow: str) -> bool:
        """Whether this worker wrote the hold of ``workflow`` on its lease, which is surely alive now
        (known alive less than a TTL ago: a frozen worker that wakes up writes again)."""
        with self._lock:
            fresh = self._lease is not None and time.monotonic() - self._alive_at < self.ttl
            return fresh and self._held.get((rtype, rid)) == (workflow, self._lease)

    def holds_now(self, rtype: str, rid: str, workflow: str) -> bool:
        """``holds``, confirmed by etcd: the hold is still this worker's. A resend or a requeue another
        worker received moved it onto that worker's lease, which this worker's memory cannot know."""
        if not self.holds(rtype, rid, workflow):
            return False
        try:
            entry = self.store.get(keys.hold(rtype, rid))
        except StoreError:
            return False
        return entry is not None and entry.value.get("worker") == self.name

    def release(self, rtype: str, rid: str) -> None:
        """Forget the resource's hold: its workflow's last step has arrived (finalize deletes the hold)."""
        with self._lock:
            self._held.pop((rtype, rid), None)

    def _remember(self, rtype: str, rid: str, workflow: str, lease: int) -> None:
        with self._lock:
            self._held[(rtype, rid)] = (workflow, lease)
            self._held.move_to_end((rtype, rid))
            if len(self._held) > MAX_REMEMBERED:
                self._held.popitem(last=False)

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
                asked = time.monotonic()
                self._lease = self.store.grant(self.ttl)
                self._alive_at = asked
            return self._lease

    def _forget(self, lease: int) -> None:
        """The lease is gone, and with it every hold on it."""
        with self._lock:
            if self._lease == lease:
                self._lease = None
                self._held.clear()

    def _keep(self) -> None:
        """Refresh the lease three times per TTL; a lost one is replaced at the next hold."""
        while not self._stopped.wait(self.ttl / 3):
            with self._lock:
                lease = self._lease
            if lease is None:
                continue
            asked = time.monotonic()
            try:
                alive = self.store.refresh(lease)
            except StoreError as exc:
                log.warning("cannot refresh the holds lease of %s: %s", self.name, exc)
                continue
            if alive:
                with self._lock:
                    self._alive_at = max(self._alive_at, asked)
            else:
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


def held_here(task_id: str) -> bool:
    """Whether this process holds the workflow of ``task_id`` on its live lease, as etcd says now: then
    a wait it keeps in memory (esiprov.stack_watch) is as safe as a message, since the leader sends
    the workflow again when this process dies and its lease expires."""
    found = workflow_task(task_id)
    holder = _holder
    return (found is not None and holder is not None and holder.pid == os.getpid()
            and holder.holds_now(found[0], found[1], ":".join(found)))


#: the step a thread that runs no task publishes for (esiprov.stack_watch's re-checks)
_publishing_for = threading.local()


@contextmanager
def continuing(task_id: str) -> Iterator[None]:
    """Publish from this thread as the step ``task_id`` would while running: marked FROM this worker,
    so the re-check finds the workflow's hold in place instead of writing it again."""
    _publishing_for.task_id = task_id
    try:
        yield
    finally:
        _publishing_for.task_id = None


def _received(sender: Any, request: Any, **_: Any) -> None:
    """Celery's task_received, in the process that consumes (before the task runs or its countdown waits)."""
    found = workflow_task(request.id)
    if found is None:
        return
    rtype, rid = found[0], found[1]
    holder = _worker_holder(sender.hostname)
    holder.hold(rtype, rid, request.id, ":".join(found), continued=request.request_dict.get(FROM) == ME)
    if request.id.startswith(f"{FINALIZE}:"):
        holder.release(rtype, rid)


def _publishing(headers: dict[str, Any], **_: Any) -> None:
    """Celery's before_task_publish: mark a step this worker publishes while it runs a step of the
    same workflow (its chain's next step, a countdown re-check) or ``continuing`` one; clear any other mark."""
    running_id = current_task.request.id if current_task else getattr(_publishing_for, "task_id", None)
    running = workflow_of_task(running_id or "")
    if running is not None and running == workflow_of_task(str(headers.get("id", ""))):
        headers[FROM] = ME
    else:
        headers.pop(FROM, None)


def _shutdown(**_: Any) -> None:
    if _holder is not None:
        _holder.stop()


def install() -> None:
    """Make every worker of this Celery app hold what it receives (called once, where the app is built)."""
    signals.task_received.connect(_received, weak=False)
    signals.before_task_publish.connect(_publishing, weak=False)
    signals.worker_shutdown.connect(_shutdown, weak=False)
