"""Requeue's chain order: the jobs of one workflow, found in /jobs/all in any order, as their chain ran."""
from __future__ import annotations

import pytest

from esiprov.documents import Job
from esiprov.requeue import Refused, Settled, chain_order, settled


def job(handler: str, first: bool, dependency: list[str]) -> Job:
    return Job(id=f"create:{handler}:t:r:1:xxxxx", action="create", handler=handler, resource_type="t",
               resource_id="r", version=1, job_name="t:r:1", is_first=first, is_last=False, on_failure="fail",
               params=[], resource_input={}, dependency=dependency)


def test_the_first_job_then_each_job_that_names_the_previous_one():
    heat = job("heat_worker", True, ["create:heat_worker:other:o:3:yyyyy"])  # another resource's job
    monitoring = job("monitoring_worker", False, [heat.id])
    extra = job("extra_worker", False, [monitoring.id])
    assert chain_order([extra, heat, monitoring]) == [heat, monitoring, extra]


def test_jobs_that_do_not_form_one_chain_are_refused_with_the_workflow_named():
    heat = job("heat_worker", True, [])
    stray = job("monitoring_worker", False, ["create:heat_worker:t:r:1:zzzzz"])
    with pytest.raises(Refused, match="the jobs of t:r:1 in /jobs/all/ do not form one chain"):
        chain_order([heat, stray])
    with pytest.raises(Refused, match="2 first jobs"):
        chain_order([heat, job("monitoring_worker", True, [])])


# --- requeue --wait: when /state has settled ------------------------------------------
def _state(version: int, worker_state: str, error: str = "") -> dict:
    return {"version": version, "state": {"worker_state": worker_state}, "error": error}


@pytest.mark.parametrize("worker_state", ["CREATE_COMPLETED", "MODIFY_FAILED", "READ_COMPLETE", "DELETE_COMPLETED"])
def test_a_final_state_of_the_requeued_version_has_settled(worker_state):
    assert settled(_state(2, worker_state), 2)


def test_a_newer_version_has_settled_whatever_its_state():
    assert settled(_state(3, "whatever"), 2)


@pytest.mark.parametrize("document", [_state(1, "CREATE_COMPLETED"), _state(2, "BUILDING"), None, "x"])
def test_an_older_version_or_a_state_that_is_not_final_has_not_settled(document):
    assert not settled(document, 2)


WAITED = Settled("create:heat_worker:t:r:2:xxxxx", "t", "r", 2)


def test_a_completed_wait_says_the_state_it_reached():
    done = Settled(**{**WAITED.__dict__, "worker_state": "CREATE_COMPLETED", "state_version": 2})
    assert done.completed and done.describe(60) == "t r version 2: CREATE_COMPLETED"


def test_a_failed_wait_says_it_failed_again_with_the_error_on_one_line():
    failed = Settled(**{**WAITED.__dict__, "worker_state": "CREATE_FAILED", "state_version": 2,
                        "state_error": "stack is\nCREATE_FAILED"})
    assert not failed.completed
    assert failed.describe(60) == "t r version 2 failed again: CREATE_FAILED: stack is CREATE_FAILED"


def test_a_wait_that_timed_out_says_so_and_what_to_look_at():
    assert not WAITED.completed
    assert WAITED.describe(60) == ("timed out after 60 s waiting for /state of t r version 2; it may still be "
                                   "running: esiprov state show t r")


def test_a_wait_overtaken_by_a_newer_version_is_not_a_completion():
    moved = Settled(**{**WAITED.__dict__, "worker_state": "MODIFY_COMPLETED", "state_version": 3})
    assert not moved.completed and "moved on to version 3" in moved.describe(60)
