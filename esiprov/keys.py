"""The etcd key layout, one function per key family, and the inverse of each (key -> its parts).

The API server owns /config (esiprov never writes resource configs); esiprov
writes /jobs, /state, /monitoring and keeps its own records under /esi-worker/.
Resource types are singular (``ese_physical_port``); keys use the plural.
What each key holds is typed in esiprov.documents.
"""
from __future__ import annotations

API = "v2.0"
CONFIG = f"/config/{API}/"
#: written by esiprov, read by the API server: each resource's composed state and monitoring status
STATE = f"/state/{API}/"
MONITORING = f"/monitoring/{API}/"
TEMPLATES = f"{CONFIG}heat_templates/"
JOBS = "/jobs/all/"
WORKER = "/esi-worker/"
SCHEMA = f"{WORKER}schema"
WORKFLOWS = f"{WORKER}workflows/{API}/"
TARGETS = f"{WORKER}monitoring_targets/{API}/"
FAILURES = f"{WORKER}failures/"
HEAT_OPS = f"{WORKER}heat_ops/"
APPLIED_CONFIG = f"{WORKER}config/{API}/"
#: the SNMP poller's cycle lock and last cycle record
POLLER = f"{WORKER}poller/"
#: the last finished poll cycle: when it started, by whom, its summary and the devices' uptimes
POLL_CYCLE = f"{POLLER}last_cycle"
WATCHER_LEADER = f"{WORKER}watcher/leader"
#: the leading watcher's heartbeat: its last processed revision, and a liveness probe of its watch stream
WATCHER_HEARTBEAT = f"{WORKER}watcher/heartbeat"
#: which worker holds each in-flight workflow's message, on that worker's lease (esiprov.holds)
HOLDS = f"{WORKER}holds/{API}/"
#: workflows claimed in etcd whose messages could not be handed to the broker
UNSENT = f"{WORKER}unsent/{API}/"


def plural(rtype: str) -> str:
    return f"{rtype}s"


def singular(plural_name: str) -> str:
    return plural_name[:-1] if plural_name.endswith("s") else plural_name


def config(rtype: str, rid: str) -> str:
    return f"{CONFIG}{plural(rtype)}/{rid}"


def template(name: str) -> str:
    return f"{TEMPLATES}{name}"


def job(job_id: str) -> str:
    return f"{JOBS}{job_id}"


def heat_stack(rtype: str, rid: str) -> str:
    return f"{WORKER}heat_stacks/{API}/{plural(rtype)}/{rid}"


def job_state(rtype: str, rid: str) -> str:
    return f"{WORKER}job_state/{API}/{plural(rtype)}/{rid}"


def workflow(rtype: str, rid: str) -> str:
    return f"{WORKFLOWS}{plural(rtype)}/{rid}"


def target(rtype: str, rid: str) -> str:
    return f"{TARGETS}{plural(rtype)}/{rid}"


def applied_config(rtype: str, rid: str) -> str:
    """The applied config: the last config version esiprov applied (the body as an object), as the reference
    keeps it under /esi-worker/config/."""
    return f"{APPLIED_CONFIG}{plural(rtype)}/{rid}"


def hold(rtype: str, rid: str) -> str:
    return f"{HOLDS}{plural(rtype)}/{rid}"


def unsent(rtype: str, rid: str) -> str:
    return f"{UNSENT}{plural(rtype)}/{rid}"


def heat_op(job_id: str) -> str:
    """Which Heat operation a job sent, and for which attempt: sent once per attempt."""
    return f"{HEAT_OPS}{job_id}"


def resource_records(rtype: str, rid: str) -> list[str]:
    """Every key esiprov keeps for one resource (cleaned up when the resource is gone)."""
    return [applied_config(rtype, rid), heat_stack(rtype, rid), job_state(rtype, rid),
            workflow(rtype, rid), target(rtype, rid), monitoring(rtype, rid), unsent(rtype, rid)]


def failure(job_id: str) -> str:
    return f"{FAILURES}{job_id}"


def state(rtype: str, rid: str) -> str:
    return f"{STATE}{plural(rtype)}/{rid}"


def monitoring(rtype: str, rid: str) -> str:
    return f"{MONITORING}{plural(rtype)}/{rid}"


def resource_of(key: str, prefix: str = CONFIG) -> tuple[str, str] | None:
    """(type, id) of a ``<prefix><plural>/<id>`` key; None for templates and other keys."""
    if not key.startswith(prefix) or key.startswith(TEMPLATES):
        return None
    parts = key[len(prefix):].split("/")
    if len(parts) != 2 or not all(parts):
        return None
    return singular(parts[0]), parts[1]


def _name_under(key: str, prefix: str) -> str | None:
    """The one path segment after ``prefix`` in ``key``; None when the key is not such a key."""
    name = key[len(prefix):] if key.startswith(prefix) else ""
    return name if name and "/" not in name else None


def job_id_of(key: str, prefix: str = JOBS) -> str | None:
    """The job id of a ``<prefix><job id>`` key (/jobs/all, failures, heat_ops); None for other keys."""
    return _name_under(key, prefix)


def template_name_of(key: str) -> str | None:
    """The name of a /config/v2.0/heat_templates/<name> key; None for other keys."""
    return _name_under(key, TEMPLATES)
