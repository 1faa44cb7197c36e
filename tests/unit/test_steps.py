"""The registry of Celery tasks is the one place a task's name, queue and module come from."""
from __future__ import annotations

import celeryconfig
from esiprov import steps, templates
from esiprov.app import app


def test_every_task_is_routed_to_the_queue_its_step_declares():
    assert celeryconfig.task_routes == {step.task_name: {"queue": step.queue} for step in steps.STEPS}


def test_each_queue_is_declared_once_and_every_routed_queue_exists():
    names = [queue.name for queue in celeryconfig.task_queues]
    assert len(names) == len(set(names))
    assert {route["queue"] for route in celeryconfig.task_routes.values()} == set(names)


def test_templates_may_name_exactly_the_handlers_of_the_registry_in_chain_order():
    assert templates.HANDLERS == ("heat_worker", "monitoring_worker")
    assert all(steps.handler(name).handler for name in templates.HANDLERS)


def test_the_app_imports_the_module_of_every_step_and_beat_sends_registered_names():
    assert set(app.conf.include) == {step.module for step in steps.STEPS}
    assert {entry["task"] for entry in celeryconfig.beat_schedule.values()} == {
        steps.RESYNC.task_name, steps.POLL_TARGETS.task_name}


def test_a_worker_registers_every_declared_task_under_its_name():
    import tasks  # noqa: F401  (registers the steps, as `celery -A tasks worker` does)
    assert {step.task_name for step in steps.STEPS} <= set(app.tasks)
