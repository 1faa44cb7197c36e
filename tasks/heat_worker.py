"""heat_worker: one Heat stack per resource, named ``<type>_<id>``, in the resource's tenant.

Each call looks at the stack and moves it one step (create, or wait while it
builds) and returns; a building stack is re-checked after a short countdown, so
no worker slot is held while Heat works. A complete stack is recorded in
``/esi-worker/heat_stacks/...`` and its outputs merged into job_state.
"""
from __future__ import annotations

from typing import Any

from esiprov import keys, planner
from esiprov.heat import HeatClient, Stack
from esiprov.model import Job
from esiprov.settings import current
from esiprov.store import Store
from tasks.job import JobFailed, NotYet, job_step

TIMEOUT_PARAM = "heat_timeout"
JINJA_PREFIX = "jinja_"


def stack_name(job: Job) -> str:
    return f"{job.resource_type}_{job.resource_id}"


def resolve(param: dict[str, Any], etcd: Store) -> Any:
    """A param's value; ``output_key`` params read the referenced resource's stack outputs now."""
    if param["type"] == "list":
        return [resolve(item, etcd) for item in param["value"]]
    if param["type"] != "output_key":
        return param["value"]
    ref = param["value"]
    rtype, rid, output_key = ref["resource_type"], ref["resource_id"], ref["output_key"]
    stack = etcd.value(keys.heat_stack(rtype, rid))
    if not isinstance(stack, dict) or not str(stack.get("stack_status", "")).endswith("_COMPLETE"):
        raise NotYet(f"{rtype} {rid} has no complete stack yet (needed for {param['param']})",
                     current().heat_poll_interval)
    for output in stack.get("output", []):
        if output.get("output_key") == output_key:
            if output.get("output_value") is None:
                raise JobFailed(f"output {output_key!r} of {rtype} {rid} is null: "
                                f"{output.get('output_error', 'no value')}")
            return output["output_value"]
    raise JobFailed(f"the stack of {rtype} {rid} has no output {output_key!r}")


def heat_arguments(job: Job, etcd: Store) -> tuple[str, dict[str, Any], int | None]:
    """(template text, Heat parameters, timeout_mins): jinja_* params render, heat_timeout times."""
    values = {p["param"]: resolve(p, etcd) for p in job.params}
    jinja = {k: v for k, v in values.items() if k.startswith(JINJA_PREFIX)}
    parameters = {k: v for k, v in values.items() if not k.startswith(JINJA_PREFIX) and k != TIMEOUT_PARAM}
    timeout = values.get(TIMEOUT_PARAM)
    try:
        timeout_mins = int(timeout) if timeout is not None else None
    except ValueError:
        raise JobFailed(f"heat_timeout {timeout!r} is not a whole number of minutes") from None
    return planner.template_of(etcd, job).render(jinja), parameters, timeout_mins


def record(job: Job, stack: Stack, etcd: Store) -> None:
    """The heat_stacks document and job_state.heat_outputs, in one transaction."""
    document = {"id": f"{job.resource_type}:{job.resource_id}", "stack_id": stack.name,
                "tenant_id": job.resource_input.get("tenant_id", ""), "stack_status": stack.status,
                "status_reason": stack.status_reason, "output": stack.outputs}
    etcd.update(keys.job_state(job.resource_type, job.resource_id),
                lambda state: {**(state or {}), "heat_outputs": stack.outputs},
                extra={keys.heat_stack(job.resource_type, job.resource_id): document})


@job_step("heat_worker")
def heat_worker(job: Job, etcd: Store) -> None:
    """Create the resource's stack (idempotently) and wait for it without holding the worker."""
    settings = current()
    client = HeatClient(settings, str(job.resource_input.get("tenant_id", "")))
    name = stack_name(job)
    stack = client.get(name)
    if stack is None:
        template, parameters, timeout_mins = heat_arguments(job, etcd)
        client.create(name, template, parameters, timeout_mins)
        raise NotYet(f"stack {name} was just created", settings.heat_poll_interval)
    if stack.in_progress:
        raise NotYet(f"stack {name} is {stack.status}", settings.heat_poll_interval)
    if stack.failed:
        raise JobFailed(f"stack {name} is {stack.status}: {stack.status_reason}")
    record(job, stack, etcd)
