"""Where each job stands, for operators: etcd's job, hold and failure records joined with Celery's.

etcd says which jobs exist (``/jobs/all``), which a worker holds right now
(``/esi-worker/holds/``: received, running or waiting on its countdown) and
which failed for good (``/esi-worker/failures/``); the result backend says what
Celery did last with the task of the same id (task id = job id). A job's age is
the time since its failure, since a worker received it, or since Celery finished
the step; a pending job has none.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from celery import Celery, states

from esiprov import keys
from esiprov.documents import FailureRecord, HoldRecord, Job, JobEntry, JobId
from esiprov.store import Store

PENDING, RUNNING, DONE, FAILED, BLOCKED, WAITING = "pending", "running", "done", "failed", "blocked", "waiting"
#: Celery states -> job status; RETRY is a step waiting on a countdown (a stack building)
_STATUS = {states.STARTED: RUNNING, states.RETRY: RUNNING, states.SUCCESS: DONE, states.FAILURE: FAILED}


@dataclass
class JobView:
    """One job as ``esiprov jobs list/show`` report it."""

    id: str
    handler: str
    attempts: int
    job: Job
    failure: FailureRecord | None
    celery: dict[str, Any] = field(default_factory=dict)
    #: the failed job of the same workflow that stopped the chain before this one
    blocked_by: str | None = None
    #: the hold record of the worker holding this job's message now (esiprov.holds), if any
    hold: HoldRecord | None = None
    #: jobs of other resources this one depends on that are still in /jobs/all: it waits for them
    waiting_for: list[str] = field(default_factory=list)
    #: epoch seconds its workflow was sent (or sent again): the wait began then
    waiting_since: float | None = None

    @property
    def status(self) -> str:
        """failed (a failure record, or Celery says so); blocked (an earlier step of its chain failed,
        which Celery reports as this task's failure too); waiting while a job of a referenced resource
        is still in /jobs/all (the step checks again and again, as tasks.job does); running while a worker holds it and Celery has
        not seen it succeed; else pending, running or done from Celery."""
        if self.failure is not None:
            return FAILED
        if self.blocked_by is not None:
            return BLOCKED
        state = self.celery.get("status", states.PENDING)
        if self.waiting_for and state != states.SUCCESS:
            return WAITING
        if self.hold is not None and state != states.SUCCESS:
            return RUNNING
        return _STATUS.get(state, state.lower())

    @property
    def error(self) -> str:
        """The failure record's error (saying so when the job's chain went on regardless); else the
        exception Celery stored for the task."""
        if self.failure is not None:
            error = str(self.failure.get("error", ""))
            return f"{error} (on_failure ignore: its workflow went on)" if self.failure.get("ignored") else error
        if self.blocked_by is not None:
            return f"not run: {self.blocked_by} failed"
        result = self.celery.get("result")
        if self.celery.get("status") in states.EXCEPTION_STATES and isinstance(result, BaseException):
            return f"{type(result).__name__}: {result}"
        return ""

    def since(self) -> float | None:
        """Epoch seconds of the last known event: the failure, a worker receiving it, Celery finishing the step."""
        for at in (self.failure and self.failure.get("at"), self.hold and self.hold.get("at")):
            if isinstance(at, (int, float)):
                return float(at)
        done = self.celery.get("date_done")
        if isinstance(done, str):
            try:
                return datetime.fromisoformat(done).timestamp()
            except ValueError:
                return None
        return None

    def row(self) -> dict[str, Any]:
        """The flat record of ``jobs list --json``."""
        since = self.since()
        job = self.job
        return {"id": self.id, "resource": f"{job.resource_type}:{job.resource_id}",
                "type": job.resource_type, "resource_id": job.resource_id,
                "version": job.version, "action": job.action, "handler": self.handler,
                "attempts": self.attempts, "status": self.status,
                "worker": self.hold.get("worker") if self.hold else None,
                "celery_state": self.celery.get("status", states.PENDING),
                "age_seconds": _seconds_since(since), "error": self.error,
                "waiting_for": self.waiting_for if self.status == WAITING else [],
                "waiting_seconds": _seconds_since(self.waiting_since) if self.status == WAITING else None}


def _seconds_since(epoch: float | None) -> float | None:
    return None if epoch is None else round(time.time() - epoch, 1)


def celery_meta(app: Celery, task_id: str) -> dict[str, Any]:
    """What the result backend holds for ``task_id`` (``{"status": "PENDING"}`` when nothing)."""
    return dict(app.backend.get_task_meta(task_id))


def _workflow_of(job_id: str) -> str | None:
    """The workflow (job_name) of a job id; None for a key that is not one."""
    job = JobId.of(job_id)
    return None if job is None else job.job_name


def _waits_for(job: Job, present: set[str]) -> list[str]:
    """The jobs of other resources that ``job`` depends on and that are still in /jobs/all (``present``)."""
    return [dep for dep in job.dependency if job.depends_on_other_resource(dep) and dep in present]


def _sent_at(workflows: dict[tuple[str, str], Any], job: Job) -> float | None:
    """When the workflow of ``job``'s version was sent; None when another version's runs (or none)."""
    record = workflows.get((job.resource_type, job.resource_id))
    if isinstance(record, dict) and record.get("version") == job.version:
        return record.get("sent_at")
    return None


def _held_now(app: Celery, job_id: str, job: Job, meta: dict[str, Any], hold: HoldRecord) -> bool:
    """Whether the resource's ``hold`` is this job's: a worker holds a workflow once, with the task id
    of the first step it received (esiprov.holds), so the job it holds now is the one of that
    workflow whose own chain's earlier jobs Celery has seen succeed and that has not succeeded yet."""
    if hold.get("task") == job_id:
        return True
    if _workflow_of(str(hold.get("task", ""))) != _workflow_of(job_id) or meta.get("status") == states.SUCCESS:
        return False
    earlier = [dep for dep in job.dependency if not job.depends_on_other_resource(dep)]
    return all(celery_meta(app, dep).get("status") == states.SUCCESS for dep in earlier)


