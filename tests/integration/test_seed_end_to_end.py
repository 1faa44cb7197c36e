"""The seed's port create, end to end on real etcd, Celery (on Redis and on RabbitMQ), Redis, Heat and a switch."""
from __future__ import annotations

import json
import re
import urllib.parse

import pytest

from esiprov import keys
from esiprov.devenv.apiserver import put_config, wait_for_state
from esiprov.devenv.history import history
from esiprov.heat import HeatClient
from tests import seed

pytestmark = pytest.mark.slow
PORT = "ese_physical_port"


def _strip(job_value):
    handler, job, attempts = job_value
    job = {**job, "id": seed.without_suffix(job["id"]),
           "dependency": [seed.without_suffix(d) for d in job["dependency"]]}
    return [handler, job, attempts]


@pytest.fixture(scope="module")
def seeded(broker_pipeline):
    """Create the seed's device, then its port; return the etcd revision the port was written at."""
    store = broker_pipeline.store
    put_config(store, "ese_device", seed.device_body())
    device_state = wait_for_state(store, "ese_device", seed.DEVICE_ID, 1, timeout=180)
    assert device_state["state"]["worker_state"] == "CREATE_COMPLETED", device_state
    _, before = store.range(keys.CONFIG, keys_only=True)
    config = seed.record("/config/")
    put_config(store, PORT, config["body"], config["version"])
    wait_for_state(store, PORT, seed.PORT_ID, 1, timeout=180)
    return before + 1


def _history(store, key, since):
    return [change.entry.value for change in history(store, key, since) if change.entry is not None]


def test_the_worker_ran_on_the_broker_under_test(broker_pipeline, broker, seeded):
    """Guards the fixture: a RabbitMQ run that fell back to the default Redis would pass unnoticed."""
    want = urllib.parse.urlsplit(broker_pipeline.env["ESIPROV_BROKER_URL"])
    connected = re.search(r"Connected to (\S+)", broker_pipeline.worker.log_path.read_text())
    assert connected, "the worker logged no broker connection"
    got = urllib.parse.urlsplit(connected[1])
    assert (got.scheme, got.hostname, got.port, got.path) == (broker.kind, want.hostname, want.port, want.path)


def test_both_job_documents_are_the_seeds(broker_pipeline, seeded):
    written = [value for change in history(broker_pipeline.store, keys.JOBS, seeded)
               if change.entry is not None for value in [change.entry.value]]
    want = [_strip(seed.record("/jobs/all/", 0)), _strip(seed.record("/jobs/all/", 1))]
    assert [_strip(value) for value in written] == want


def test_the_heat_stacks_document_has_the_seeds_shape_and_a_complete_stack(broker_pipeline, seeded):
    got = broker_pipeline.store.value(keys.heat_stack(PORT, seed.PORT_ID))
    want = seed.record("/esi-worker/heat_stacks/")
    assert set(got) == set(want)
    for name in ("stack_id", "tenant_id", "stack_status", "status_reason", "id"):
        assert got[name] == want[name], name
    # Heat lists outputs in its own order, not the template's
    assert sorted((o["output_key"], o["description"]) for o in got["output"]) == \
        sorted((o["output_key"], o["description"]) for o in want["output"])
    assert all(set(o) <= {"output_key", "output_value", "output_error", "description"} for o in got["output"])


def test_job_state_gains_heat_outputs_then_state_monitoring_and_is_removed(broker_pipeline, seeded):
    key = keys.job_state(PORT, seed.PORT_ID)
    outputs = broker_pipeline.store.value(keys.heat_stack(PORT, seed.PORT_ID))["output"]
    assert _history(broker_pipeline.store, key, seeded) == [
        {"heat_outputs": outputs},
        {"heat_outputs": outputs, "state_monitoring": {"port": "ACTIVE"}},
    ]
    assert set(seed.record("/esi-worker/job_state/", 1)) == {"heat_outputs", "state_monitoring"}
    assert broker_pipeline.store.get(key) is None


def test_state_is_the_seeds_with_json_encoded_values(broker_pipeline, seeded):
    outputs = broker_pipeline.store.value(keys.heat_stack(PORT, seed.PORT_ID))["output"]
    want = seed.record("/state/")
    want["state"]["heat_outputs"] = json.dumps(outputs)
    assert broker_pipeline.store.value(keys.state(PORT, seed.PORT_ID)) == want


def test_monitoring_is_the_seeds(broker_pipeline, seeded):
    assert broker_pipeline.store.value(keys.monitoring(PORT, seed.PORT_ID)) == seed.record("/monitoring/")


def test_finished_jobs_are_removed(broker_pipeline, seeded):
    entries, _ = broker_pipeline.store.range(keys.JOBS)
    assert [e.key for e in entries if seed.PORT_ID in e.key] == []


def test_the_port_stack_really_exists_in_heat_on_the_device_stacks_router(broker_pipeline, seeded):
    heat = HeatClient(broker_pipeline.settings, seed.TENANT_ID)
    port_stack = heat.get(f"{PORT}_{seed.PORT_ID}")
    device_stack = heat.get(f"ese_device_{seed.DEVICE_ID}")
    assert port_stack.status == device_stack.status == "CREATE_COMPLETE"
    device_id = next(o["output_value"] for o in device_stack.outputs if o["output_key"] == "id")
    assert device_id
    assert broker_pipeline.store.value(keys.heat_stack("ese_device", seed.DEVICE_ID))["output"] == device_stack.outputs
