"""heat_worker: one Heat stack per resource, named ``<type>_<id>``, in the resource's tenant.

Each call moves the stack one step and returns: it sends the job's operation
(create, update or delete) once per attempt — remembered under
``/esi-worker/heat_ops/<job id>`` — looks at the stack right after, and while
Heat works hands the wait to the process's stack watch (esiprov.stack_watch),
which sends the step again once the stack has moved on: no worker slot is held
while Heat works. A finished stack is
recorded in ``/esi-worker/heat_stacks/...`` and its outputs merged into job_state.
A requeued job (its attempt counter went up) sends its operation again, so a
stack left ``*_FAILED`` is retried.
"""
from __future__ import annotations

import time
from functools import partial
from typing import Any

from esiprov import keys, planner, stack_watch, steps
from esiprov.documents import HeatOp, HeatStackRecord, Job, stack_name
from esiprov.heat import HeatClient, Stack, client_for
from esiprov.planner import CREATE, DELETE
from esiprov.settings import Settings
from esiprov.store import Compare, Entry, Store
from esiprov.templates import JINJA_PREFIX, TIMEOUT_PARAM, Catalogue
from tasks.context import Context
from tasks.job import JobFailed, Loaded, NotYet, job_state_of, job_step, merge_job_state


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
        raise NotYet(f"{rtype} {rid} has no complete stack yet (needed for {param['param']})")
    for output in stack.get("output", []):
        if output.get("output_key") == output_key:
            if output.get("output_value") is None:
                raise JobFailed(f"output {output_key!r} of {rtype} {rid} is null: "
                                f"{output.get('output_error', 'no value')}")
            return output["output_value"]
    raise JobFailed(f"the stack of {rtype} {rid} has no output {output_key!r}")


def heat_arguments(job: Job, etcd: Store, catalogue: Catalogue) -> tuple[str, dict[str, Any], int | None]:
    """(template text, Heat parameters, timeout_mins): jinja_* params render, heat_timeout times;
    the template is chosen in ``catalogue``, read with the job."""
    values = {p["param"]: resolve(p, etcd) for p in job.params}
    jinja = {k: v for k, v in values.items() if k.startswith(JINJA_PREFIX)}
    parameters = {k: v for k, v in values.items() if not k.startswith(JINJA_PREFIX) and k != TIMEOUT_PARAM}
    timeout = values.get(TIMEOUT_PARAM)
    try:
        timeout_mins = int(timeout) if timeout is not None else None
    except ValueError:
        raise JobFailed(f"heat_timeout {timeout!r} is not a whole number of minutes") from None
    return planner.template_of(catalogue, job).render(jinja), parameters, timeout_mins


def record(job: Job, stack: Stack | None, etcd: Store, job_state: Entry | None) -> None:
    """The heat_stacks document and job_state.heat_outputs, in one transaction (None: stack deleted);
    ``job_state`` as read with the job."""
    resource, tenant = f"{job.resource_type}:{job.resource_id}", str(job.resource_input.get("tenant_id", ""))
    if stack is None:
        document = HeatStackRecord(id=resource, stack_id="", tenant_id=tenant, stack_status="DELETE_COMPLETE",
                                   status_reason="", output=[])
    else:
        document = HeatStackRecord(id=resource, stack_id=stack.name, tenant_id=tenant, stack_status=stack.status,
                                   status_reason=stack.status_reason, output=stack.outputs)
    merge_job_state(etcd, job, job_state, {"heat_outputs": document["output"]},
                    {keys.heat_stack(job.resource_type, job.resource_id): document})


def send_operation(job: Job, etcd: Store, catalogue: Catalogue, client: HeatClient,
                   stack: Stack | None) -> str | None:
    """Send the job's Heat operation for this attempt; None when there is nothing to send."""
    name = stack_name(job.resource_type, job.resource_id)
    if stack is not None and stack.in_progress:
        raise NotYet(f"stack {name} is {stack.status} (an earlier operation)")
    if job.action == DELETE:
        if stack is None:
            return None
        client.delete(name)
        return "delete"
    if job.action == CREATE and stack is not None and stack.complete:
        return None  # created by an earlier run of this job: nothing to redo
    template, parameters, timeout_mins = heat_arguments(job, etcd, catalogue)
    if stack is None:
        client.create(name, template, parameters, timeout_mins)
        return "create"
    client.update(name, template, parameters, timeout_mins)
    return "update"


