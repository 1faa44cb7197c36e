"""How ``esiprov jobs list/show`` present a job, from its etcd and Celery records, without services."""

from esiprov.jobstatus import FAILED, JobView

JOB = {"resource_type": "ese_physical_port", "resource_id": "p1", "version": 2, "action": "logical_delete"}


def view(failure):
    return JobView("logical_delete:monitoring_worker:ese_physical_port:p1:2:abcde", "monitoring_worker", 0, JOB,
                   failure, {"status": "SUCCESS"})


def test_an_ignored_failure_is_listed_as_failed_and_says_its_workflow_went_on():
    ignored = view({"error": "job x, which this job depends on, failed", "at": 1.0, "ignored": True})
    assert ignored.status == FAILED
    assert ignored.error == "job x, which this job depends on, failed (on_failure ignore: its workflow went on)"


def test_a_failure_that_ended_its_workflow_is_listed_with_its_error_alone():
    assert view({"error": "stack is CREATE_FAILED", "at": 1.0}).error == "stack is CREATE_FAILED"
