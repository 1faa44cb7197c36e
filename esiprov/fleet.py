"""The fleet's numbers as etcd holds them now: resources per state, failed jobs, workflows in flight,
monitoring statuses, holds, the last poll cycle.

One reading for every view of the fleet (``esiprov status`` and the watchers' /metrics), each
family read page by page, so it works at any size.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

from esiprov import keys
from esiprov.documents import JobId, monitoring_statuses, worker_state_of
from esiprov.store import Store

#: keys per etcd request while the fleet is read: a /state value with a long Heat error may take a
#: few kB, and gRPC refuses answers over 4 MB
PAGE = 1000
#: the handler label of a failure record whose key is not a job id, and the worker of a hold without one
UNKNOWN = "unknown"


@dataclass
class Fleet:
    """The fleet's numbers, as read from etcd at one moment."""

    #: (resource_type, worker_state) -> resources
    resources: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: handler -> jobs with a failure record
    failed_jobs: Counter[str] = field(default_factory=Counter)
    workflows: int = 0
    #: sent_at (epoch seconds) of the workflow sent longest ago; None when none is in flight
    oldest_sent_at: float | None = None
    #: (resource_type, status) -> /monitoring fields with that status
    monitoring: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: worker -> workflows whose message it holds
    held: Counter[str] = field(default_factory=Counter)
    unsent: int = 0
    #: the last poll cycle: how long it took, and when it finished (epoch seconds); None before the first
    poll_seconds: float | None = None
    poll_finished_at: float | None = None
    #: seconds the read took
    read_seconds: float = 0.0


# --- reading the fleet from etcd -------------------------------------------------------------------

def handler_of(key: str) -> str:
    """The handler of a failure record's job id; UNKNOWN when its key is not a job id."""
    job = JobId.of(keys.job_id_of(key, keys.FAILURES) or "")
    return job.handler if job else UNKNOWN


def _per_type(store: Store, prefix: str) -> Iterator[tuple[str, Any]]:
    """(resource type, value) of every resource record under ``prefix`` (/state/..., /monitoring/...)."""
    for entry in store.scan_resources(prefix, page=PAGE):
        found = keys.resource_of(entry.key, prefix)
        if found is not None:
            yield found[0], entry.value


def read_resources(store: Store, fleet: Fleet) -> None:
    fleet.resources.update((rtype, worker_state_of(value)) for rtype, value in _per_type(store, keys.STATE))


def read_monitoring(store: Store, fleet: Fleet) -> None:
    fleet.monitoring.update((rtype, status) for rtype, value in _per_type(store, keys.MONITORING)
                            for status in monitoring_statuses(value).values())


def read_failed_jobs(store: Store, fleet: Fleet) -> None:
    """The handler is in the failure record's key (its job id): keys alone are read."""
    fleet.failed_jobs.update(handler_of(entry.key)
                             for entry in store.scan(keys.FAILURES, keys_only=True, page=PAGE))


def read_workflows(store: Store, fleet: Fleet) -> None:
    for entry in store.scan(keys.WORKFLOWS, page=PAGE):
        fleet.workflows += 1
        sent_at = entry.value.get("sent_at") if isinstance(entry.value, dict) else None
        if isinstance(sent_at, (int, float)):
            fleet.oldest_sent_at = sent_at if fleet.oldest_sent_at is None else min(sent_at, fleet.oldest_sent_at)


def read_holds(store: Store, fleet: Fleet) -> None:
    fleet.held.update(str(entry.value.get("worker", UNKNOWN)) if isinstance(entry.value, dict) else UNKNOWN
                      for entry in store.scan(keys.HOLDS, page=PAGE))


def read_poll_cycle(store: Store, fleet: Fleet) -> None:
    """The poller's record of its last cycle: when it started and, in its summary, how long it took."""
    last = store.value(keys.POLL_CYCLE)
    summary = last.get("summary") if isinstance(last, dict) else None
    if isinstance(summary, dict) and isinstance(last.get("started"), (int, float)):
        fleet.poll_seconds = float(summary.get("seconds", 0.0))
        fleet.poll_finished_at = last["started"] + fleet.poll_seconds


def read_fleet(store: Store) -> Fleet:
    """Every fleet number, page by page; raises StoreError when etcd does not answer."""
    started = time.monotonic()
    fleet = Fleet()
    for read in (read_resources, read_monitoring, read_failed_jobs, read_workflows, read_holds, read_poll_cycle):
        read(store, fleet)
    fleet.unsent = store.count(keys.UNSENT)
    fleet.read_seconds = time.monotonic() - started
    return fleet


