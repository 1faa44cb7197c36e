"""Resources change and go away: modify, logical_delete, cleanup and ordering, on real services."""
from __future__ import annotations

import json
import urllib.request

import pytest

from esiprov import keys
from esiprov.devenv.apiserver import put_config, wait_for_state
from esiprov.devenv.bodies import device_body, port_body
from esiprov.devenv.history import history
from esiprov.devenv.process import wait_until
from esiprov.documents import JobEntry, JobId
from esiprov.heat import HeatClient
from tests.fixtures.services import SWITCH_A

pytestmark = pytest.mark.slow
TENANT = "5c1a7e2b0d8f4c3e9a6b1d2c3e4f5a6b"
DEVICE, PORT = "ese_device", "ese_physical_port"


def new_device(**changes):
    return device_body(SWITCH_A.ip, TENANT, **changes)


def new_port(device, name="xe-0/0/3"):
    return port_body(device, name)


def create(store, rtype, body):
    put_config(store, rtype, body)
    state = wait_for_state(store, rtype, body["id"], 1, timeout=120)
    assert state["state"]["worker_state"] == "CREATE_COMPLETED", state
    return state


def stack(pipeline, rtype, body):
    return HeatClient(pipeline.settings, TENANT).get(f"{rtype}_{body['id']}")


def revision(store):
    return store.range(keys.CONFIG, keys_only=True)[1]


def test_a_newer_version_updates_the_stack_and_reregisters_monitoring(pipeline):
    store = pipeline.store
    device = new_device()
    create(store, DEVICE, device)

    put_config(store, DEVICE, {**device, "hostname": "qfx-renamed"}, version=2)
    state = wait_for_state(store, DEVICE, device["id"], 2)

    assert state["state"]["worker_state"] == "MODIFY_COMPLETED" and state["error"] == ""
    assert store.value(keys.heat_stack(DEVICE, device["id"]))["stack_status"] == "UPDATE_COMPLETE"
    outputs = {o["output_key"]: o["output_value"] for o in stack(pipeline, DEVICE, device).outputs}
    assert outputs["name"] == "qfx-renamed"
    # the target was replaced for version 2, and finalize wrote its status with /state, in one transaction
    assert store.value(keys.target(DEVICE, device["id"]))["version"] == 2
    monitoring = store.get(keys.monitoring(DEVICE, device["id"]))
    assert monitoring.value == {"version": 2, "switch": "UP"}
    assert monitoring.mod_revision == store.get(keys.state(DEVICE, device["id"])).mod_revision


def test_a_logical_delete_removes_monitoring_and_the_stack_then_cleanup_forgets_it(pipeline):
    store = pipeline.store
    device = new_device()
    create(store, DEVICE, device)

    put_config(store, DEVICE, device, version=2, marked_for_deletion=True)
    state = wait_for_state(store, DEVICE, device["id"], 2)

    assert state == {"state": {"heat_outputs": "[]", "worker_state": "DELETE_COMPLETED"}, "version": 2, "error": ""}
    assert store.value(keys.heat_stack(DEVICE, device["id"])) == {
        "id": f"{DEVICE}:{device['id']}", "stack_id": "", "tenant_id": TENANT,
        "stack_status": "DELETE_COMPLETE", "status_reason": "", "output": []}
    assert store.get(keys.monitoring(DEVICE, device["id"])) is None
    assert stack(pipeline, DEVICE, device) is None

    # the API server then removes /config and /state
    store.commit(deletes=[keys.config(DEVICE, device["id"]), keys.state(DEVICE, device["id"])])
    wait_until(lambda: all(store.get(k) is None for k in keys.resource_records(DEVICE, device["id"])),
               30, "esiprov's records of the deleted device to go")


def test_a_config_deleted_outright_is_deleted_from_heat_and_forgotten(pipeline):
    store = pipeline.store
    device = new_device()
    create(store, DEVICE, device)

    store.delete(keys.config(DEVICE, device["id"]))

    wait_until(lambda: stack(pipeline, DEVICE, device) is None, 60, "the stack to be deleted")
    records = keys.resource_records(DEVICE, device["id"]) + [keys.state(DEVICE, device["id"])]
    wait_until(lambda: all(store.get(k) is None for k in records), 30, "every record to go")


