"""Bring one resource (or all) towards its config: plan, then dispatch, publish or fail.

This is the level-triggered core shared by the watcher, ``esiprov resync`` and
finalize (which re-drives a version that arrived while a workflow ran). Running
it twice for the same state does nothing the second time.
"""
from __future__ import annotations

import heapq
import itertools
import logging
from collections import Counter
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from celery import Celery

from esiprov import keys, planner, publish
from esiprov.dispatch import dispatch, resend, stale
from esiprov.documents import JobId, envelope_version
from esiprov.store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")
#: resources a resync checks together (three range reads tell which of them are current)
RESYNC_PAGE = 500

DELETED = publish.worker_state(planner.DELETE, "COMPLETED")

#: outcomes, as reported by resync
ABSENT, CURRENT, FAILED, READ, DISPATCHED, IN_FLIGHT, RESENT, FORGOTTEN, ERROR = (
    "absent", "current", "failed", "read", "dispatched", "in flight", "resent", "forgotten", "error")


def reconcile(store: Store, app: Celery, rtype: str, rid: str, resend_after: float | None = None) -> str:
    """Do what the resource needs now; return the outcome. Bad input ends in /state, never raises.

    A workflow in flight is left alone, or, with ``resend_after``, sent again once it is that old.
    """
    reading = planner.read(store, rtype, rid)
    workflow = reading.workflow
    if workflow is not None:
        if resend_after is not None and stale(workflow.value, resend_after) and resend(store, app, workflow):
            return RESENT
        return IN_FLIGHT
    try:
        plan = planner.planned(store, reading)
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
    applied = store.value(keys.applied_config(rtype, rid))
    if isinstance(applied, dict) and not applied.get("deleted"):
        try:
            plan = planner.plan_deletion(store, rtype, rid, applied)
        except planner.PlanError as exc:
            publish.fail(store, exc.rtype, exc.rid, exc.version, exc.action, str(exc))
            return FAILED
        return DISPATCHED if dispatch(store, app, plan) else IN_FLIGHT
    return FORGOTTEN if forget(store, rtype, rid) else ABSENT


def forget(store: Store, rtype: str, rid: str) -> bool:
    """Remove every record esiprov keeps for a deleted resource (and its deleted /state); False if none."""
    job_ids = resource_jobs(store, rtype, rid)
    state = store.value(keys.state(rtype, rid))
    records = keys.resource_records(rtype, rid)
    records += [key for job_id in job_ids for key in (keys.job(job_id), keys.failure(job_id), keys.heat_op(job_id))]
    if isinstance(state, dict) and state.get("state", {}).get("worker_state") == DELETED:
        records.append(keys.state(rtype, rid))
    present = [entry.key for entry in store.get_many(records) if entry is not None]
    if present:
        store.commit(deletes=present)
        log.info("%s %s: forgotten (%s records removed)", rtype, rid, len(present))
    return bool(present)


def resource_jobs(store: Store, rtype: str, rid: str) -> list[str]:
    """The ids of the resource's jobs still in /jobs/all, of any version (keys only)."""
    return [job_id for entry in store.scan(keys.JOBS, keys_only=True)
            if (job_id := keys.job_id_of(entry.key)) and (job := JobId.of(job_id)) and job.resource == (rtype, rid)]


def known_resources(store: Store) -> Iterator[tuple[str, str]]:
    """(type, id) of every resource with a config, or with an applied config (deleted while unwatched)."""
    return resources_under(store, keys.CONFIG, keys.APPLIED_CONFIG)


def resources_under(store: Store, *prefixes: str, rtype: str | None = None) -> Iterator[tuple[str, str]]:
    """(type, id) of every resource with a key under any of ``prefixes`` (of ``rtype`` only, if given), once.

    Streamed in key order: the key scans are merged, so memory stays flat however many there are.
    """
    merged = heapq.merge(*(_resources(store, prefix, rtype) for prefix in prefixes), key=lambda found: found[0])
    for _, same in itertools.groupby(merged, key=lambda found: found[0]):
        yield next(same)[1]


def _resources(store: Store, prefix: str, rtype: str | None = None) -> Iterator[tuple[str, tuple[str, str]]]:
    """(key below ``prefix``, (type, id)) of every resource key under ``prefix`` (of ``rtype``), in key order.

    Read in short key windows (Store.scan): one paged range over 100,000 keys costs etcd quadratic time.
    """
    plural = None if rtype is None else keys.plural(rtype)
    for entry in store.scan_resources(prefix, keys_only=True, plural=plural):
        found = keys.resource_of(entry.key, prefix)
        if found:
            yield entry.key[len(prefix):], found


def current_resources(store: Store, page: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """The resources of ``page`` (in key order) already at their config's version with nothing in flight.

    Three range reads (configs, /state, workflow records: keys only) instead of three reads per
    resource; only a /state of exactly its config's version counts, so every other case is
    left to ``reconcile``.
    """
    configs, states = (page_values(store, key_of, page) for key_of in (keys.config, keys.state))
    workflows = page_values(store, keys.workflow, page, keys_only=True)
    return {resource for resource in page if resource in configs and resource not in workflows
            and _applied(configs[resource], states.get(resource))}


def page_values(store: Store, key_of: Callable[[str, str], str], page: Sequence[tuple[str, str]],
                keys_only: bool = False) -> dict[tuple[str, str], Any]:
    """{resource: value of key_of(resource)} (None with ``keys_only``) for a page in key order, from one bounded scan."""
    wanted = {key_of(*resource): resource for resource in page}
    end = key_of(*page[-1]) + "\0"
    return {wanted[entry.key]: entry.value for entry in store.scan(key_of(*page[0]), end, keys_only=keys_only)
            if entry.key in wanted}


def _applied(config: Any, state: Any) -> bool:
    """/state holds the config's version. The body is not parsed (a fifth of a list's time at 100,000):
    a version whose body does not parse is as settled as one that does once /state has it, for
    ``planner.plan`` plans neither again."""
    version = envelope_version(config)
    return version >= 1 and state is not None and envelope_version(state) == version


def resync(store: Store, app: Celery, resend_after: float | None,
           progress: Callable[[int, int], None] = lambda done, total: None) -> Counter[str]:
    """Reconcile every known resource; count the outcomes. ``progress(done, total)`` after each.

    A page at a time: the page's current resources are counted from three range reads,
    the others reconciled one by one. ``total`` is the number of configs (a resource
    known only from its applied config raises it as it is met).
    """
    total = store.count(keys.CONFIG) - store.count(keys.TEMPLATES)
    outcomes: Counter[str] = Counter()
    for page in pages(known_resources(store), RESYNC_PAGE):
        current = current_resources(store, page)
        for rtype, rid in page:
            known = (rtype, rid) in current
            outcomes[CURRENT if known else _reconcile_logged(store, app, rtype, rid, resend_after)] += 1
            done = sum(outcomes.values())
            progress(done, max(total, done))
    return outcomes


def _reconcile_logged(store: Store, app: Celery, rtype: str, rid: str, resend_after: float | None) -> str:
    try:
        return reconcile(store, app, rtype, rid, resend_after)
    except Exception:  # noqa: BLE001 - one resource must not stop the others
        log.exception("%s %s: reconcile failed", rtype, rid)
        return ERROR


def pages(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last one shorter): itertools.batched before Python 3.12."""
    iterator = iter(items)
    while page := list(itertools.islice(iterator, size)):
        yield page
