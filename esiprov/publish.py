"""Compose /state and /monitoring from a workflow's job_state, and record failures.

Every write here is one etcd transaction guarded on the /state key's revision,
so an older workflow never overwrites the state a newer one wrote.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any

from esiprov import keys
from esiprov.store import Compare, Store

log = logging.getLogger(__name__)

_ACTION_WORDS = {"create": "CREATE", "modify": "MODIFY", "logical_delete": "DELETE", "delete": "DELETE"}
READ_COMPLETE = "READ_COMPLETE"


def worker_state(action: str, outcome: str) -> str:
    """``CREATE_COMPLETED``, ``MODIFY_FAILED`` ...: the reference system's worker_state words."""
    return f"{_ACTION_WORDS.get(action, action.upper())}_{outcome}"


def compose_state(job_state: dict[str, Any], final: str) -> dict[str, Any]:
    """Every job_state value as the API server expects it: strings kept, the rest JSON-encoded."""
    state = {k: v if isinstance(v, str) else json.dumps(v) for k, v in job_state.items()}
    state["worker_state"] = final
    return state


def _write_state(store: Store, rtype: str, rid: str, version: int, document: dict[str, Any],
                 puts: dict[str, Any] | None = None, deletes: list[str] = ()) -> bool:
    """Put /state (plus ``puts``/``deletes``) unless a /state of a newer version is already there."""
    key = keys.state(rtype, rid)
    for _ in range(3):
        current = store.get(key)
        if current is not None and isinstance(current.value, dict) and current.value.get("version", 0) > version:
            log.warning("%s %s: /state already at version %s; not writing version %s",
                        rtype, rid, current.value["version"], version)
            return False
        guard = Compare.unchanged(key, current.mod_revision) if current else Compare.absent(key)
        if store.commit([guard], {key: document, **(puts or {})}, list(deletes)):
            return True
    return False


def finalize(store: Store, rtype: str, rid: str, version: int) -> bool:
    """Publish the workflow's result and remove its jobs, job_state and workflow record."""
    workflow = store.value(keys.workflow(rtype, rid)) or {}
    if workflow.get("version") != version:
        log.info("%s %s: no workflow for version %s to finalize", rtype, rid, version)
        return False
    job_state = store.value(keys.job_state(rtype, rid)) or {}
    document = {"state": compose_state(job_state, worker_state(workflow["action"], "COMPLETED")),
                "version": version, "error": ""}
    puts: dict[str, Any] = {}
    deletes = [keys.job_state(rtype, rid), keys.workflow(rtype, rid)]
    deletes += [key for job_id in workflow.get("jobs", []) for key in (keys.job(job_id), keys.heat_op(job_id))]
    target = store.value(keys.target(rtype, rid))
    if isinstance(target, dict) and target.get("version") == version:
        puts[keys.monitoring(rtype, rid)] = {"version": version, target["field"]: target["status"]}
    if workflow["action"] == "logical_delete":
        copy = store.value(keys.worker_config(rtype, rid)) or {}
        puts[keys.worker_config(rtype, rid)] = {**copy, "deleted": True}
    return _write_state(store, rtype, rid, version, document, puts, deletes)


def fail(store: Store, rtype: str, rid: str, version: int, action: str, error: str,
         job_id: str | None = None) -> None:
    """``<ACTION>_FAILED`` with a clear error; the failed job stays in /jobs/all for requeue."""
    log.error("%s %s version %s: %s failed: %s", rtype, rid, version, action, error)
    document = {"state": {"worker_state": worker_state(action, "FAILED")}, "version": version, "error": error}
    puts = {}
    if job_id:
        puts[keys.failure(job_id)] = {"error": error, "at": time.time()}
    workflow = store.value(keys.workflow(rtype, rid)) or {}
    deletes = [keys.workflow(rtype, rid)] if workflow.get("version") == version else []
    _write_state(store, rtype, rid, version, document, puts, deletes)


def read_complete(store: Store, rtype: str, rid: str, version: int) -> None:
    """A type with no template: nothing to provision, the version is simply read."""
    _write_state(store, rtype, rid, version,
                 {"state": {"worker_state": READ_COMPLETE}, "version": version, "error": ""})