def test_rapid_versions_run_one_workflow_at_a_time_and_only_the_newest_waiting_one(pipeline):
    store = pipeline.store
    device = new_device()
    since = revision(store) + 1
    put_config(store, DEVICE, {**device, "hostname": "qfx-a"}, version=1)
    wait_until(lambda: store.get(keys.workflow(DEVICE, device["id"])) is not None, 10, "the create workflow")
    for version, hostname in ((2, "qfx-b"), (3, "qfx-c")):
        put_config(store, DEVICE, {**device, "hostname": hostname}, version=version)
    put_config(store, DEVICE, device, version=4, marked_for_deletion=True)

    final = wait_for_state(store, DEVICE, device["id"], 4, timeout=180)

    assert final["state"]["worker_state"] == "DELETE_COMPLETED"
    states = [c.entry.value["version"] for c in history(store, keys.state(DEVICE, device["id"]), since) if c.entry]
    assert states == [1, 4], "the running create finishes, then only the newest version runs"
    workflows = [c.entry.value for c in history(store, keys.workflow(DEVICE, device["id"]), since) if c.entry]
    assert [(w["version"], w["action"]) for w in workflows] == [(1, "create"), (4, "logical_delete")]
    # one record per operation sent: its job and send time (heat_worker.taken_up rewrites it once)
    sent = {(c.key, c.entry.value["at"]): c.entry.value["operation"] for c in history(store, keys.HEAT_OPS, since)
            if c.entry and device["id"] in c.key}
    assert list(sent.values()) == ["create", "delete"], "exactly one stack operation per applied version"
    assert stack(pipeline, DEVICE, device) is None


def test_a_device_and_its_ports_deleted_together_all_reach_delete_completed(pipeline):
    store = pipeline.store
    device = new_device()
    create(store, DEVICE, device)
    ports = [new_port(device, name) for name in ("xe-0/0/3", "xe-0/0/4")]
    for port in ports:
        create(store, PORT, port)

    for rtype, body in [(DEVICE, device)] + [(PORT, p) for p in ports]:
        put_config(store, rtype, body, version=2, marked_for_deletion=True)

    for rtype, body in [(DEVICE, device)] + [(PORT, p) for p in ports]:
        assert wait_for_state(store, rtype, body["id"], 2)["state"]["worker_state"] == "DELETE_COMPLETED"
        assert stack(pipeline, rtype, body) is None


def heat_parameters(pipeline, rtype, body):
    """The parameters Heat built the resource's stack with (the esiprov client shows only outputs)."""
    url = f"{pipeline.settings.heat_url.format(tenant_id=TENANT)}/stacks/{rtype}_{body['id']}"
    with urllib.request.urlopen(url, timeout=10) as answer:  # Heat redirects the name to name/id
        return json.load(answer)["stack"]["parameters"]


def router_id(pipeline, device):
    """The device stack's ``id`` output: the uuid of its physical router."""
    return next(o["output_value"] for o in stack(pipeline, DEVICE, device).outputs if o["output_key"] == "id")


def test_a_port_whose_device_is_being_updated_waits_for_the_devices_job(pipeline):
    store = pipeline.store
    device = new_device()
    create(store, DEVICE, device)
    router_before = router_id(pipeline, device)
    since = revision(store) + 1

    put_config(store, DEVICE, {**device, "hostname": "qfx-moved"}, version=2)
    wait_until(lambda: store.get(keys.workflow(DEVICE, device["id"])) is not None, 10, "the device workflow")
    port = new_port(device)
    put_config(store, PORT, port)
    port_state = wait_for_state(store, PORT, port["id"], 1)

    assert port_state["state"]["worker_state"] == "CREATE_COMPLETED"
    jobs = [JobEntry.from_etcd(c.entry.value).job for c in history(store, keys.JOBS, since) if c.entry]
    # every job of the device's modify, heat and monitoring (the reference's rule: all in-flight jobs)
    device_jobs = list(dict.fromkeys(job.id for job in jobs if (job.action, job.resource_id) == ("modify", device["id"])))
    port_job = next(job for job in jobs if (job.handler, job.resource_id) == ("heat_worker", port["id"]))
    assert [JobId.parse(d).handler for d in device_jobs] == ["heat_worker", "monitoring_worker"]
    assert port_job.dependency == device_jobs
    device_done = store.get(keys.state(DEVICE, device["id"])).mod_revision
    assert store.get(keys.state(PORT, port["id"])).mod_revision > device_done
    # the port's stack was built on the device's router as it is after the update: the new hostname
    # replaced the router (a new uuid), and the port's stack names the new one
    router_after = router_id(pipeline, device)
    assert router_after != router_before
    assert heat_parameters(pipeline, PORT, port)["physical_device"] == router_after


def test_a_version_older_than_the_applied_one_is_ignored_with_a_log_line(pipeline):
    store = pipeline.store
    device = new_device()
    create(store, DEVICE, device)
    put_config(store, DEVICE, {**device, "hostname": "qfx-two"}, version=2)
    wait_for_state(store, DEVICE, device["id"], 2)

    put_config(store, DEVICE, device, version=1)
    put = store.get(keys.config(DEVICE, device["id"])).mod_revision

    wait_until(lambda: "config version 1 is older than the applied version 2" in
               pipeline.watcher.log_path.read_text(), 10, "the watcher's log line")
    # the watcher's heartbeat carries the last revision it has handled: once it is past the put, the
    # reconcile that would have planned, dispatched or published anything for version 1 is over
    wait_until(lambda: store.value(keys.WATCHER_HEARTBEAT)["revision"] >= put, 10, "the watcher to handle the put")
    assert [c.key for c in history(store, "/", put + 1) if device["id"] in c.key] == [], \
        "nothing was written for the device after its old version arrived"
    assert store.value(keys.state(DEVICE, device["id"]))["version"] == 2
