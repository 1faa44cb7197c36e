"""JSON log lines: the fields a log pipeline queries, taken from the running task or the caller."""
from __future__ import annotations

import json
import logging

from esiprov.logs import JsonFormatter, task_context

JOB = "create:heat_worker:ese_physical_port:5b2dee2e:1:abcde"


def test_a_step_s_task_id_gives_its_job_resource_and_action():
    assert task_context(JOB) == {"job_id": JOB, "resource_type": "ese_physical_port", "resource_id": "5b2dee2e",
                                 "action": "create"}


def test_finalize_s_task_id_gives_its_resource_and_other_ids_nothing():
    assert task_context("finalize:ese_device:9f05b260:2") == {"resource_type": "ese_device", "resource_id": "9f05b260"}
    assert task_context("0f0c7f7e-8b6c-4a43") == {} and task_context(None) == {}


def test_a_record_becomes_one_json_object_with_the_fields_it_was_given():
    record = logging.LogRecord("esiprov.watcher", logging.INFO, __file__, 1, "%s %s: %s",
                               ("ese_device", "d1", "dispatched"), None)
    record.resource_type, record.resource_id = "ese_device", "d1"
    line = JsonFormatter().format(record)
    assert "\n" not in line
    document = json.loads(line)
    assert {k: document[k] for k in ("level", "logger", "message", "resource_type", "resource_id")} == {
        "level": "INFO", "logger": "esiprov.watcher", "message": "ese_device d1: dispatched",
        "resource_type": "ese_device", "resource_id": "d1"}
