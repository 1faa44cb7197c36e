"""Resource version -> action -> job documents. Reads through the store, writes nothing.

The planner is level-triggered: it compares the config's version with what is
applied (/state) and decides what, if anything, to do now. Job ids keep the
reference grammar (esiprov.documents.JobId) and are stable: planning the same
version twice gives the same ids.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from esiprov import keys, templates
from esiprov.documents import (FAIL, IGNORE, BadConfig, Job, JobId, ResourceVersion, envelope_version, parse_envelope,
                               workflow_name)
from esiprov.errors import Permanent
from esiprov.mappings import Evaluator, MappingError, Resolved, Subject
from esiprov.store import Entry, Store
from esiprov.templates import Catalogue, Template, TemplateError

CREATE, MODIFY, DELETE = "create", "modify", "logical_delete"


class PlanError(Permanent, ValueError):
    """The resource version cannot be planned; ``/state`` gets ``<ACTION>_FAILED`` with this message."""

    def __init__(self, message: str, rtype: str, rid: str, version: int, action: str) -> None:
        super().__init__(message)
        self.rtype, self.rid, self.version, self.action = rtype, rid, version, action


@dataclass
class Plan:
    resource: ResourceVersion
    #: None when the version is already applied: nothing to do
    action: str | None
    #: empty for a type with no template: not workable, /state READ_COMPLETE
    jobs: list[Job] = field(default_factory=list)
    #: the version /state holds (0: none)
    applied: int = 0


def next_action(resource: ResourceVersion, state: Any) -> str | None:
    """create when nothing was applied (or the create failed), modify for a newer version, None when current."""
    applied = envelope_version(state)
    if state is not None and applied >= resource.version:
        return None
    if resource.marked_for_deletion:
        return DELETE
    applied_state = state.get("state", {}) if isinstance(state, dict) else {}
    created = state is not None and applied_state.get("worker_state") != "CREATE_FAILED"
    return MODIFY if created else CREATE


def read_resource(store: Store, rtype: str, rid: str) -> ResourceVersion | None:
    raw = store.value(keys.config(rtype, rid))
    return None if raw is None else parse_envelope(rtype, rid, raw)


def fetcher(store: Store) -> Any:
    """The mapping grammar's view of other resources: their config bodies."""
    def fetch(rtype: str, rid: str) -> dict[str, Any] | None:
        try:
            found = read_resource(store, rtype, rid)
        except BadConfig as exc:
            raise MappingError(str(exc)) from None
        return None if found is None else found.body
    return fetch


@dataclass(frozen=True)
class Reading:
    """What planning one resource needs, read in one round trip at one revision (``read``): its
    config, its ``/state``, its workflow record (a workflow in flight: nothing to plan yet), and the
    schema and the templates its type was last planned with. The leader plans one resource after
    another, and reading each separately was a third of its etcd time."""

    rtype: str
    rid: str
    config: Entry | None
    applied: Entry | None
    workflow: Entry | None
    catalogue: Catalogue


def read(store: Store, rtype: str, rid: str) -> Reading:
    (config, applied, workflow), catalogue = templates.read_catalogue(
        store, rtype, keys.config(rtype, rid), keys.state(rtype, rid), keys.workflow(rtype, rid))
    return Reading(rtype, rid, config, applied, workflow, catalogue)


def plan(store: Store, rtype: str, rid: str) -> Plan | None:
    """What to do now for one resource, whether or not a workflow is in flight; None when its config is gone."""
    return planned(store, read(store, rtype, rid))


def planned(store: Store, reading: Reading) -> Plan | None:
    """What to do now for the resource ``reading`` read; None when its config is gone."""
    rtype, rid, config, applied, catalogue = (reading.rtype, reading.rid, reading.config, reading.applied,
                                              reading.catalogue)
    if config is None:
        return None
    raw, state = config.value, None if applied is None else applied.value
    try:
        resource = parse_envelope(rtype, rid, raw)
    except BadConfig as exc:
        version = envelope_version(raw)
        if state is not None and envelope_version(state) >= version:
            # already failed (or superseded): nothing to do; the config is there, only unreadable
            return Plan(ResourceVersion(rtype, rid, version, {}), None, applied=envelope_version(state))
        raise PlanError(str(exc), rtype, rid, version, CREATE if state is None else MODIFY) from None
    action = next_action(resource, state)
    if action is None:
        return Plan(resource, None, applied=envelope_version(state))
    return _planned(store, resource, action, catalogue)


