"""The heat_ops record of a job's attempt (tasks.heat_worker) on the session's real etcd."""
from __future__ import annotations

import time
import uuid

from esiprov import keys
from esiprov.documents import HeatOp, Job
from esiprov.store import Store
from tasks.heat_worker import taken_up


def _job() -> Job:
    rid = str(uuid.uuid4())
    return Job(id=f"create:heat_worker:ese_device:{rid}:1:abcde", action="create", handler="heat_worker",
               resource_type="ese_device", resource_id=rid, version=1, job_name=f"ese_device:{rid}:1",
               is_first=True, is_last=False, on_failure="fail", params=[], resource_input={})


def test_an_operation_heat_has_taken_up_is_no_longer_compared_with_the_stack_before_it(store: Store) -> None:
    # two failed updates started within one second show the same revision: [UPDATE_FAILED, <second>]
    job, before = _job(), ["UPDATE_FAILED", "2026-11-30T05:30:05Z"]
    sent = HeatOp(attempt=2, operation="update", before=before, at=time.time())
    store.put(keys.heat_op(job.id), sent)

    done = taken_up(store, job, sent)

    assert done["before"] is None and store.value(keys.heat_op(job.id)) == done


def test_the_record_of_a_newer_attempt_is_left_as_it_is(store: Store) -> None:
    job, now = _job(), time.time()
    older = HeatOp(attempt=2, operation="update", before=["UPDATE_FAILED", "t"], at=now)
    newer = HeatOp(attempt=3, operation="update", before=["UPDATE_FAILED", "t"], at=now + 1)
    store.put(keys.heat_op(job.id), newer)  # a requeue's attempt sent its update meanwhile

    taken_up(store, job, older)

    assert store.value(keys.heat_op(job.id)) == newer
