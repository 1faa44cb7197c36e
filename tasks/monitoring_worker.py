"""monitoring_worker: register the resource's SNMP target and probe it once.

The monitoring template renders (with the job's params) to one key, the
/monitoring field (``port``, ``switch``), describing the target. The target is
kept under ``/esi-worker/monitoring_targets/...`` for the periodic poller; the
probe's answer becomes ``job_state.state_monitoring`` (``ACTIVE`` when up) and,
through finalize, the first ``/monitoring`` value (with the job's version). A
logical_delete removes the target and ``/monitoring``.
"""
from __future__ import annotations

import time
from typing import Any, cast

import yaml

from esiprov import damping, keys, planner, steps
from esiprov.documents import Job, MonitoringTarget
from esiprov.planner import DELETE
from esiprov.settings import Settings
from esiprov.snmp import UP, SnmpProbe
from esiprov.templates import Catalogue
from esiprov.target_kinds import KINDS, kind_of
from tasks.context import Context
from tasks.job import JobFailed, Loaded, job_state_of, job_step, merge_job_state

REGISTERED = "ACTIVE"


def target_of(job: Job, catalogue: Catalogue) -> tuple[str, dict[str, Any]]:
    """(field, target) from the rendered monitoring template, chosen in ``catalogue`` (read with the job)."""
    params = {p["param"]: p["value"] for p in job.params}
    text = planner.template_of(catalogue, job).render(params)
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise JobFailed(f"monitoring template of {job.resource_type} does not render to YAML: {exc}") from None
    if not isinstance(spec, dict) or len(spec) != 1 or not isinstance(next(iter(spec.values())), dict):
        raise JobFailed(f"monitoring template of {job.resource_type} must render to one field with a target")
    field, target = next(iter(spec.items()))
    return str(field), target


def probe(target: dict[str, Any], settings: Settings) -> str:
    """UP, DOWN or FAIL, as the target's kind (esiprov.target_kinds) asks its device."""
    kind = kind_of(target)
    if kind is None:
        raise JobFailed(f"unknown monitoring target type {target.get('type')!r} (known: {', '.join(KINDS)})")
    return kind.register(SnmpProbe(settings), target)


@job_step(steps.MONITORING_WORKER, job_state_of)
def monitoring_worker(job: Job, ctx: Context, loaded: Loaded) -> None:
    """Register the target and record the first probe in job_state (or remove both on delete); the
    job_state comes with the job, in one round trip."""
    etcd = ctx.store
    if job.action == DELETE:
        etcd.commit(deletes=[keys.target(job.resource_type, job.resource_id),
                             keys.monitoring(job.resource_type, job.resource_id)])
        return
    field, target = target_of(job, loaded.catalogue)
    try:
        damping.hold_of(target)
    except damping.BadHoldOptions as exc:
        raise JobFailed(f"monitoring template of {job.resource_type}: {exc}") from None
    status = probe(target, ctx.settings)
    # the template's target, whatever fields its kind has, plus what the poller needs
    record = cast(MonitoringTarget, {**target, "field": field, "status": status, "version": job.version,
                                     "registered_at": time.time(), "resource_type": job.resource_type,
                                     "resource_id": job.resource_id})
    merge_job_state(etcd, job, loaded.also[0], {"state_monitoring": {field: REGISTERED if status == UP else status}},
                    {keys.target(job.resource_type, job.resource_id): record})
