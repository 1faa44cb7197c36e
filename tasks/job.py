"""What every job step shares: loading its job document, waiting, retrying, failing clearly.

A step is a function ``(job, store) -> None`` registered with ``job_step(handler)``.
It raises ``NotYet`` to be called again after a short countdown (a stack still
building, a referenced resource not complete): no worker slot is held meanwhile.
Transient infrastructure errors retry with exponential backoff; a ``JobFailed``
(or bad template/mapping, a wait that timed out, retries used up) writes
``<ACTION>_FAILED`` to /state, releases the resource's workflow and stops the chain —
unless the job says ``on_failure: ignore`` (best-effort cleanup, such as removing the
monitoring target before a delete): then only a failure record is written, and the
chain goes on to finalize, which publishes the workflow's outcome.
"""
from __future__ import annotations

import logging
import os
import random
from typing import Any, Callable

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from esiprov import keys, publish
from esiprov.broker import BROKER_ERRORS
from esiprov.heat import HeatRejected, HeatUnavailable
from esiprov.mappings import MappingError
from esiprov.model import IGNORE, Job
from esiprov.reconcile import reconcile
from esiprov.settings import Settings, current
from esiprov.store import Store, StoreError
from esiprov.templates import TemplateError
from tasks import app

log = logging.getLogger(__name__)

#: transient errors retried with backoff before the job fails (a step over its soft time limit
#: was stuck in I/O: try again)
TRANSIENT = (StoreError, *BROKER_ERRORS, HeatUnavailable, SoftTimeLimitExceeded)
#: seconds of the first backoff; it doubles up to Settings.retry_backoff_max
BACKOFF_MIN = 1.0


def retrying(name: str) -> dict[str, Any]:
    """Options of a task outside ``job_step`` (finalize, resync, the poll): named ``name``, it retries
    transient etcd and broker errors with the steps' backoff and attempts (Celery's autoretry)."""
    settings = current()
    return {"name": name, "autoretry_for": TRANSIENT, "max_retries": settings.retry_attempts,
            "retry_backoff": BACKOFF_MIN, "retry_backoff_max": settings.retry_backoff_max, "retry_jitter": True}


class JobFailed(Exception):
    """The job cannot succeed as it is; the message becomes /state.error."""


#: errors that fail a job at once: retrying would give the same answer
PERMANENT = (JobFailed, HeatRejected, MappingError, TemplateError)


class NotYet(Exception):
    """Call the step again later; the message says what it waits for.

    With ``countdown`` and ``waited`` (seconds waited so far) the step sets its own pace (a
    stack's checks follow the time its operation has run); without, the checks back off from
    ESIPROV_HEAT_POLL_INTERVAL by half again each time, up to ESIPROV_HEAT_POLL_MAX (``polling``).
    """

    def __init__(self, reason: str, countdown: float | None = None, waited: float | None = None) -> None:
        super().__init__(reason)
        self.countdown = countdown
        self.waited = waited


#: how much longer each wait of a step that does not set its own pace is than the one before
POLL_GROWTH = 1.5


def polling(retries: int, settings: Settings) -> tuple[float, float]:
    """(the next countdown, the seconds waited so far) after ``retries`` checks that backed off."""
    waits = [min(settings.heat_poll_max, settings.heat_poll_interval * POLL_GROWTH ** n) for n in range(retries + 1)]
    return waits[-1], sum(waits[:-1])


_stores: dict[int, Store] = {}


def store() -> Store:
    """This process's etcd connection (a forked pool child makes its own)."""
    pid = os.getpid()
    if pid not in _stores:
        _stores[pid] = Store.connect(current())
    return _stores[pid]


def backoff(attempt: int, ceiling: float) -> float:
    """Exponential backoff with full jitter: spreads retries after an outage."""
    return random.uniform(min(BACKOFF_MIN, ceiling), min(ceiling, BACKOFF_MIN * 2 ** attempt))


def load_job(etcd: Store, job_id: str) -> Job | None:
    found = etcd.value(keys.job(job_id))
    return None if found is None else Job.from_document(found[1])