def list_jobs(store: Store, app: Celery, rtype: str | None = None, failed_only: bool = False,
              job_id: str | None = None) -> list[JobView]:
    """The jobs in /jobs/all (of ``rtype``, only failed ones, or just ``job_id``), in key order."""
    failures = {found: e.value for e in store.range(keys.FAILURES)[0]
                if (found := keys.job_id_of(e.key, keys.FAILURES))}
    failed_in = {_workflow_of(failed): failed for failed in failures}
    held = {resource: cast(HoldRecord, e.value) for e in store.range(keys.HOLDS)[0]
            if isinstance(e.value, dict) and (resource := keys.resource_of(e.key, keys.HOLDS))}
    workflows = {resource: e.value for e in store.range(keys.WORKFLOWS)[0]
                 if (resource := keys.resource_of(e.key, keys.WORKFLOWS))}
    entries = {found: JobEntry.from_etcd(e.value) for e in store.range(keys.JOBS)[0]
               if (found := keys.job_id_of(e.key))}
    present = set(entries)
    views = []
    for this, entry in entries.items():
        job = entry.job
        if (rtype and job.resource_type != rtype) or (job_id and this != job_id):
            continue
        meta = celery_meta(app, this)
        blocked = meta.get("status") == states.FAILURE and this not in failures
        hold = held.get((job.resource_type, job.resource_id))
        views.append(JobView(this, entry.handler, entry.attempts, job, failures.get(this), meta,
                             failed_in.get(_workflow_of(this)) if blocked else None,
                             hold if hold is not None and _held_now(app, this, job, meta, hold) else None,
                             _waits_for(job, present), _sent_at(workflows, job)))
    return [v for v in views if v.status == FAILED] if failed_only else views


def show_job(store: Store, app: Celery, job_id: str) -> JobView | None:
    """One job, or None when it is not in /jobs/all (finished jobs are removed by finalize)."""
    found = list_jobs(store, app, job_id=job_id)
    return found[0] if found else None
