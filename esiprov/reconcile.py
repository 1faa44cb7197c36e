"""Bring one resource (or all) towards its config: plan, then dispatch, publish or fail.

This is the level-triggered core shared by the watcher, ``esiprov resync`` and
finalize (which re-drives a version that arrived while a workflow ran). Running
it twice for the same state does nothing the second time.
"""
from __future__ import annotations

import logging
from collections import Counter
from typing import Callable

from celery import Celery

from esiprov import keys, planner, publish
from esiprov.dispatch import dispatch, resend, stale
from esiprov.store import Store

log = logging.getLogger(__name__)

DELETED = publish.worker_state(planner.DELETE, "COMPLETED")

#: outcomes, as reported by resync
ABSENT, CURRENT, FAILED, READ, DISPATCHED, IN_FLIGHT, RESENT, FORGOTTEN = (
    "absent", "current", "failed", "read", "dispatched", "in flight", "resent", "forgotten")


def reconcile(store: Store, app: Celery, rtype: str, rid: str, resend_after: float | None = None) -> str:
    """Do what the resource needs now; return the outcome. Bad input ends in /state, never raises.

    A workflow in flight is left alone, or, with ``resend_after``, sent again once it is that old.
    """
    workflow = store.get(keys.workflow(rtype, rid))
    if workflow is not None:
        if resend_after is not None and stale(workflow.value, resend_after) and resend(store, app, workflow):
            return RESENT
        return IN_FLIGHT
    try:
        plan = planner.plan(store, rtype, rid)
    except planner.PlanError as exc:
        publish.fail(store, exc.rtype, exc.rid, exc.version, exc.action, str(exc))
        return FAILED
    if plan is None:
        return _gone(store, app, rtype, rid)
    if plan.action is None:
        if plan.resource.version < plan.applied:
            log.warning("%s: config version %s is older than the applied version %s; ignored",
                        plan.resource.name, plan.resource.version, plan.applied)
        return CURRENT
    if not plan.jobs:
        publish.read_complete(store, rtype, rid, plan.resource.version)
        return READ
    return DISPATCHED if dispatch(store, app, plan) else IN_FLIGHT


def _gone(store: Store, app: Celery, rtype: str, rid: str) -> str:
    """/config is gone: delete what is still provisioned, then forget the resource."""
    copy = store.value(keys.worker_config(rtype, rid))
    if isinstance(copy, dict) and not copy.get("deleted"):
        try:
            plan = planner.plan_deletion(store, rtype, rid, copy)
        except planner.PlanError as exc:
            publish.fail(store, exc.rtype, exc.rid, exc.version, exc.action, str(exc))
            return FAILED
        return DISPATCHED if dispatch(store, app, plan) else IN_FLIGHT
    return FORGOTTEN if forget(store, rtype, rid) else ABSENT


def forget(store: Store, rtype: str, rid: str) -> bool:
    """Remove every record esiprov keeps for a deleted resource (and its deleted /state); False if none."""
    marker = f":{rtype}:{rid}:"
    jobs = [entry.key for entry in store.range(keys.JOBS, keys_only=True)[0] if marker in entry.key]
    job_ids = [key[len(keys.JOBS):] for key in jobs]
    state = store.value(keys.state(rtype, rid))
    records = keys.resource_records(rtype, rid) + jobs
    records += [key for job_id in job_ids for key in (keys.failure(job_id), keys.heat_op(job_id))]
    if isinstance(state, dict) and state.get("state", {}).get("worker_state") == DELETED:
        records.append(keys.state(rtype, rid))
    present = [key for key in records if store.get(key) is not None]
    if present:
        store.commit(deletes=present)
        log.info("%s %s: forgotten (%s records removed)", rtype, rid, len(present))
    return bool(present)


def known_resources(store: Store) -> list[tuple[str, str]]:
    """(type, id) of every resource with a config, or with esiprov's copy of one (deleted while unwatched)."""
    found = {}
    for prefix in (keys.CONFIG, keys.WORKER_CONFIG):
        for entry in store.range(prefix, keys_only=True)[0]:
            resource = keys.resource_of(entry.key, prefix)
            if resource:
                found[resource] = None
    return list(found)


def resync(store: Store, app: Celery, resend_after: float | None,
           progress: Callable[[int, int], None] = lambda done, total: None) -> Counter[str]:
    """Reconcile every known resource; count the outcomes. ``progress(done, total)`` after each."""
    resources = known_resources(store)
    outcomes: Counter[str] = Counter()
    for done, (rtype, rid) in enumerate(resources, 1):
        try:
            outcomes[reconcile(store, app, rtype, rid, resend_after)] += 1
        except Exception:  # noqa: BLE001 - one resource must not stop the others
            log.exception("%s %s: reconcile failed", rtype, rid)
            outcomes["error"] += 1
        progress(done, len(resources))
    return outcomes
