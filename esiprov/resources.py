"""Every resource as ``esiprov state list`` shows it: config version, /state, /monitoring, side by side.

A fleet may hold 100,000 resources, so nothing here reads a whole prefix: the
resources are the merged key scans of /config and /state (esiprov.reconcile's
``resources_under``, which reads in pages at one revision), taken a page at a
time, and each page's configs, states and monitoring values come from one
bounded scan per prefix (``page_values``). Rows are yielded as they are built.
``state show`` puts everything esiprov knows of one resource side by side
(``resource_view``), including the stack as Heat shows it now.

A resource with a /state and no config (deleted by the API server, /state not
yet) is listed too, and so is one whose /state failed at planning: it has a
failed /state but no job and no failure record, so only /state tells.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator

from esiprov import keys
from esiprov.documents import BadConfig, JobId, parse_envelope, stack_name
from esiprov.heat import HeatClient, HeatError
from esiprov.reconcile import page_values, pages, resource_jobs, resources_under
from esiprov.settings import current
from esiprov.store import Store

#: resources read together (one bounded scan per prefix per page)
PAGE = 500
FAILED_SUFFIX = "_FAILED"


@dataclass(frozen=True)
class ResourceRow:
    """One resource: what the API server asked for and what esiprov published."""

    resource_type: str
    resource_id: str
    #: the config's version; None when /config is gone (or not a JSON object with a version)
    version: int | None
    state_version: int | None
    #: /state's worker_state ("" when there is no /state)
    worker_state: str
    #: /monitoring's statuses by field ({"switch": "UP"}); empty when none
    monitoring: dict[str, str]
    error: str
    marked_for_deletion: bool

    @property
    def failed(self) -> bool:
        return self.worker_state.endswith(FAILED_SUFFIX)

    def document(self) -> dict[str, Any]:
        """The ``state list --json`` record."""
        return asdict(self)

    def cells(self) -> dict[str, Any]:
        """The table's cells."""
        return {"type": self.resource_type, "id": self.resource_id, "config": self.version,
                "state": self.state_version, "worker_state": self.worker_state,
                "monitoring": ", ".join(f"{k}: {v}" for k, v in self.monitoring.items()), "error": self.error}


COLUMNS = ["type", "id", "config", "state", "worker_state", "monitoring", "error"]


def _version(document: Any) -> int | None:
    version = document.get("version") if isinstance(document, dict) else None
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def resource_row(resource: tuple[str, str], config: Any, state: Any, monitoring: Any) -> ResourceRow:
    """One row from the three documents as etcd holds them; any of them may be absent or malformed."""
    state = state if isinstance(state, dict) else {}
    inner = state.get("state") if isinstance(state.get("state"), dict) else {}
    monitoring = monitoring if isinstance(monitoring, dict) else {}
    return ResourceRow(
        resource_type=resource[0], resource_id=resource[1], version=_version(config),
        state_version=_version(state), worker_state=str(inner.get("worker_state", "")),
        monitoring={str(k): str(v) for k, v in monitoring.items() if k != "version"},
        error=str(state.get("error") or ""),
        marked_for_deletion=bool(isinstance(config, dict) and config.get("marked_for_deletion")))


def resource_rows(store: Store, rtype: str | None = None, failed_only: bool = False,
                  page: int = PAGE) -> Iterator[ResourceRow]:
    """Every resource with a config or a /state (of ``rtype``; only ``*_FAILED`` ones), in key order."""
    for resources in pages(resources_under(store, keys.CONFIG, keys.STATE, rtype=rtype), page):
        configs, states, monitoring = (page_values(store, key_of, resources)
                                       for key_of in (keys.config, keys.state, keys.monitoring))
        for resource in resources:
            row = resource_row(resource, configs.get(resource), states.get(resource), monitoring.get(resource))
            if row.failed or not failed_only:
                yield row


def singular_type(name: str, exists: Callable[[str], bool]) -> str:
    """The singular resource type ``name`` means: ``ese_devices`` (as in the etcd keys) is ``ese_device``.

    Keys always add one "s" to the type, so a name ending in "s" is taken as a plural only
    when no resource of that exact type ``exists`` and one of the shorter type does: a
    singular type that itself ends in "s" stays as it is.
    """
    if not name.endswith("s") or exists(name):
        return name
    shorter = keys.singular(name)
    return shorter if exists(shorter) else name


def type_exists(store: Store, rtype: str) -> bool:
    """Whether any resource of ``rtype`` has a config or a /state (counted by etcd, nothing transferred)."""
    return any(store.count(prefix) for prefix in (keys.config(rtype, ""), keys.state(rtype, "")))


