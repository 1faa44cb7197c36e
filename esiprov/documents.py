"""The etcd contract: every document esiprov reads or writes, typed in one place.

``esiprov.keys`` says where each document lives; this module says what it holds,
to the field and the value type, as the seed (tests/data/seed.txt) records them
for one port create. Read in order, it is the life of a resource version:

======================================  ===========================  ================================
key (esiprov.keys)                      document                     written by -> read by
======================================  ===========================  ================================
``/config/v2.0/<plural>/<id>``          ``ResourceVersion``          the API server -> planner
``/jobs/all/<job id>``                  ``JobEntry`` (``Job``)        dispatch, requeue -> steps, CLI
``/esi-worker/workflows/...``           ``WorkflowRecord``           dispatch -> reconcile, recovery
``/esi-worker/config/...``              ``AppliedConfig``            dispatch -> a delete of a gone config
``/esi-worker/holds/...``               ``HoldRecord``               a worker (on its lease) -> recovery
``/esi-worker/unsent/...``              ``UnsentMarker``             dispatch -> recovery
``/esi-worker/heat_ops/<job id>``       ``HeatOp``                   heat_worker -> heat_worker
``/esi-worker/heat_stacks/...``         ``HeatStackRecord``          heat_worker -> output_key params
``/esi-worker/job_state/...``           ``JobState``                 the steps -> finalize
``/esi-worker/monitoring_targets/...``  ``MonitoringTarget``         monitoring_worker -> poller
``/esi-worker/failures/<job id>``       ``FailureRecord``            a failed step -> CLI, requeue
``/state/v2.0/<plural>/<id>``           ``StateDocument``            finalize, fail -> the API server
``/monitoring/v2.0/<plural>/<id>``      ``monitoring_document``      finalize, poller -> the API server
======================================  ===========================  ================================

Job ids keep the reference grammar ``<action>:<handler>:<type>:<id>:<version>:<5 chars>``
(``JobId``); a workflow is named ``<type>:<id>:<version>`` (its job_name), and its
finalize task ``finalize:<type>:<id>:<version>``. Documents whose fields the
reference fixed are TypedDicts (the JSON is the document); the one positional
value, ``/jobs/all``'s ``[handler, job, attempts]``, is read and written only
through ``JobEntry``.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

from esiprov import keys
from esiprov.errors import Permanent

# --- /config: the API server's envelope -----------------------------------------------------------


class BadConfig(Permanent, ValueError):
    """A /config document esiprov cannot work from; the message says what is wrong."""


@dataclass(frozen=True)
class ResourceVersion:
    """One version of one resource, as the API server wrote it to /config."""

    rtype: str
    rid: str
    version: int
    body: dict[str, Any]
    marked_for_deletion: bool = False

    @property
    def name(self) -> str:
        """``<type>:<id>``, the form the reference system logs and stores."""
        return f"{self.rtype}:{self.rid}"

    @property
    def tenant_id(self) -> str:
        return str(self.body.get("tenant_id", ""))


def envelope_version(raw: Any) -> int:
    """The ``version`` of an envelope (/config, /state), 0 when it has none (so a broken document still orders)."""
    version = raw.get("version") if isinstance(raw, dict) else None
    return version if isinstance(version, int) and not isinstance(version, bool) else 0


def parse_envelope(rtype: str, rid: str, raw: Any) -> ResourceVersion:
    """Decode ``{"body", "version", "marked_for_deletion"}``; body may be a JSON string or an object."""
    where = keys.config(rtype, rid)
    if not isinstance(raw, dict):
        raise BadConfig(f"{where}: the value is not a JSON object")
    version = envelope_version(raw)
    if version < 1:
        raise BadConfig(f"{where}: 'version' must be a positive integer, got {raw.get('version')!r}")
    body = raw.get("body")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError as exc:
            raise BadConfig(f"{where}: body is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise BadConfig(f"{where}: body must be a JSON object")
    return ResourceVersion(rtype, rid, version, body, bool(raw.get("marked_for_deletion", False)))


# --- job ids and workflow names -------------------------------------------------------------------

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
#: the action word of a workflow's finalize task id
FINALIZE = "finalize"


@dataclass(frozen=True)
class JobId:
    """``<action>:<handler>:<type>:<id>:<version>:<suffix>``: one job of one resource version.

    The 5-char suffix is a hash of the rest, so planning the same version twice gives the same ids.
    """

    action: str
    handler: str
    rtype: str
    rid: str
    version: int
    suffix: str

    @classmethod
    def make(cls, action: str, handler: str, rtype: str, rid: str, version: int) -> JobId:
        stem = f"{action}:{handler}:{rtype}:{rid}:{version}"
        number = int.from_bytes(hashlib.sha1(stem.encode()).digest()[:8], "big")
        return cls(action, handler, rtype, rid, version,
                   "".join(_ALPHABET[(number >> (6 * i)) % 36] for i in range(5)))

    @classmethod
    def parse(cls, text: str) -> JobId:
        """The parts of a job id; ValueError when ``text`` is not one."""
        parts = text.split(":")
        if len(parts) != 6 or not all(parts) or not parts[4].isdigit():
            raise ValueError(f"{text!r} is not a job id <action>:<handler>:<type>:<id>:<version>:<suffix>")
        action, handler, rtype, rid, version, suffix = parts
        return cls(action, handler, rtype, rid, int(version), suffix)

    @classmethod
    def of(cls, text: str) -> JobId | None:
        """The parts of a job id, None when ``text`` is not one (another task's id, a stray key)."""
        try:
            return cls.parse(text)
        except ValueError:
            return None

    @property
    def resource(self) -> tuple[str, str]:
        return self.rtype, self.rid

    @property
    def job_name(self) -> str:
        """The workflow's name, ``<type>:<id>:<version>``, shared by every job of the version."""
        return workflow_name(self.rtype, self.rid, self.version)

    def __str__(self) -> str:
        return f"{self.action}:{self.handler}:{self.rtype}:{self.rid}:{self.version}:{self.suffix}"


def workflow_name(rtype: str, rid: str, version: int) -> str:
    """``<type>:<id>:<version>``: a workflow's name, the job_name of its jobs."""
    return f"{rtype}:{rid}:{version}"


def finalize_task_id(job_name: str) -> str:
    """The task id of a workflow's finalize step (its jobs' task ids are their job ids)."""
    return f"{FINALIZE}:{job_name}"


def workflow_task(task_id: str) -> tuple[str, str, str] | None:
    """(type, id, version) of the workflow a task (a job or a finalize) belongs to; None for other tasks."""
    parts = task_id.split(":")
    if len(parts) == 4 and parts[0] == FINALIZE:
        return parts[1], parts[2], parts[3]
    job = JobId.of(task_id)
    return None if job is None else (job.rtype, job.rid, str(job.version))


def resource_of_task(task_id: str) -> tuple[str, str] | None:
    """(type, id) of the resource a workflow task works on; None for other tasks."""
    found = workflow_task(task_id)
    return None if found is None else (found[0], found[1])


def workflow_of_task(task_id: str) -> str | None:
    """The workflow name (``<type>:<id>:<version>``) of a job's or finalize's task id; None for other tasks."""
    found = workflow_task(task_id)
    return None if found is None else ":".join(found)


# --- /jobs/all ------------------------------------------------------------------------------------

#: ``Job.on_failure``: a failed job ends its workflow; an ignored one lets its chain go on
FAIL, IGNORE = "fail", "ignore"


@dataclass
class Job:
    """A job document exactly as /jobs/all/<id> holds it (element 1 of ``[handler, job, attempts]``)."""

    id: str
    action: str
    handler: str
    resource_type: str
    resource_id: str
    version: int
    job_name: str
    is_first: bool
    is_last: bool
    #: FAIL or IGNORE
    on_failure: str
    #: ``{"param", "type", "value", "resources"}`` each, as the mapping grammar resolved them
    params: list[dict[str, Any]]
    #: the config body the job was planned from
    resource_input: dict[str, Any]
    #: job ids it waits for: its predecessor in the chain, or in-flight jobs of referenced resources
    dependency: list[str] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Job:
        return cls(**{name: doc[name] for name in cls.__dataclass_fields__})

    def depends_on_other_resource(self, job_id: str) -> bool:
        """Whether ``job_id`` (one of ``dependency``) is a job of another resource, not this chain's."""
        other = JobId.of(job_id)
        return other is None or other.resource != (self.resource_type, self.resource_id)


@dataclass
class JobEntry:
    """``/jobs/all/<job id>``: the reference's positional ``[handler, job, attempts]``.

    ``attempts`` counts requeues (0 as dispatched): the worker sends a Heat operation again
    when it went up.
    """

    handler: str
    job: Job
    attempts: int = 0

    @classmethod
    def from_etcd(cls, value: Any) -> JobEntry:
        handler, document, attempts = value
        return cls(handler, Job.from_document(document), attempts)

    def to_etcd(self) -> list[Any]:
        return [self.handler, self.job.document(), self.attempts]


# --- esiprov's own records under /esi-worker/ -----------------------------------------------------

class WorkflowRecord(TypedDict):
    """The resource's one-workflow-at-a-time lock: which version runs, its jobs, when it was (re)sent."""

    version: int
    action: str
    jobs: list[str]
    sent_at: float


def workflow_record(version: int, action: str, job_ids: list[str]) -> WorkflowRecord:
    return WorkflowRecord(version=version, action=action, jobs=job_ids, sent_at=time.time())


class AppliedConfig(TypedDict):
    """The applied config: the last config version esiprov applied (the body as an object), as the reference keeps it:
    a config deleted outright can still be deleted from Heat."""

    body: dict[str, Any]
    version: int
    deleted: bool


class HoldRecord(TypedDict):
    """Which worker holds a workflow's message (on that worker's lease), which task, since when."""

    worker: str
    task: str
    at: float


class UnsentMarker(TypedDict):
    """A claimed workflow the broker did not take: when, and the (redacted) error."""

    at: float
    error: str


class HeatOp(TypedDict):
    """The Heat operation a job sent for one attempt, so it is sent once per attempt."""

    attempt: int
    #: create, update or delete
    operation: str
    #: the stack's revision (heat.Stack.revision) before the operation; None when there was no stack,
    #: and once the stack has moved on from it (tasks.heat_worker.taken_up)
    before: list[str] | None
    at: float


class HeatOutput(TypedDict):
    """One stack output, verbatim from Heat (``output_error`` when Heat could not compute it)."""

    output_key: str
    output_value: Any
    description: NotRequired[str]
    output_error: NotRequired[str]


def stack_name(rtype: str, rid: str) -> str:
    """The name of a resource's one Heat stack, ``<type>_<id>`` (in the resource's tenant)."""
    return f"{rtype}_{rid}"


class HeatStackRecord(TypedDict):
    """The resource's stack as last seen finished; output_key params read its outputs."""

    #: ``<type>:<id>``
    id: str
    #: the stack's name, ``<type>_<id>`` ("" once deleted)
    stack_id: str
    tenant_id: str
    stack_status: str
    status_reason: str
    output: list[HeatOutput]


class JobState(TypedDict, total=False):
    """What the steps of one workflow found; finalize composes /state.state from it (every value
    JSON-encoded unless a string)."""

    heat_outputs: list[HeatOutput]
    #: {the /monitoring field: "ACTIVE" or the first probe's status}
    state_monitoring: dict[str, str]


class MonitoringTarget(TypedDict, total=False):
    """A registered monitoring target: the rendered template's target (``type`` is a target kind of
    esiprov.target_kinds, with that kind's address and interface fields), plus what esiprov adds."""

    type: str
    community_name: str
    #: the /monitoring field it feeds (``switch``, ``port``)
    field: str
    status: str
    #: the resource version it was registered for, and when (epoch seconds)
    version: int
    registered_at: float
    resource_type: str
    resource_id: str
    #: esiprov.damping: the template's {positive_status, time_seconds}; set once a positive status
    #: ended the hold; set while a status waits for the hold to let it into /monitoring
    hold_options: dict[str, Any]
    hold_ended: bool
    withheld: bool


class FailureRecord(TypedDict):
    """Why a job failed for good, when, and whether its chain went on regardless (``on_failure: ignore``)."""

    error: str
    at: float
    ignored: NotRequired[bool]


def failure_record(error: str, ignored: bool = False) -> FailureRecord:
    record = FailureRecord(error=error, at=time.time())
    if ignored:
        record["ignored"] = True
    return record


# --- what esiprov publishes for the API server ----------------------------------------------------

#: worker_state of a version that has nothing to provision (a type with no template)
READ_COMPLETE = "READ_COMPLETE"


class StateDocument(TypedDict):
    """/state: the composed outcome of a resource version."""

    #: job_state's values (strings kept, the rest JSON-encoded) and ``worker_state``
    state: dict[str, str]
    version: int
    #: "" unless the version failed; secrets redacted
    error: str


def worker_state_of(value: Any) -> str:
    """worker_state of a /state value; "" when it has none."""
    state = value.get("state") if isinstance(value, dict) else None
    return str(state.get("worker_state") or "") if isinstance(state, dict) else ""


def monitoring_document(version: int, field_name: str, status: str) -> dict[str, Any]:
    """/monitoring: ``{"version": N, "<field>": "UP" | "DOWN" | "FAIL"}`` (the field from the template)."""
    return {"version": version, field_name: status}


def monitoring_statuses(value: Any) -> dict[str, str]:
    """{field: status} of a /monitoring value; empty when it is not one."""
    if not isinstance(value, dict):
        return {}
    return {name: status for name, status in value.items() if name != "version" and isinstance(status, str)}
