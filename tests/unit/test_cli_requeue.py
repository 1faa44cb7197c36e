"""Requeue's chain order: the jobs of one workflow, found in /jobs/all in any order, as their chain ran."""
from __future__ import annotations

import pytest

from esiprov.model import Job
from esiprov.requeue import Refused, chain_order


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
