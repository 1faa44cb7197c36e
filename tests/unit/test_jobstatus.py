"""What `jobs list` says of a job that waits for a referenced resource."""
from __future__ import annotations

import time

from celery import states

from esiprov.jobstatus import RUNNING, WAITING, JobView

DEVICE_JOB = "create:heat_worker:ese_device:d1:1:aaaaa"
PORT_JOB = "create:heat_worker:ese_physical_port:p1:1:bbbbb"


def _view(celery_status: str, waiting_for: list[str], since: float | None = None) -> JobView:
    job = {"resource_type": "ese_physical_port", "resource_id": "p1", "version": 1, "action": "create",
           "dependency": [DEVICE_JOB]}
    hold = {"worker": "w@h", "task": PORT_JOB, "at": time.time()}
    return JobView(PORT_JOB, "heat_worker", 0, job, None, {"status": celery_status}, None, hold, waiting_for, since)


def test_a_job_whose_referenced_resource_still_has_a_job_is_waiting_for_it_since_its_workflow_was_sent():
    row = _view(states.RETRY, [DEVICE_JOB], time.time() - 120).row()
    assert (row["status"], row["waiting_for"], row["worker"]) == (WAITING, [DEVICE_JOB], "w@h")
    assert 119 <= row["waiting_seconds"] < 130


def test_a_job_with_nothing_to_wait_for_is_running_while_held():
    row = _view(states.RETRY, []).row()
    assert (row["status"], row["waiting_for"], row["waiting_seconds"]) == (RUNNING, [], None)


def test_a_job_whose_step_succeeded_waits_for_nothing():
    row = _view(states.SUCCESS, [DEVICE_JOB], time.time()).row()
    assert row["status"] == "done" and row["waiting_for"] == [] and row["waiting_seconds"] is None
