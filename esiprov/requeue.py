"""Re-run a failed job from its stored inputs: ``esiprov jobs requeue``.

Celery cannot re-run one failed step of a chain; esiprov can, because a job's
inputs live in etcd. A requeue sends the failed job and the jobs after it in its
chain (then finalize), as dispatch would have sent them from that point. Before
that, one transaction re-claims the resource's workflow record for the job's
version, counts the attempt (``JobEntry.attempts``) and
removes the failure record — guarded on everything it checked, so it cannot
overtake a newer version or another workflow. The worker sees the higher attempt
count and sends the job's Heat operation again (a stack left ``*_FAILED`` is
updated), so fixing the cause (a template, Heat itself) and requeueing completes
the resource.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from celery import Celery

from esiprov import dispatch, keys
from esiprov.documents import (READ_COMPLETE, Job, JobEntry, JobId, envelope_version, finalize_task_id,
                               workflow_record)
from esiprov.follow import wait_for
from esiprov.store import Compare, Entry, Store


class Refused(Exception):
    """The job cannot be requeued now; the message says why and what to do."""


class UnknownJob(Refused):
    """No such job in /jobs/all."""


@dataclass(frozen=True)
class Requeued:
    job_id: str
    #: the job's attempt count now (its first requeue makes it 1)
    attempts: int
    #: the job ids sent, in chain order (finalize follows them)
    sent: list[str]


def chain_order(jobs: list[Job]) -> list[Job]:
    """The jobs of one workflow in chain order: each job after the first names its predecessor in ``dependency``."""
    firsts = [job for job in jobs if job.is_first]
    if len(firsts) != 1:
        raise Refused(f"the jobs of {jobs[0].job_name} have {len(firsts)} first jobs; cannot tell the chain order")
    following = {dep: job for job in jobs if not job.is_first for dep in job.dependency}
    ordered = firsts
    while ordered[-1].id in following and len(ordered) <= len(jobs):
        ordered.append(following[ordered[-1].id])
    if len(ordered) != len(jobs):
        raise Refused(f"the jobs of {jobs[0].job_name} in {keys.JOBS} do not form one chain")
    return ordered


def workflow_jobs(store: Store, job: Job) -> list[Job]:
    """Every job of ``job``'s workflow (same job_name) still in /jobs/all, in chain order."""
    entries, _ = store.range(keys.JOBS)
    jobs = (JobEntry.from_etcd(entry.value).job for entry in entries)
    return chain_order([other for other in jobs if other.job_name == job.job_name])


def failed_job_ids(store: Store, rtype: str | None = None) -> list[str]:
    """Jobs with a failure record (of ``rtype``), oldest failure first."""
    failures = sorted(store.range(keys.FAILURES)[0], key=lambda e: e.value.get("at", 0))
    found = []
    for entry in failures:
        job_id = keys.job_id_of(entry.key, keys.FAILURES)
        value = store.value(keys.job(job_id)) if job_id else None
        if job_id and value is not None and rtype in (None, JobEntry.from_etcd(value).job.resource_type):
            found.append(job_id)
    return found


def _guard(store: Store, key: str) -> tuple[Entry | None, Any]:
    """The key's entry now and a transaction guard that it stays so."""
    entry = store.get(key)
    return entry, Compare.as_read(key, entry)


def _resource_guards(store: Store, job: Job) -> list[Any]:
    """Refuse when the resource moved on; guards that it has not by the time we commit."""
    rtype, rid, name = job.resource_type, job.resource_id, f"{job.resource_type} {job.resource_id}"
    workflow = store.value(keys.workflow(rtype, rid))
    if workflow is not None:
        raise Refused(f"{name} has a workflow in flight ({workflow.get('action')} of version "
                      f"{workflow.get('version')}); requeue when it has ended (`esiprov jobs list` shows "
                      f"where it stands; the leading watcher resends it by itself if its worker or broker "
                      f"lost it, `esiprov resync --resend-after 0` at once)")
    state, state_guard = _guard(store, keys.state(rtype, rid))
    if state is not None and envelope_version(state.value) > job.version:
        raise Refused(f"/state of {name} is at version {envelope_version(state.value)} already; "
                      f"job {job.id} of version {job.version} is outdated")
    config, config_guard = _guard(store, keys.config(rtype, rid))
    if config is not None and envelope_version(config.value) > job.version:
        raise Refused(f"the config of {name} is at version {envelope_version(config.value)}; "
                      f"job {job.id} of version {job.version} is outdated (the newer version gets its own jobs)")
    return [Compare.absent(keys.workflow(rtype, rid)), state_guard, config_guard]