def resolve_type(store: Store, name: str) -> str:
    """``singular_type`` against what etcd holds."""
    return singular_type(name, lambda rtype: type_exists(store, rtype))


# --- one resource: state show ----------------------------------------------------------
def resource_view(store: Store, rtype: str, rid: str, ask_heat: bool = True) -> dict[str, Any] | None:
    """Every record of one resource (None when it has neither a config nor a /state), and the live stack."""
    view: dict[str, Any] = {name: store.value(key(rtype, rid)) for name, key in (
        ("config", keys.config), ("state", keys.state), ("monitoring", keys.monitoring),
        ("heat_stack", keys.heat_stack), ("workflow", keys.workflow))}
    if view["config"] is None and view["state"] is None:
        return None
    view["jobs"] = resource_jobs(store, rtype, rid)
    view["failures"] = {job_id: failure for job_id in view["jobs"]
                        if (failure := store.value(keys.failure(job_id))) is not None}
    view["heat"] = _live_stack(view, rtype, rid) if ask_heat else None
    return view


def view_keys(rtype: str, rid: str) -> list[str]:
    """The prefixes whose changes change ``resource_view`` (``state show --watch`` follows them)."""
    own = [key(rtype, rid) for key in (keys.config, keys.state, keys.monitoring, keys.heat_stack, keys.workflow)]
    return own + [keys.JOBS, keys.FAILURES]


def _object(value: Any) -> dict[str, Any]:
    """A document as a dict; a value that is not a JSON object reads as empty (its row says so)."""
    return value if isinstance(value, dict) else {}


def _tenant(view: dict[str, Any], rtype: str, rid: str) -> str:
    tenant = _object(view["heat_stack"]).get("tenant_id")
    if not tenant and view["config"] is not None:
        try:
            tenant = parse_envelope(rtype, rid, view["config"]).tenant_id
        except BadConfig:
            pass
    return str(tenant or "")


def _live_stack(view: dict[str, Any], rtype: str, rid: str) -> dict[str, Any] | None:
    """The stack as Heat shows it now; None when Heat is not configured or the resource has no tenant."""
    settings = current()
    tenant = _tenant(view, rtype, rid)
    if not (settings.heat_url or settings.keystone) or not tenant:
        return None
    name = _object(view["heat_stack"]).get("stack_id") or stack_name(rtype, rid)
    try:
        stack = HeatClient(settings, tenant).get(name)
    except HeatError as exc:  # every etcd row still shows; the stack says why Heat could not
        return {"stack_name": name, "stack_status": "unreachable", "status_reason": f"unreachable: {exc}"}
    if stack is None:
        return {"stack_name": name, "stack_status": "ABSENT", "status_reason": "Heat has no such stack"}
    return {"stack_name": stack.name, "stack_status": stack.status, "status_reason": stack.status_reason}


def _config_status(config: Any) -> str:
    if config is None:
        return "absent"
    if not isinstance(config, dict):
        return "not a JSON object"
    return "marked for deletion" if config.get("marked_for_deletion") else "present"


def view_rows(view: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per source, so versions and statuses line up side by side."""
    config, state, monitoring = (_object(view[name]) for name in ("config", "state", "monitoring"))
    stack, workflow, live = _object(view["heat_stack"]), _object(view["workflow"]), view["heat"]
    rows = [
        {"source": "config", "version": config.get("version"), "status": _config_status(view["config"])},
        {"source": "state", "version": state.get("version"),
         "status": _object(state.get("state")).get("worker_state", "absent"), "detail": state.get("error")},
        {"source": "monitoring", "version": monitoring.get("version"),
         "status": ", ".join(f"{k}: {v}" for k, v in monitoring.items() if k != "version") or "absent"},
        {"source": "workflow", "version": workflow.get("version"),
         "status": f"{workflow.get('action')} in flight" if workflow else "none"},
        {"source": "stack (etcd)", "status": stack.get("stack_status", "absent"), "detail": stack.get("status_reason")},
        {"source": "stack (Heat)", "status": live["stack_status"] if live else "not asked",
         "detail": live["status_reason"] if live else "no Heat configured, no tenant, or --no-heat"},
    ]
    rows += [{"source": "job", "version": JobId.parse(job_id).version,
              "status": "failed" if job_id in view["failures"] else "in /jobs/all", "detail": job_id}
             for job_id in view["jobs"]]
    return rows
