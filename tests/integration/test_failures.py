"""Every failure a user can cause or meet ends in a clear /state, never a hang or a lost resource."""
from __future__ import annotations

import json
import uuid

import pytest

from esiprov import keys
from esiprov.devenv.apiserver import envelope, put_config, wait_for_state
from esiprov.devenv.bodies import device_body
from esiprov.devenv.history import history
from esiprov.devenv.pipeline import start_watcher, start_worker
from esiprov.devenv.process import free_port, wait_until
from esiprov.target_kinds import KINDS
from tests.fixtures.cluster import DEVICE, PORT
from tests.fixtures.services import NO_AGENT_IP, SWITCH_A

pytestmark = pytest.mark.slow
TENANT = "9d0c1b2a3f4e4d5c8b7a6f5e4d3c2b1a"


def device(ip: str = SWITCH_A.ip) -> dict:
    return device_body(ip, TENANT)


def test_an_unreachable_heat_is_retried_with_backoff_then_fails_clearly(cluster):
    env = {**cluster.env, "ESIPROV_HEAT_URL": f"http://127.0.0.1:{free_port()}/v1/{{tenant_id}}",
           "ESIPROV_RETRY_ATTEMPTS": "2", "ESIPROV_RETRY_BACKOFF_MAX": "0.2"}
    body = device()
    with start_worker(env, cluster.logs) as worker, start_watcher(env, cluster.logs):
        put_config(cluster.store, "ese_device", body)
        state = wait_for_state(cluster.store, "ese_device", body["id"], 1, timeout=60)

    assert state["state"] == {"worker_state": "CREATE_FAILED"}
    assert state["error"].startswith("gave up after 2 retries: ")
    assert "127.0.0.1" in state["error"]
    assert worker.log_path.read_text().count("; retrying") == 2
    failed = [e.key for e in cluster.store.range(keys.FAILURES)[0] if body["id"] in e.key]
    assert len(failed) == 1, "the failed job stays, with its failure record, for requeue"
    assert cluster.store.get(keys.job(failed[0][len(keys.FAILURES):])) is not None
    assert cluster.store.get(keys.workflow("ese_device", body["id"])) is None, "the resource is not stuck"


def test_a_device_whose_agent_does_not_answer_is_created_with_monitoring_fail(pipeline):
    body = device(NO_AGENT_IP)
    put_config(pipeline.store, "ese_device", body)
    state = wait_for_state(pipeline.store, "ese_device", body["id"], 1)

    assert state["state"]["worker_state"] == "CREATE_COMPLETED"
    assert json.loads(state["state"]["state_monitoring"]) == {"switch": "FAIL"}
    assert pipeline.store.value(keys.monitoring("ese_device", body["id"])) == {"version": 1, "switch": "FAIL"}


def test_a_port_whose_device_does_not_exist_fails_naming_the_device(pipeline):
    port = {"id": str(uuid.uuid4()), "name": "xe-0/0/3", "ese_device_id": "no-such-device", "tenant_id": TENANT}
    put_config(pipeline.store, "ese_physical_port", port)
    state = wait_for_state(pipeline.store, "ese_physical_port", port["id"], 1)

    assert state["state"] == {"worker_state": "CREATE_FAILED"}
    assert "ese_device no-such-device" in state["error"] and "does not exist" in state["error"]


def test_a_missing_template_fails_clearly_and_the_next_resource_goes_on(cluster):
    cluster.store.delete(keys.template("ese_device_existing"))
    orphan, fine = device(), device()
    orphan["existing"] = "existing"
    with start_watcher(cluster.env, cluster.logs):
        put_config(cluster.store, "ese_device", orphan)
        put_config(cluster.store, "ese_device", fine)
        state = wait_for_state(cluster.store, "ese_device", orphan["id"], 1)
        assert state["state"] == {"worker_state": "CREATE_FAILED"}
        assert "template ese_device_existing is not in etcd" in state["error"]
        # the next resource is planned and dispatched (no worker runs here, so it stays in flight)
        wait_until(lambda: cluster.store.get(keys.workflow("ese_device", fine["id"])) is not None,
                   10, "the next resource's workflow")


def workflow_jobs(store, rtype, rid):
    """The job documents of the resource's workflow in flight, in chain order (waits for the workflow)."""
    wait_until(lambda: store.get(keys.workflow(rtype, rid)) is not None, 10, f"the workflow of {rtype} {rid}")
    return [store.value(keys.job(job_id))[1] for job_id in store.value(keys.workflow(rtype, rid))["jobs"]]


def test_a_delete_whose_ignored_monitoring_removal_fails_still_deletes_the_stack_and_completes(cluster):
    with start_watcher(cluster.env, cluster.logs):
        with start_worker(cluster.env, cluster.logs):
            device = cluster.devices(1)[0]
            port = cluster.ports(device, 1)[0]
            cluster.all_created([port], rtype=PORT)
        # With no worker running, the device's modify is in flight when the port's delete is planned, so
        # the port's monitoring removal depends on the device's jobs, its monitoring job bound to fail.
        broken = {"id": "ese_device_monitoring", "handler": "monitoring_worker", "watch": [],
                  "parameter_mappings": {}, "template_file": "switch: {type: router}"}
        cluster.store.put(keys.template("ese_device_monitoring"), envelope(broken, 2))
        put_config(cluster.store, DEVICE, device, version=2)
        device_jobs = workflow_jobs(cluster.store, DEVICE, device["id"])
        device_monitoring = device_jobs[-1]
        put_config(cluster.store, PORT, port, version=2, marked_for_deletion=True)
        removal, stack_delete = workflow_jobs(cluster.store, PORT, port["id"])
        assert (removal["handler"], removal["on_failure"], removal["dependency"]) == \
            ("monitoring_worker", "ignore", [job["id"] for job in device_jobs])
        assert (stack_delete["handler"], stack_delete["on_failure"]) == ("heat_worker", "fail")
        since = cluster.store.range(keys.CONFIG, keys_only=True)[1] + 1

        with start_worker(cluster.env, cluster.logs, name="worker-after"):
            device_state = wait_for_state(cluster.store, DEVICE, device["id"], 2)
            port_state = wait_for_state(cluster.store, PORT, port["id"], 2)

    assert device_state == {"state": {"worker_state": "MODIFY_FAILED"}, "version": 2,
                            "error": f"unknown monitoring target type 'router' (known: {', '.join(KINDS)})"}
    assert port_state == {"state": {"heat_outputs": "[]", "worker_state": "DELETE_COMPLETED"}, "version": 2,
                          "error": ""}, "the ignored failure neither published FAILED nor stopped the chain"
    assert f"{PORT}_{port['id']}" not in cluster.stack_names(), "the chain went on to delete the stack"
    recorded = [c.entry.value for c in history(cluster.store, keys.failure(removal["id"]), since) if c.entry]
    assert [(r["error"], r["ignored"]) for r in recorded] == \
        [(f"job {device_monitoring['id']}, which this job depends on, failed", True)]
    left = [keys.workflow(PORT, port["id"]), keys.job(removal["id"]), keys.job(stack_delete["id"]),
            keys.failure(removal["id"])]
    assert [key for key in left if cluster.store.get(key) is not None] == [], "finalize ended the workflow"
