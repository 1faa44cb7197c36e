"""Planned jobs -> one etcd transaction -> one Celery chain.

The transaction writes every ``/jobs/all/<id>`` of the version together with the
resource's workflow record, and only if no workflow of that resource is in
flight: that record is the "one workflow per resource at a time" lock, released
by finalize or by a failure. The chain runs the jobs in order (task id = job id,
queue = the handler's, esiprov.steps) and ends with finalize.
"""
from __future__ import annotations

import logging
import time
from typing import Any, cast

from celery import Celery, chain

from esiprov import keys, steps
from esiprov.broker import BROKER_ERRORS
from esiprov.documents import (AppliedConfig, Job, JobEntry, UnsentMarker, WorkflowRecord, finalize_task_id,
                               workflow_record)
from esiprov.planner import Plan
from esiprov.settings import current
from esiprov.store import Compare, Entry, Store

log = logging.getLogger(__name__)


def claim(store: Store, plan: Plan) -> bool:
    """Write the jobs, the workflow record and the applied config in one transaction.

    False (nothing written) when a workflow of the resource is in flight. The applied
    config lets a config deleted outright still be deleted from Heat.
    """
    resource = plan.resource
    if plan.action is None:
        raise ValueError(f"{resource.name}: version {resource.version} is applied already; nothing to claim")
    workflow = workflow_record(resource.version, plan.action, [job.id for job in plan.jobs])
    applied = AppliedConfig(body=resource.body, version=resource.version, deleted=False)
    puts: dict[str, Any] = {keys.workflow(resource.rtype, resource.rid): workflow,
                            keys.applied_config(resource.rtype, resource.rid): applied}
    puts.update({keys.job(job.id): JobEntry(job.handler, job).to_etcd() for job in plan.jobs})
    return store.commit([Compare.absent(keys.workflow(resource.rtype, resource.rid))], puts)


def send(app: Celery, jobs: list[Job]) -> None:
    """Start the chain of a claimed workflow: one task per job, then finalize."""
    last = jobs[-1]
    signatures = [app.signature(step.task_name, args=(job.id,), immutable=True).set(task_id=job.id, queue=step.queue)
                  for job in jobs for step in [steps.handler(job.handler)]]
    signatures.append(app.signature(steps.FINALIZE.task_name, immutable=True,
                                    args=(last.resource_type, last.resource_id, last.version))
                      .set(task_id=finalize_task_id(last.job_name), queue=steps.FINALIZE.queue))
    chain(*signatures).apply_async()


def dispatch(store: Store, app: Celery, plan: Plan) -> bool:
    """Claim and send; False (nothing sent) when the resource already has a workflow in flight."""
    if not claim(store, plan):
        log.info("%s: a workflow is in flight; version %s waits", plan.resource.name, plan.resource.version)
        return False
    if _send_or_mark(store, app, plan.jobs):
        log.info("%s: dispatched %s of version %s: %s", plan.resource.name, plan.action,
                 plan.resource.version, ", ".join(job.id for job in plan.jobs))
    return True


def _send_or_mark(store: Store, app: Celery, jobs: list[Job]) -> bool:
    """Send the chain; if the broker does not take it, leave an unsent marker for the leading watcher,
    which sends it as soon as the broker answers (esiprov.recovery)."""
    try:
        send(app, jobs)
        return True
    except BROKER_ERRORS as exc:
        last = jobs[-1]
        error = current().redact(str(exc))
        store.put(keys.unsent(last.resource_type, last.resource_id), UnsentMarker(at=time.time(), error=error))
        log.error("%s: the broker did not take the workflow (%s); it is sent when the broker answers",
                  last.job_name, error)
        return False


def stale(workflow: WorkflowRecord, after: float) -> bool:
    """A workflow sent more than ``after`` seconds ago and still in flight."""
    return time.time() - workflow.get("sent_at", 0) >= after


def resend(store: Store, app: Celery, workflow: Entry) -> bool:
    """Send an in-flight workflow's chain again (its messages may be lost); False if another did.

    Every step is idempotent, so a chain that was in fact still alive only
    costs duplicate checks. The record's ``sent_at`` is renewed with a
    compare-and-put (which also clears an unsent marker), so concurrent
    recoveries resend once.
    """
    record = cast(WorkflowRecord, {**workflow.value, "sent_at": time.time()})
    found = [store.value(keys.job(job_id)) for job_id in record["jobs"]]
    jobs = [JobEntry.from_etcd(entry).job for entry in found if entry is not None]
    if not jobs:
        return False
    marker = keys.unsent(jobs[-1].resource_type, jobs[-1].resource_id)
    if not store.commit([Compare.unchanged(workflow.key, workflow.mod_revision)], {workflow.key: record}, [marker]):
        return False
    if _send_or_mark(store, app, jobs):
        log.warning("%s: resent %s of version %s", jobs[-1].job_name, record["action"], record["version"])
    return True
