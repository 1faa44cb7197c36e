"""esiprov's Celery tasks, each declared once: its task name, queue, routing and module derive from here.

Like dramatiq's ``declare_actor``: celeryconfig builds the queues and routes from
this table, the app includes its modules, dispatch sends by it, templates accept
its handlers, and ``tasks.job.job_step`` registers a handler under its name. A
new handler is one entry here and one module ``tasks/<module>.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

from kombu import Exchange, Queue

#: every task name starts with it (``esiprov.heat_worker``): the reference system's names
NAMESPACE = "esiprov"


@dataclass(frozen=True)
class Step:
    """One Celery task of esiprov."""

    #: the task's short name; for a handler, the name templates and job ids use
    name: str
    #: the queue it is routed to: one per handler, so slow Heat polling never starves the others
    queue: str
    #: a handler runs the jobs of a workflow (a template names it); the others end a chain or run on beat
    handler: bool = False
    #: the module under ``tasks`` that registers it (its name unless said otherwise)
    module_name: str = ""

    @property
    def task_name(self) -> str:
        return f"{NAMESPACE}.{self.name}"

    @property
    def module(self) -> str:
        return f"tasks.{self.module_name or self.name}"


HEAT_WORKER = Step("heat_worker", queue="heat_worker", handler=True)
MONITORING_WORKER = Step("monitoring_worker", queue="monitoring_worker", handler=True)
#: a workflow's last task: publishes /state and /monitoring
FINALIZE = Step("finalize", queue="finalize")
#: beat's periodic reconcile, on finalize's queue (both re-drive resources)
RESYNC = Step("resync", queue="finalize")
#: beat's periodic SNMP poll
POLL_TARGETS = Step("poll_targets", queue="poller", module_name="poller")

STEPS = (HEAT_WORKER, MONITORING_WORKER, FINALIZE, RESYNC, POLL_TARGETS)
#: the handlers a template may name, by name, in chain order
HANDLERS = {step.name: step for step in STEPS if step.handler}


def handler(name: str) -> Step:
    """The handler a job names; KeyError for a name no template may use."""
    return HANDLERS[name]


def modules() -> list[str]:
    """The modules whose import registers every task."""
    return list(dict.fromkeys(step.module for step in STEPS))


def queues() -> list[Queue]:
    """One durable queue per distinct queue name, each on a direct exchange of its own name."""
    return [Queue(name, Exchange(name), routing_key=name) for name in dict.fromkeys(step.queue for step in STEPS)]


def routes() -> dict[str, dict[str, str]]:
    """Celery's task_routes: every task name to its queue."""
    return {step.task_name: {"queue": step.queue} for step in STEPS}
