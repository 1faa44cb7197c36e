"""ESIPROV_LOG_FORMAT=json: the watcher and a real worker log one JSON object per line, with job fields."""
from __future__ import annotations

import json
from typing import Any

import pytest

from esiprov.devenv.pipeline import start_watcher, start_worker
from tests.fixtures.cluster import DEVICE

pytestmark = pytest.mark.slow


def records(text: str) -> list[dict[str, Any]]:
    """The log's records; the worker's start-up banner (printed, not logged) is not one."""
    lines = [line for line in text.splitlines() if line.startswith("{")]
    return [json.loads(line) for line in lines]


def test_the_worker_and_the_watcher_log_json_lines_naming_the_job_and_resource(cluster):
    env = {**cluster.env, "ESIPROV_LOG_FORMAT": "json"}
    with start_worker(env, cluster.logs) as worker, start_watcher(env, cluster.logs) as watcher:
        [body] = cluster.devices(1)
        cluster.all_created([body])
    watched, worked = records(watcher.log_path.read_text()), records(worker.log_path.read_text())
    assert not [line for line in watcher.log_path.read_text().splitlines() if line and not line.startswith("{")]
    assert not [line for line in worker.log_path.read_text().splitlines() if line.startswith("[20")], \
        "no text log line"
    assert {(r["resource_type"], r["resource_id"]) for r in watched if "resource_id" in r} == {(DEVICE, body["id"])}
    jobs = {r["job_id"]: r for r in worked if r.get("resource_id") == body["id"] and "job_id" in r}
    assert {job.split(":")[1] for job in jobs} == {"heat_worker", "monitoring_worker"}, "received and succeeded"
    assert all(r["action"] == "create" and r["resource_type"] == DEVICE for r in jobs.values())
