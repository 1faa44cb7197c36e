"""What every job step shares: loading its job document, waiting, retrying, failing clearly.

A step is a function ``(job, context, loaded) -> None`` registered with ``job_step(step, *also)``
for one handler of esiprov.steps; the context (tasks.context) carries its settings, etcd and
app, ``loaded`` what was read with the job in the same round trip (its attempt count, the
entries of the keys ``also`` names).
It raises ``NotYet`` to be called again after a short countdown (a stack still
building, a referenced resource not complete): no worker slot is held meanwhile.
Transient errors (esiprov.errors.Transient, the broker's) retry with exponential backoff;
a permanent one (``JobFailed``, a bad template or mapping, a wait that timed out, retries
used up) writes
``<ACTION>_FAILED`` to /state, releases the resource's workflow and stops the chain —
unless the job says ``on_failure: ignore`` (best-effort cleanup, such as removing the
monitoring target before a delete): then only a failure record is written, and the
chain goes on to finalize, which publishes the workflow's outcome.
"""
from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

from celery import Task
from celery.exceptions import Retry, SoftTimeLimitExceeded

from esiprov import holds, keys, publish, templates
from esiprov.app import app
from esiprov.broker import BROKER_ERRORS
from esiprov.documents import IGNORE, Job, JobEntry, JobId
from esiprov.errors import Permanent, Transient
from esiprov.reconcile import reconcile
from esiprov.settings import Settings, current
from esiprov.steps import Step
from esiprov.store import Entry, Store, StoreError
from esiprov.templates import Catalogue
from tasks.context import Context, context

log = logging.getLogger(__name__)

#: transient errors retried with backoff before the job fails (a step over its soft time limit
#: was stuck in I/O: try again)
TRANSIENT = (Transient, *BROKER_ERRORS, SoftTimeLimitExceeded)
#: seconds of the first backoff; it doubles up to Settings.retry_backoff_max
BACKOFF_MIN = 1.0


def retrying(step: Step) -> dict[str, Any]:
    """Options of a task outside ``job_step`` (finalize, resync, the poll): named after ``step``, it
    retries transient etcd and broker errors with the steps' backoff and attempts (Celery's autoretry)."""
    settings = current()
    return {"name": step.task_name, "autoretry_for": TRANSIENT, "max_retries": settings.retry_attempts,
            "retry_backoff": BACKOFF_MIN, "retry_backoff_max": settings.retry_backoff_max, "retry_jitter": True}


class JobFailed(Permanent):
    """The job cannot succeed as it is; the message becomes /state.error."""


#: takes a wait over: calls the ``resend`` it is given once what the step waits for has changed
Handoff = Callable[[Callable[[], None]], None]


class NotYet(Exception):
    """Call the step again later; the message says what it waits for.

    With ``countdown`` and ``waited`` (seconds waited so far) the step sets its own pace (a
    stack's checks follow the time its operation has run); without, the checks back off from
    ESIPROV_HEAT_POLL_INTERVAL by half again each time, up to ESIPROV_HEAT_POLL_MAX (``polling``).
    With ``handoff`` the step is not called again after a countdown but when ``handoff`` says so
    (a building stack: esiprov.stack_watch), provided this process holds the workflow (``_wait``).
    """

    def __init__(self, reason: str, countdown: float | None = None, waited: float | None = None,
                 handoff: Handoff | None = None) -> None:
        super().__init__(reason)
        self.countdown = countdown
        self.waited = waited
        self.handoff = handoff


#: how much longer each wait of a step that does not set its own pace is than the one before
POLL_GROWTH = 1.5


def polling(retries: int, settings: Settings) -> tuple[float, float]:
    """(the next countdown, the seconds waited so far) after ``retries`` checks that backed off."""
    waits = [min(settings.heat_poll_max, settings.heat_poll_interval * POLL_GROWTH ** n) for n in range(retries + 1)]
    return waits[-1], sum(waits[:-1])


def backoff(attempt: int, ceiling: float) -> float:
    """Exponential backoff with full jitter: spreads retries after an outage."""
    return random.uniform(min(BACKOFF_MIN, ceiling), min(ceiling, BACKOFF_MIN * 2 ** attempt))


@dataclass(frozen=True)
class Loaded:
    """What a step read with its job, in the same round trip: the job's attempt count (raised by each
    requeue), the entry of each of the step's ``also`` keys (None when absent), and the schema and
    templates of the job's type as etcd holds them, so the step reads neither /jobs/all, nor those
    keys, nor its template again."""

    attempts: int
    also: list[Entry | None]
    catalogue: Catalogue


def load_job(etcd: Store, job_id: str, also: Sequence[str] = ()) -> tuple[Job, Loaded] | None:
    """The job and what came with it, in one transaction of reads."""
    rtype, _ = JobId.parse(job_id).resource
    (entry, *others), catalogue = templates.read_catalogue(etcd, rtype, keys.job(job_id), *also)
    if entry is None:
        return None
    found = JobEntry.from_etcd(entry.value)
    return found.job, Loaded(found.attempts, others, catalogue)


def job_state_of(job_id: str) -> str:
    """The job_state key of a job's resource (its type and id are part of the job id)."""
    return keys.job_state(*JobId.parse(job_id).resource)


def merge_job_state(etcd: Store, job: Job, read: Entry | None, fields: dict[str, Any],
                    extra: dict[str, Any]) -> None:
    """Merge ``fields`` into the resource's job_state (and put ``extra``) in one transaction guarded on
    the job_state ``read`` with the job; read again and merged only when it changed meanwhile."""
    etcd.update(keys.job_state(job.resource_type, job.resource_id), lambda state: {**(state or {}), **fields},
                extra=extra, read=read)


