"""Bring one resource (or all) towards its config: plan, then dispatch, publish or fail.

This is the level-triggered core shared by the watcher, ``esiprov resync`` and
finalize (which re-drives a version that arrived while a workflow ran). Running
it twice for the same state does nothing the second time.
"""
from __future__ import annotations

import logging
from typing import Iterator

from celery import Celery

from esiprov import keys, planner, publish
from esiprov.dispatch import dispatch
from esiprov.store import Store

log = logging.getLogger(__name__)

#: outcomes, as reported by resync
ABSENT, CURRENT, FAILED, READ, DISPATCHED, IN_FLIGHT = (
    "absent", "current", "failed", "read", "dispatched", "in flight")


def reconcile(store: Store, app: Celery, rtype: str, rid: str) -> str:
    """Do what the resource needs now; return the outcome. Bad input ends in /state, never raises."""
    try:
        plan = planner.plan(store, rtype, rid)
    except planner.PlanError as exc:
        publish.fail(store, exc.rtype, exc.rid, exc.version, exc.action, str(exc))
        return FAILED
    if plan is None:
        return ABSENT
    if plan.action is None:
        return CURRENT
    if not plan.jobs:
        publish.read_complete(store, rtype, rid, plan.resource.version)
        return READ
    return DISPATCHED if dispatch(store, app, plan) else IN_FLIGHT


def config_resources(store: Store) -> Iterator[tuple[str, str]]:
    """(type, id) of every resource config in etcd."""
    entries, _ = store.range(keys.CONFIG, keys_only=True)
    for entry in entries:
        found = keys.resource_of(entry.key)
        if found:
            yield found
