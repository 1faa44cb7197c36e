"""Compose /state and /monitoring from a workflow's job_state, and record failures.

Every write here is one etcd transaction guarded on the /state key's revision,
so an older workflow never overwrites the state a newer one wrote.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any, NamedTuple, cast

from esiprov import damping, keys
from esiprov.documents import (READ_COMPLETE, JobState, StateDocument, envelope_version, failure_record,
                               monitoring_document)
from esiprov.store import Compare, Entry, Store

log = logging.getLogger(__name__)

_ACTION_WORDS = {"create": "CREATE", "modify": "MODIFY", "logical_delete": "DELETE", "delete": "DELETE"}


def worker_state(action: str, outcome: str) -> str:
    """``CREATE_COMPLETED``, ``MODIFY_FAILED`` ...: the reference system's worker_state words."""
    return f"{_ACTION_WORDS.get(action, action.upper())}_{outcome}"


def compose_state(job_state: JobState, final: str) -> dict[str, str]:
    """Every job_state value as the API server expects it: strings kept, the rest JSON-encoded."""
    state = {k: v if isinstance(v, str) else json.dumps(v) for k, v in job_state.items()}
    state["worker_state"] = final
    return state


def _newer(rtype: str, rid: str, state: Entry | None, version: int) -> bool:
    """Whether /state (as read) is already at a version newer than ``version`` (then it is not written)."""
    if state is not None and isinstance(state.value, dict) and state.value.get("version", 0) > version:
        log.warning("%s %s: /state already at version %s; not writing version %s",
                    rtype, rid, state.value["version"], version)
        return True
    return False


def _write_state(store: Store, rtype: str, rid: str, version: int, document: StateDocument,
                 current: Entry | None, puts: dict[str, Any] | None = None, deletes: Sequence[str] = ()) -> bool:
    """Put /state (plus ``puts``/``deletes``) unless a /state of a newer version is already there.

    ``current``: /state as the caller read it (with its other reads, in one round trip); it is
    read again only when another writer got in between.
    """
    key = keys.state(rtype, rid)
    for attempt in range(3):
        if attempt:
            current = store.get(key)
        if _newer(rtype, rid, current, version):
            return False
        if store.commit([Compare.as_read(key, current)], {key: document, **(puts or {})}, list(deletes)):
            return True
    return False


class Finalized(NamedTuple):
    """What ``finalize`` did: whether it published, and whether the config was still at the published
    version when it did (then nothing newer waits; otherwise the resource is re-driven)."""

    published: bool
    current: bool = False


def finalize(store: Store, rtype: str, rid: str, version: int) -> Finalized:
    """Publish the workflow's result and remove its jobs, job_state and workflow record.

    The config is read with the rest and, when it is still at this version, the write is guarded on
    it: a config put after the read fails the guard and the write is made again without it (then
    ``current`` is False), so a newer version is never missed, at no extra round trip otherwise. The
    monitoring target is guarded too: a poll cycle that rewrote it meanwhile (its status, its hold)
    makes finalize decide /monitoring again from what the cycle wrote.
    """
    found = store.get_many([keys.workflow(rtype, rid), keys.job_state(rtype, rid), keys.target(rtype, rid),
                            keys.applied_config(rtype, rid), keys.state(rtype, rid), keys.config(rtype, rid)])
    workflow, steps_found, _, applied = (entry.value if entry else None for entry in found[:4])
    workflow, job_state = workflow or {}, cast(JobState, steps_found or {})
    if workflow.get("version") != version:
        log.info("%s %s: no workflow for version %s to finalize", rtype, rid, version)
        return Finalized(False)
    document = StateDocument(state=compose_state(job_state, worker_state(workflow["action"], "COMPLETED")),
                             version=version, error="")
    puts: dict[str, Any] = {}
    deletes = [keys.job_state(rtype, rid), keys.workflow(rtype, rid), keys.hold(rtype, rid)]
    # a failure record here is an ignored job's (a failed one stops the chain before finalize): it ends with its job
    deletes += [key for job_id in workflow.get("jobs", [])
                for key in (keys.job(job_id), keys.heat_op(job_id), keys.failure(job_id))]
    if workflow["action"] == "logical_delete":
        puts[keys.applied_config(rtype, rid)] = {**(applied or {}), "deleted": True}
    state_key, target_key, config_key = keys.state(rtype, rid), keys.target(rtype, rid), keys.config(rtype, rid)
    state, target_entry, config = found[4], found[2], found[5]
    for _ in range(3):
        if _newer(rtype, rid, state, version):
            return Finalized(False)
        current = config is not None and envelope_version(config.value) == version
        guards = [Compare.as_read(state_key, state), Compare.as_read(target_key, target_entry)]
        guards += [Compare.as_read(config_key, config)] if current else []
        writes = {state_key: document, **puts, **_monitoring_puts(rtype, rid, version, target_entry)}
        if store.commit(guards, writes, deletes):
            return Finalized(True, current=current)
        state, target_entry, config = store.get_many([state_key, target_key, config_key])
    return Finalized(False)


def _monitoring_puts(rtype: str, rid: str, version: int, target: Entry | None) -> dict[str, Any]:
    """The first /monitoring of ``version`` (as the target's hold allows) and the target as it then is."""
    record = target.value if target is not None else None
    if not isinstance(record, dict) or record.get("version") != version:
        return {}
    decided, shown = damping.decide(record, record["status"], time.time())
    puts: dict[str, Any] = {keys.target(rtype, rid): decided} if decided != record else {}
    if shown:
        puts[keys.monitoring(rtype, rid)] = monitoring_document(version, record["field"], record["status"])
    return puts


def fail(store: Store, rtype: str, rid: str, version: int, action: str, error: str,
         job_id: str | None = None) -> None:
    """``<ACTION>_FAILED`` with a clear error; the failed job stays in /jobs/all for requeue."""
    log.error("%s %s version %s: %s failed: %s", rtype, rid, version, action, error)
    document = StateDocument(state={"worker_state": worker_state(action, "FAILED")}, version=version, error=error)
    puts = {keys.failure(job_id): failure_record(error)} if job_id else {}
    workflow, state = store.get_many([keys.workflow(rtype, rid), keys.state(rtype, rid)])
    ended = workflow is not None and (workflow.value or {}).get("version") == version
    deletes = [keys.workflow(rtype, rid), keys.hold(rtype, rid)] if ended else []
    _write_state(store, rtype, rid, version, document, state, puts, deletes)


def ignored(store: Store, job_id: str, error: str) -> None:
    """A job marked ``on_failure: ignore`` failed for good: record it, and nothing else.

    Its workflow goes on (the lock stays taken, /state untouched) and finalize publishes the outcome;
    the record shows in ``esiprov jobs list --failed`` until then, and goes with the job.
    """
    log.error("job %s failed (on_failure ignore: its workflow goes on): %s", job_id, error)
    store.put(keys.failure(job_id), failure_record(error, ignored=True))


def read_complete(store: Store, rtype: str, rid: str, version: int) -> None:
    """A type with no template: nothing to provision, the version is simply read."""
    document = StateDocument(state={"worker_state": READ_COMPLETE}, version=version, error="")
    _write_state(store, rtype, rid, version, document, store.get(keys.state(rtype, rid)))