def wait_for_dependencies(job: Job, etcd: Store) -> None:
    """NotYet while a job of another resource that this one depends on is still in /jobs/all.

    Jobs of the job's own chain have run already (the chain is ordered); a
    dependency that failed for good fails this job too, unless its failure was ignored
    (then it is waited for like any job in flight: its workflow goes on). Failures are
    looked for among all the dependencies before waiting for any: a workflow that failed
    leaves its later jobs in /jobs/all, which would otherwise be waited for until the
    wait times out. One round trip reads them all.
    """
    others = [d for d in job.dependency if job.depends_on_other_resource(d)]
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


#: a step: its job, the worker's context, and what was read with the job
StepRun = Callable[[Job, Context, Loaded], None]


def job_step(handler: Step, *also: Callable[[str], str]) -> Callable[[StepRun], Task]:
    """Register ``run(job, context, loaded)`` as the Celery task of ``handler``; the keys ``also(job id)``
    are read with the job, in one round trip, and their entries handed over in ``loaded``.

    ``transient`` counts consecutive transient failures (polls do not count), so
    a long stack build does not use up the retries meant for a Heat outage.
    """
    def register(run: StepRun) -> Task:
        @app.task(name=handler.task_name, bind=True, max_retries=None)
        def step(task: Task, job_id: str, transient: int = 0) -> None:
            ctx = context()
            job = None
            try:
                found = load_job(ctx.store, job_id, [key(job_id) for key in also])
                if found is None:
                    log.info("%s: job is gone (finished or superseded); nothing to do", job_id)
                    return
                job, loaded = found
                wait_for_dependencies(job, ctx.store)
                run(job, ctx, loaded)
            except NotYet as wait:
                _wait(task, ctx, job, wait)
            except TRANSIENT as exc:
                if transient >= ctx.settings.retry_attempts:
                    if _give_up(ctx, job, f"gave up after {transient} retries: {exc}"):
                        return
                    raise
                log.warning("%s: %s; retrying", job_id, ctx.settings.redact(str(exc)))
                raise task.retry(countdown=backoff(transient, ctx.settings.retry_backoff_max),
                                 kwargs={"transient": transient + 1})
            except Permanent as exc:
                if not _give_up(ctx, job, str(exc)):
                    raise
            except Exception as exc:  # noqa: BLE001 - whatever happens, /state must say so
                if not _give_up(ctx, job, f"unexpected error: {type(exc).__name__}: {exc}"):
                    raise
        step.__doc__ = run.__doc__
        return step
    return register


def _give_up(ctx: Context, job: Job | None, error: str) -> bool:
    """Record that the job failed for good; True when its chain goes on regardless (``on_failure: ignore``).

    With no job to record it for, or when etcd does not answer, nothing is recorded and the task
    fails: the workflow stays in flight, and resync sends it again.
    """
    if job is None:
        return False
    try:
        return _finish_failed(ctx, job, error)
    except StoreError:
        log.error("%s: %s (etcd unreachable: failure not recorded; resync will retry)", job.id, error)
        return False


def _wait(task: Task, ctx: Context, job: Job | None, wait: NotYet) -> None:
    """Retry after the step's countdown, or when its handoff says; past ESIPROV_WAIT_TIMEOUT the job
    fails (or, ignored, returns)."""
    settings = ctx.settings
    countdown, waited = polling(task.request.retries, settings)
    if wait.countdown is not None and wait.waited is not None:
        countdown, waited = wait.countdown, wait.waited
    if waited >= settings.wait_timeout:
        if _give_up(ctx, job, f"{wait} after waiting {settings.wait_timeout:.0f} s"):
            return
        raise JobFailed(str(wait))
    if wait.handoff is not None and holds.held_here(task.request.id or ""):
        _hand_off(task, wait.handoff, str(wait))
    raise task.retry(countdown=countdown, kwargs={"transient": 0})


def _hand_off(task: Task, handoff: Handoff, reason: str) -> None:
    """End the step as retried, its re-check published by ``handoff``'s resend instead of now; return
    (for a countdown instead) only if the handoff failed.

    Only while this process holds the workflow on its lease: if the process dies before the resend,
    the leader sends the workflow again when the lease expires, as for any message it held."""
    recheck = task.signature_from_request(task.request, None, {"transient": 0}, retries=task.request.retries + 1)
    task_id = task.request.id or ""

    def resend() -> None:
        with holds.continuing(task_id):
            recheck.apply_async()

    try:
        handoff(resend)
    except Exception:  # noqa: BLE001 - the step must go on waiting, whatever the watch's trouble
        log.exception("%s: cannot hand the wait over; checked again after a countdown", task_id)
        return
    raise Retry(f"{reason}; checked again when it changes", sig=recheck)


def _finish_failed(ctx: Context, job: Job, error: str) -> bool:
    """Record the failure (secrets redacted); True when the job's chain goes on regardless.

    A job that may fail (``on_failure: fail``) ends its workflow: ``<ACTION>_FAILED`` is published,
    the workflow released, and the resource re-driven (a newer version may be waiting). A job marked
    ``ignore`` keeps the workflow: releasing it while the chain goes on would let finalize find no
    workflow and leave /state FAILED after the rest of the chain did its work.
    """
    error = ctx.settings.redact(error)
    if job.on_failure == IGNORE:
        publish.ignored(ctx.store, job.id, error)
        return True
    publish.fail(ctx.store, job.resource_type, job.resource_id, job.version, job.action, error, job.id)
    reconcile(ctx.store, ctx.app, job.resource_type, job.resource_id)
    return False