def start(job: Job, etcd: Store, catalogue: Catalogue, client: HeatClient,
          attempt: int) -> tuple[HeatOp | None, Stack | None]:
    """Send this attempt's operation, record it under heat_ops, and look at the stack right after.

    Returns (the record, the stack); the record is None when there was nothing to send. A
    create goes out without a look first: a stack of that name answers 409, and only then is
    it looked at.
    """
    name = stack_name(job.resource_type, job.resource_id)
    stack = None
    operation: str | None
    if job.action == CREATE and client.create(name, *heat_arguments(job, etcd, catalogue)):
        operation = "create"
    else:
        stack = client.get(name)
        operation = send_operation(job, etcd, catalogue, client, stack)
    if operation is None:
        return None, stack
    sent = HeatOp(attempt=attempt, operation=operation, before=stack.revision if stack is not None else None,
                  at=time.time())
    etcd.put(keys.heat_op(job.id), sent)
    return sent, client.get(name)


def taken_up(etcd: Store, job: Job, sent: HeatOp) -> HeatOp:
    """Record that Heat has taken this attempt's operation up (the stack moved on from ``before``), so
    no later look takes the operation's own outcome for the previous one: Heat's updated_time counts
    whole seconds and a delete leaves it as it was, so an operation that ends as the previous one did
    can show the very revision the stack had before it (two failed updates started within a second).
    The record is replaced only while it is still this attempt's."""
    key, done = keys.heat_op(job.id), HeatOp(attempt=sent["attempt"], operation=sent["operation"], before=None,
                                             at=sent["at"])
    entry = etcd.get(key)
    if entry is not None and entry.value == sent:
        etcd.commit([Compare.unchanged(key, entry.mod_revision)], {key: done})
    return done


def building(message: str, sent: HeatOp | None, settings: Settings, tenant: str, stack: Stack) -> NotYet:
    """Wait for a stack Heat is working on. The first check is right after sending (a stack with
    nothing to build is done by then); then the process's stack watch lists it with the other
    building stacks and sends the step again once it has moved on from what the step saw
    (esiprov.stack_watch). Where the watch cannot take it, the step checks again itself after
    ESIPROV_HEAT_POLL_INTERVAL, then after half the time the operation has run so far, at most
    ESIPROV_HEAT_POLL_MAX: a short build is seen soon, a long one costs few requests."""
    if sent is None or "at" not in sent:
        return NotYet(message)
    elapsed = time.time() - sent["at"]
    countdown = stack_watch.pace(settings, elapsed, 2)
    handoff = partial(stack_watch.hand_over, settings, tenant, stack.name, stack.revision, sent["at"], countdown)
    return NotYet(message, countdown, waited=elapsed, handoff=handoff)


@job_step(steps.HEAT_WORKER, keys.heat_op, job_state_of)
def heat_worker(job: Job, ctx: Context, loaded: Loaded) -> None:
    """Create, update or delete the resource's stack, and wait for it without holding the worker.

    The job's attempt count, its heat_ops record and the job_state come with the job, in one round trip."""
    etcd = ctx.store
    tenant = str(job.resource_input.get("tenant_id", ""))
    client = client_for(ctx.settings, tenant)
    name = stack_name(job.resource_type, job.resource_id)
    (sent_entry, job_state), attempt = loaded.also, loaded.attempts
    sent: HeatOp | None = sent_entry.value if sent_entry else None
    if sent is not None and sent.get("attempt") == attempt:
        stack = client.get(name)
    else:
        sent, stack = start(job, etcd, loaded.catalogue, client, attempt)
    if sent is not None and stack is not None and sent.get("before") is not None:
        if stack.revision == sent["before"]:
            # an update or delete Heat has not taken up yet: the stack still shows the previous outcome
            raise building(f"stack {name} has not started its {sent['operation']} yet", sent, ctx.settings,
                           tenant, stack)
        sent = taken_up(etcd, job, sent)
    if stack is not None and stack.in_progress:
        raise building(f"stack {name} is {stack.status}", sent, ctx.settings, tenant, stack)
    if stack is not None and stack.failed:
        raise JobFailed(f"stack {name} is {stack.status}: {stack.status_reason}")
    if stack is None and job.action != DELETE:
        raise JobFailed(f"stack {name} disappeared from Heat")
    record(job, stack if job.action != DELETE else None, etcd, job_state)