def plan_deletion(store: Store, rtype: str, rid: str, applied: dict[str, Any]) -> Plan:
    """A config deleted outright: delete what its applied config provisioned."""
    resource = ResourceVersion(rtype, rid, applied["version"] + 1, applied["body"], marked_for_deletion=True)
    return _planned(store, resource, DELETE, templates.read_catalogue(store, rtype)[1])


def _planned(store: Store, resource: ResourceVersion, action: str, catalogue: Catalogue) -> Plan:
    try:
        return Plan(resource, action, build_jobs(store, resource, action, catalogue))
    except (MappingError, TemplateError) as exc:
        raise PlanError(str(exc), resource.rtype, resource.rid, resource.version, action) from None


def build_jobs(store: Store, resource: ResourceVersion, action: str, catalogue: Catalogue) -> list[Job]:
    """The jobs of ``action`` with the schema and templates of ``catalogue`` (read with the resource)."""
    schema = catalogue.schema
    fetch = fetcher(store)
    evaluate = schema.evaluator(fetch)
    subject = schema.subject(resource)
    chosen = catalogue.choose(resource, fetch)
    if action == DELETE:
        chosen.reverse()  # monitoring goes before the stack, as in the reference system
    jobs: list[Job] = []
    for index, (handler, name) in enumerate(chosen):
        template = catalogue.template(name)
        if template.handler != handler:
            raise TemplateError(f"template {name} is for {template.handler}, not {handler}")
        params = [_param(evaluate, param, mapping, subject, lenient=action == DELETE)
                  for param, mapping in template.parameter_mappings.items()]
        jobs.append(Job(
            id=str(JobId.make(action, handler, resource.rtype, resource.rid, resource.version)),
            action=action, handler=handler, resource_type=resource.rtype, resource_id=resource.rid,
            version=resource.version, job_name=workflow_name(resource.rtype, resource.rid, resource.version),
            is_first=index == 0, is_last=index == len(chosen) - 1,
            on_failure=IGNORE if action == DELETE and index < len(chosen) - 1 else FAIL,
            params=params, resource_input=resource.body,
            dependency=[jobs[-1].id] if jobs else []))
    if jobs:
        jobs[0].dependency = in_flight_dependencies(store, jobs)
    return jobs


def _param(evaluate: Evaluator, name: str, mapping: Any, subject: Subject, lenient: bool) -> dict[str, Any]:
    """One job param; a delete plans on even when a referenced resource is already gone."""
    try:
        return evaluate.param(name, mapping, subject)
    except MappingError:
        if not lenient:
            raise
        return Resolved("value", None).param(name)


def in_flight_dependencies(store: Store, jobs: list[Job]) -> list[str]:
    """Every job of the workflow in flight of each other resource any param of the version references.

    The reference system's rule: a new workflow's first job depends on the in-flight jobs of every
    resource in any param's ``resources`` (``list`` items included), whatever their handler or
    action, so a create or a modify waits for another resource's create or modify alike. All of a
    workflow's jobs, not only those of the first job's handler: whichever of them fails, the
    dependent sees its failure record and fails at once rather than waiting for the jobs after it,
    which never run. In flight means the workflow record (the reference read /jobs/all, where
    esiprov also keeps failed jobs for requeue). The resource's own jobs are not dependencies: its
    workflows run one at a time already.
    """
    own = (jobs[0].resource_type, jobs[0].resource_id)
    referenced = dict.fromkeys(ref for job in jobs for param in job.params for ref in referenced_resources(param))
    found: list[str] = []
    for rtype, rid in referenced:
        if (rtype, rid) != own:
            workflow = store.value(keys.workflow(rtype, rid))
            found += workflow.get("jobs", []) if isinstance(workflow, dict) else []
    return list(dict.fromkeys(found))


def referenced_resources(param: dict[str, Any]) -> list[tuple[str, str]]:
    """(type, id) of every resource a job param consulted: its ``resources`` and, for a ``list``
    param, its items' (the reference records them on the list, but a list written by hand may not)."""
    found = [(ref["resource_type"], ref["resource_id"]) for ref in param.get("resources") or []]
    if param.get("type") == "list" and isinstance(param.get("value"), list):
        found += [ref for item in param["value"] if isinstance(item, dict) for ref in referenced_resources(item)]
    return found


def template_of(catalogue: Catalogue, job: Job) -> Template:
    """The template a job runs, chosen again from the schema as the planner chose it, in ``catalogue``
    (the schema and templates of the job's type as etcd held them when the step read its job)."""
    resource = ResourceVersion(job.resource_type, job.resource_id, job.version, job.resource_input)
    for handler, name in catalogue.choose(resource, fetcher(catalogue.store)):
        if handler == job.handler:
            return catalogue.template(name)
    raise TemplateError(f"no {job.handler} template for {job.resource_type} any more")
