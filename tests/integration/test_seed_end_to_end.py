"""The seed's port create, end to end on real etcd, Redis, Celery, Heat and an emulated switch."""
from __future__ import annotations

import json

import pytest

from esiprov import keys
from esiprov.devenv.apiserver import put_config, wait_for_state
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
def seeded(pipeline):
    """Create the seed's device, then its port; return the etcd revision the port was written at."""
    store = pipeline.store
    put_config(store, "ese_device", seed.device_body())
    device_state = wait_for_state(store, "ese_device", seed.DEVICE_ID, 1, timeout=180)
    assert device_state["state"]["worker_state"] == "CREATE_COMPLETED", device_state
    _, before = store.range(keys.CONFIG, keys_only=True)
    config = seed.record("/config/")
    put_config(store, PORT, config["body"], config["version"])
    wait_for_state(store, PORT, seed.PORT_ID, 1, timeout=180)
    return before + 1


def _history(store, key, since):
    return [change.entry.value for change in store.history(key, since) if change.entry is not None]


def test_both_job_documents_are_the_seeds(pipeline, seeded):
    written = [value for change in pipeline.store.history(keys.JOBS, seeded)
               if change.entry is not None for value in [change.entry.value]]
    want = [_strip(seed.record("/jobs/all/", 0)), _strip(seed.record("/jobs/all/", 1))]
    assert [_strip(value) for value in written] == want


def test_the_heat_stacks_document_has_the_seeds_shape_and_a_complete_stack(pipeline, seeded):
    got = pipeline.store.value(keys.heat_stack(PORT, seed.PORT_ID))
    want = seed.record("/esi-worker/heat_stacks/")
    assert set(got) == set(want)
    for name in ("stack_id", "tenant_id", "stack_status", "status_reason", "id"):
        assert got[name] == want[name], name
    # Heat lists outputs in its own order, not the template's
    assert sorted((o["output_key"], o["description"]) for o in got["output"]) == \
        sorted((o["output_key"], o["description"]) for o in want["output"])
    assert all(set(o) <= {"output_key", "output_value", "output_error", "description"} for o in got["output"])


def test_job_state_gains_heat_outputs_then_state_monitoring_and_is_removed(pipeline, seeded):
    key = keys.job_state(PORT, seed.PORT_ID)
    outputs = pipeline.store.value(keys.heat_stack(PORT, seed.PORT_ID))["output"]
    assert _history(pipeline.store, key, seeded) == [
        {"heat_outputs": outputs},
        {"heat_outputs": outputs, "state_monitoring": {"port": "ACTIVE"}},
    ]
    assert set(seed.record("/esi-worker/job_state/", 1)) == {"heat_outputs", "state_monitoring"}
    assert pipeline.store.get(key) is None


def test_state_is_the_seeds_with_json_encoded_values(pipeline, seeded):
    outputs = pipeline.store.value(keys.heat_stack(PORT, seed.PORT_ID))["output"]
    want = seed.record("/state/")
    want["state"]["heat_outputs"] = json.dumps(outputs)
    assert pipeline.store.value(keys.state(PORT, seed.PORT_ID)) == want


def test_monitoring_is_the_seeds(pipeline, seeded):
    assert pipeline.store.value(keys.monitoring(PORT, seed.PORT_ID)) == seed.record("/monitoring/")


def test_finished_jobs_are_removed(pipeline, seeded):
    entries, _ = pipeline.store.range(keys.JOBS)
    assert [e.key for e in entries if seed.PORT_ID in e.key] == []


def test_the_port_stack_really_exists_in_heat_on_the_device_stacks_router(pipeline, seeded):
    heat = HeatClient(pipeline.settings, seed.TENANT_ID)
    port_stack = heat.get(f"{PORT}_{seed.PORT_ID}")
    device_stack = heat.get(f"ese_device_{seed.DEVICE_ID}")
    assert port_stack.status == device_stack.status == "CREATE_COMPLETE"
    device_id = next(o["output_value"] for o in device_stack.outputs if o["output_key"] == "id")
    assert device_id
    assert pipeline.store.value(keys.heat_stack("ese_device", seed.DEVICE_ID))["output"] == device_stack.outputs
