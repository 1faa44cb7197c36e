"""Pure rules behind recovery and waiting: which resource a task holds, how waits back off."""
from __future__ import annotations

import pytest

from esiprov.documents import finalize_task_id, resource_of_task, workflow_of_task
from esiprov.recovery import lost
from esiprov.settings import Settings
from esiprov.store import Entry
from tasks.job import polling


@pytest.mark.parametrize(("task_id", "resource"), [
    ("create:heat_worker:ese_physical_port:5b2dee2e-7420:1:abcde", ("ese_physical_port", "5b2dee2e-7420")),
    (finalize_task_id("ese_device:9f05b260:3"), ("ese_device", "9f05b260")),
    ("celery.chord_unlock", None),
    ("0f0c7f7e-8b6c-4a43-9d1c-3b0c2f4c1d2e", None),
])
def test_a_worker_holds_the_resource_named_in_a_step_or_finalize_task_id_and_nothing_else(task_id, resource):
    assert resource_of_task(task_id) == resource


def test_a_step_and_the_finalize_of_one_workflow_name_the_same_workflow():
    step = "create:heat_worker:ese_physical_port:5b2dee2e-7420:3:abcde"
    assert workflow_of_task(step) == workflow_of_task(finalize_task_id("ese_physical_port:5b2dee2e-7420:3")) \
        == "ese_physical_port:5b2dee2e-7420:3"
    assert workflow_of_task("celery.chord_unlock") is None


def test_waits_that_do_not_set_their_pace_grow_by_half_each_time_up_to_the_ceiling():
    settings = Settings(heat_poll_interval=0.25, heat_poll_max=1.0)
    countdowns = [polling(retries, settings)[0] for retries in range(6)]
    assert countdowns == [0.25, 0.375, 0.5625, 0.84375, 1.0, 1.0]


def test_the_time_waited_so_far_is_the_sum_of_the_countdowns_before():
    settings = Settings(heat_poll_interval=0.25, heat_poll_max=1.0)
    assert [polling(retries, settings)[1] for retries in range(4)] == [0, 0.25, 0.625, 1.1875]


def test_a_workflow_is_lost_with_a_released_hold_only_if_its_record_is_older_than_the_release() -> None:
    workflow = Entry("/esi-worker/workflows/v2.0/ese_devices/d1", {"version": 1}, mod_revision=10)
    hold = Entry("/esi-worker/holds/v2.0/ese_devices/d1", {"worker": "w"}, mod_revision=12)
    assert lost(workflow, None, released_at=11), "the dead worker's workflow"
    assert not lost(workflow, hold, released_at=11), "another worker holds it again"
    newer = Entry(workflow.key, {"version": 4}, mod_revision=11)
    assert not lost(newer, None, released_at=10), \
        "the next version finalize started after deleting the hold: no worker has received it yet"
