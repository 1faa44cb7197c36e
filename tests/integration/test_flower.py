"""A real Flower on the broker (Redis, RabbitMQ) shows esiprov's tasks as the jobs they run, and no secret."""
from __future__ import annotations

import ast
import json
import uuid
from typing import Any, Iterator

import pytest

from esiprov.devenv.apiserver import put_config, wait_for_state
from esiprov.devenv.flower import Flower, start_flower, wait_for_events
from esiprov.devenv.process import ServiceError, wait_until
from tests import seed
from tests.fixtures.services import COMMUNITY

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def flower(own_pipeline, tmp_path_factory) -> Iterator[Flower]:
    """Flower started before the run it should show: it only knows the events it received."""
    try:
        server = start_flower(own_pipeline.env, tmp_path_factory.mktemp("flower"))
    except ServiceError as exc:
        pytest.fail(f"Flower did not start: {exc}", pytrace=False)
    with server:
        wait_for_events(server, own_pipeline.worker)
        yield server


@pytest.fixture(scope="module")
def finished_run(own_pipeline, flower) -> tuple[str, dict[str, dict[str, Any]]]:
    """A device created end to end while Flower watched: (its id, Flower's records of its tasks)."""
    device = {**seed.device_body(), "id": str(uuid.uuid4()), "existing": "existing", "hostname": "QFX-FLOWER"}
    put_config(own_pipeline.store, "ese_device", device)
    state = wait_for_state(own_pipeline.store, "ese_device", device["id"], 1, timeout=180)
    assert state["state"]["worker_state"] == "CREATE_COMPLETED", state
    found: dict[str, dict[str, Any]] = {}

    def all_three_succeeded() -> bool:
        found.clear()
        found.update({uuid_: task for uuid_, task in flower.tasks().items() if device["id"] in uuid_})
        return len(found) == 3 and all(task["state"] == "SUCCESS" for task in found.values())

    try:
        wait_until(all_three_succeeded, 30, "Flower's records", interval=0.5)
    except TimeoutError:
        pytest.fail(f"Flower's records of ese_device {device['id']} after 30 s: "
                    f"{ {task_id: task['state'] for task_id, task in found.items()} }", pytrace=False)
    return device["id"], found


def test_flower_lists_the_three_steps_of_a_finished_run_by_job_id_and_task_name(finished_run):
    device_id, tasks = finished_run
    by_name = {task["name"]: (task_id, task) for task_id, task in tasks.items()}
    assert set(by_name) == {"esiprov.heat_worker", "esiprov.monitoring_worker", "esiprov.finalize"}
    for handler in ("heat_worker", "monitoring_worker"):
        task_id, task = by_name[f"esiprov.{handler}"]
        assert task_id.startswith(f"create:{handler}:ese_device:{device_id}:1:")  # task id = job id
        assert list(ast.literal_eval(task["args"])) == [task_id]  # a retried task shows its args as a list
    assert list(ast.literal_eval(by_name["esiprov.finalize"][1]["args"])) == ["ese_device", device_id, 1]


def test_no_heat_token_or_community_appears_anywhere_in_flowers_task_records(own_pipeline, flower, finished_run):
    _, tasks = finished_run
    secrets = {own_pipeline.env["ESIPROV_HEAT_TOKEN"], COMMUNITY}
    everything = json.dumps(flower.tasks()) + json.dumps([flower.get(f"/api/task/info/{t}") for t in tasks])
    assert [secret for secret in secrets if secret in everything] == []