def wait_for_dependencies(job: Job, etcd: Store) -> None:
    """NotYet while a job of another resource that this one depends on is still in /jobs/all.

    Jobs of the job's own chain have run already (the chain is ordered); a
    dependency that failed for good fails this job too, unless its failure was ignored
    (then it is waited for like any job in flight: its workflow goes on). Failures are
    looked for among all the dependencies before waiting for any: a workflow that failed
    leaves its later jobs in /jobs/all, which would otherwise be waited for until the
    wait times out. One round trip reads them all.
    """
    others = [d for d in job.dependency if d.split(":")[2:4] != [job.resource_type, job.resource_id]]
    if not others:
        return
    found = etcd.get_many([key for d in others for key in (keys.failure(d), keys.job(d))])
    failures, present = found[0::2], found[1::2]
    for dependency, failure in zip(others, failures):
        if failure is not None and not (isinstance(failure.value, dict) and failure.value.get("ignored")):
            raise JobFailed(f"job {dependency}, which this job depends on, failed")
    waiting = [dependency for dependency, entry in zip(others, present) if entry is not None]
    if waiting:
        raise NotYet(f"waiting for {', '.join(waiting)}")


def job_step(handler: str) -> Callable[[Callable[[Job, Store], None]], Task]:
    """Register ``run(job, store)`` as the Celery task of ``handler``.

    ``transient`` counts consecutive transient failures (polls do not count), so
    a long stack build does not use up the retries meant for a Heat outage.
    """
    def register(run: Callable[[Job, Store], None]) -> Task:
        @app.task(name=f"esiprov.{handler}", bind=True, max_retries=None)
        def step(task: Task, job_id: str, transient: int = 0) -> None:
            etcd = store()
            job = None
            try:
                job = load_job(etcd, job_id)
                if job is None:
                    log.info("%s: job is gone (finished or superseded); nothing to do", job_id)
                    return
                wait_for_dependencies(job, etcd)
                run(job, etcd)
            except NotYet as wait:
                _wait(task, etcd, job, wait, current())
            except TRANSIENT as exc:
                settings = current()
                if transient >= settings.retry_attempts:
                    if _give_up(etcd, job, f"gave up after {transient} retries: {exc}"):
                        return
                    raise
                log.warning("%s: %s; retrying", job_id, settings.redact(str(exc)))
                raise task.retry(countdown=backoff(transient, settings.retry_backoff_max),
                                 kwargs={"transient": transient + 1})
            except PERMANENT as exc:
                if not _give_up(etcd, job, str(exc)):
                    raise
            except Exception as exc:  # noqa: BLE001 - whatever happens, /state must say so
                if not _give_up(etcd, job, f"unexpected error: {type(exc).__name__}: {exc}"):
                    raise
        step.__doc__ = run.__doc__
        return step
    return register


def _give_up(etcd: Store, job: Job | None, error: str) -> bool:
    """Record that the job failed for good; True when its chain goes on regardless (``on_failure: ignore``).

    With no job to record it for, or when etcd does not answer, nothing is recorded and the task
    fails: the workflow stays in flight, and resync sends it again.
    """
    if job is None:
        return False
    try:
        return _finish_failed(etcd, job, error)
    except StoreError:
        log.error("%s: %s (etcd unreachable: failure not recorded; resync will retry)", job.id, error)
        return False


def _wait(task: Task, etcd: Store, job: Job | None, wait: NotYet, settings: Settings) -> None:
    """Retry after the step's countdown; past ESIPROV_WAIT_TIMEOUT the job fails (or, ignored, returns)."""
    countdown, waited = polling(task.request.retries, settings)
    if wait.countdown is not None and wait.waited is not None:
        countdown, waited = wait.countdown, wait.waited
    if waited >= settings.wait_timeout:
        if _give_up(etcd, job, f"{wait} after waiting {settings.wait_timeout:.0f} s"):
            return
        raise JobFailed(str(wait))
    raise task.retry(countdown=countdown, kwargs={"transient": 0})


def _finish_failed(etcd: Store, job: Job, error: str) -> bool:
    """Record the failure (secrets redacted); True when the job's chain goes on regardless.

    A job that may fail (``on_failure: fail``) ends its workflow: ``<ACTION>_FAILED`` is published,
    the workflow released, and the resource re-driven (a newer version may be waiting). A job marked
    ``ignore`` keeps the workflow: releasing it while the chain goes on would let finalize find no
    workflow and leave /state FAILED after the rest of the chain did its work.
    """
    error = current().redact(error)
    if job.on_failure == IGNORE:
        publish.ignored(etcd, job.id, error)
        return True
    publish.fail(etcd, job.resource_type, job.resource_id, job.version, job.action, error, job.id)
    reconcile(etcd, app, job.resource_type, job.resource_id)
    return False
