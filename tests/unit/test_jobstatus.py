"""How ``esiprov jobs list/show`` present a job, from its etcd and Celery records, without services."""
from __future__ import annotations

import time
from typing import Any

from celery import states

from esiprov.documents import Job
from esiprov.jobstatus import FAILED, RUNNING, WAITING, JobView

DEVICE_JOB = "create:heat_worker:ese_device:d1:1:aaaaa"
PORT_JOB = "create:heat_worker:ese_physical_port:p1:1:bbbbb"
DELETE_JOB = "logical_delete:monitoring_worker:ese_physical_port:p1:2:abcde"


def _job(job_id: str, handler: str, version: int, action: str, dependency: list[str] | None = None) -> Job:
    return Job(id=job_id, action=action, handler=handler, resource_type="ese_physical_port", resource_id="p1",
               version=version, job_name=f"ese_physical_port:p1:{version}", is_first=True, is_last=False,
               on_failure="fail", params=[], resource_input={}, dependency=dependency or [])


def _failed(failure: dict[str, Any]) -> JobView:
    job = _job(DELETE_JOB, "monitoring_worker", 2, "logical_delete")
    return JobView(DELETE_JOB, "monitoring_worker", 0, job, failure, {"status": "SUCCESS"})


def _waiting(celery_status: str, waiting_for: list[str], since: float | None = None) -> JobView:
    job = _job(PORT_JOB, "heat_worker", 1, "create", [DEVICE_JOB])
    hold = {"worker": "w@h", "task": PORT_JOB, "at": time.time()}
    return JobView(PORT_JOB, "heat_worker", 0, job, None, {"status": celery_status}, None, hold, waiting_for, since)


def test_an_ignored_failure_is_listed_as_failed_and_says_its_workflow_went_on():
    ignored = _failed({"error": "job x, which this job depends on, failed", "at": 1.0, "ignored": True})
    assert ignored.status == FAILED
    assert ignored.error == "job x, which this job depends on, failed (on_failure ignore: its workflow went on)"


def test_a_failure_that_ended_its_workflow_is_listed_with_its_error_alone():
    assert _failed({"error": "stack is CREATE_FAILED", "at": 1.0}).error == "stack is CREATE_FAILED"


def test_a_job_whose_referenced_resource_still_has_a_job_is_waiting_for_it_since_its_workflow_was_sent():
    row = _waiting(states.RETRY, [DEVICE_JOB], time.time() - 120).row()
    assert (row["status"], row["waiting_for"], row["worker"]) == (WAITING, [DEVICE_JOB], "w@h")
    assert 119 <= row["waiting_seconds"] < 130


def test_a_job_with_nothing_to_wait_for_is_running_while_held():
    row = _waiting(states.RETRY, []).row()
    assert (row["status"], row["waiting_for"], row["waiting_seconds"]) == (RUNNING, [], None)


def test_a_job_whose_step_succeeded_waits_for_nothing():
    row = _waiting(states.SUCCESS, [DEVICE_JOB], time.time()).row()
    assert row["status"] == "done" and row["waiting_for"] == [] and row["waiting_seconds"] is None