def requeue(store: Store, app: Celery, job_id: str) -> Requeued:
    """Re-claim the workflow, count the attempt, clear the failure, and send the chain from this job on."""
    entry = store.get(keys.job(job_id))
    if entry is None:
        raise UnknownJob(f"no job {job_id} in {keys.JOBS} (finished jobs are removed)")
    job_entry = JobEntry.from_etcd(entry.value)
    job = job_entry.job
    failure = store.get(keys.failure(job_id))
    if failure is None:
        raise Refused(f"job {job_id} has not failed (no {keys.failure(job_id)}); only failed jobs are requeued")
    chain = workflow_jobs(store, job)
    rest = chain[[j.id for j in chain].index(job_id):]
    guards = _resource_guards(store, job) + [Compare.unchanged(entry.key, entry.mod_revision),
                                             Compare.unchanged(failure.key, failure.mod_revision)]
    workflow_key = keys.workflow(job.resource_type, job.resource_id)
    workflow = workflow_record(job.version, job.action, [j.id for j in chain])
    attempted = JobEntry(job_entry.handler, job, job_entry.attempts + 1)
    if not store.commit(guards, {workflow_key: workflow, entry.key: attempted.to_etcd()}, [failure.key]):
        raise Refused(f"{job.resource_type} {job.resource_id} changed while requeueing {job_id}; try again")
    try:
        for task_id in [j.id for j in rest] + [finalize_task_id(job.job_name)]:
            app.AsyncResult(task_id).forget()  # the old FAILURE would read as this run's state
        dispatch.send(app, rest)
    except Exception:
        store.commit(puts={failure.key: failure.value, entry.key: entry.value}, deletes=[workflow_key])
        raise
    return Requeued(job_id, attempted.attempts, [j.id for j in rest])


def settled(document: Any, version: int) -> bool:
    """Whether /state says the requeued ``version`` has ended: a final worker_state of that version
    (``*_COMPLETED``, ``READ_COMPLETE``, ``*_FAILED``), or a newer version already."""
    found = envelope_version(document)
    inner = document.get("state") if isinstance(document, dict) else None
    worker_state = str(inner.get("worker_state", "")) if isinstance(inner, dict) else ""
    final = worker_state.endswith(("_COMPLETED", "_FAILED")) or worker_state == READ_COMPLETE
    return found > version or (found == version and final)


@dataclass(frozen=True)
class Settled:
    """What /state said when ``jobs requeue --wait`` stopped waiting for a requeued job."""

    job_id: str
    resource_type: str
    resource_id: str
    version: int
    #: None when the wait timed out
    worker_state: str | None = None
    state_version: int | None = None
    state_error: str = ""

    @property
    def completed(self) -> bool:
        return (self.worker_state is not None and self.state_version == self.version
                and not self.worker_state.endswith("_FAILED"))

    def document(self) -> dict[str, Any]:
        return {"worker_state": self.worker_state, "state_version": self.state_version,
                "state_error": self.state_error, "completed": self.completed}

    def describe(self, timeout: float) -> str:
        """One line for the operator: the outcome, or why waiting ended without one."""
        name = f"{self.resource_type} {self.resource_id}"
        if self.worker_state is None:
            return (f"timed out after {timeout:g} s waiting for /state of {name} version {self.version}; "
                    f"it may still be running: esiprov state show {self.resource_type} {self.resource_id}")
        if self.state_version != self.version:
            return f"{name} moved on to version {self.state_version} ({self.worker_state}) meanwhile"
        if not self.completed:
            error = " ".join(self.state_error.split())
            return f"{name} version {self.version} failed again: {self.worker_state}: {error}"
        return f"{name} version {self.version}: {self.worker_state}"


def wait_settled(store: Store, job_id: str, after_revision: int, deadline: float) -> Settled:
    """Wait (until the monotonic ``deadline``) for a /state written after ``after_revision`` that ends the
    requeued job's version (``settled``)."""
    job = JobId.parse(job_id)
    found = Settled(job_id, job.rtype, job.rid, job.version)
    entry = wait_for(store, keys.state(job.rtype, job.rid), after_revision, lambda doc: settled(doc, found.version),
                     max(0.0, deadline - time.monotonic()))
    if entry is None:
        return found
    inner = entry.value.get("state") if isinstance(entry.value.get("state"), dict) else {}
    return Settled(**{**asdict(found), "worker_state": str(inner.get("worker_state", "")),
                      "state_version": envelope_version(entry.value), "state_error": str(entry.value.get("error") or "")})
