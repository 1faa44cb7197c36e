"""Bad configs end in a clear /state error, and the watcher goes on with the next resource."""
from __future__ import annotations

import uuid

import pytest

from esiprov import keys
from esiprov.devenv.apiserver import put_config, wait_for_state
from esiprov.devenv.process import wait_until
from tests import seed

pytestmark = pytest.mark.slow


def test_a_body_that_is_not_json_gives_create_failed_and_the_watcher_goes_on(pipeline):
    store = pipeline.store
    broken = str(uuid.uuid4())
    store.put(keys.config("ese_device", broken), {"body": "{not json", "version": 1, "marked_for_deletion": False})
    state = wait_for_state(store, "ese_device", broken, 1)
    assert state["state"] == {"worker_state": "CREATE_FAILED"}
    assert "body is not valid JSON" in state["error"]

    good = {**seed.device_body(), "id": str(uuid.uuid4()), "existing": "existing", "hostname": "QFX-OK"}
    put_config(store, "ese_device", good)
    assert wait_for_state(store, "ese_device", good["id"], 1, timeout=180)["state"]["worker_state"] == \
        "CREATE_COMPLETED"


def test_a_body_without_a_field_the_template_needs_gives_a_clear_error(pipeline):
    store = pipeline.store
    port = {"id": str(uuid.uuid4()), "ese_device_id": seed.DEVICE_ID, "tenant_id": seed.TENANT_ID}
    put_config(store, "ese_physical_port", port)
    state = wait_for_state(store, "ese_physical_port", port["id"], 1)
    assert state["state"] == {"worker_state": "CREATE_FAILED"}
    assert state["error"] == ("parameter physical_port_name (Pname): "
                              "field 'name' is missing from the ese_physical_port body")


def test_a_type_without_templates_is_read_complete(pipeline):
    location = {"id": str(uuid.uuid4()), "name": "dc-1"}
    put_config(pipeline.store, "location", location)
    assert wait_for_state(pipeline.store, "location", location["id"], 1) == \
        {"state": {"worker_state": "READ_COMPLETE"}, "version": 1, "error": ""}


def test_an_unreadable_newer_version_fails_once_and_never_deletes_what_was_provisioned(pipeline):
    store = pipeline.store
    device = {**seed.device_body(), "id": str(uuid.uuid4()), "existing": "existing", "hostname": "QFX-KEEP"}
    put_config(store, "ese_device", device)
    assert wait_for_state(store, "ese_device", device["id"], 1, timeout=180)["state"]["worker_state"] == \
        "CREATE_COMPLETED"
    store.put(keys.config("ese_device", device["id"]), {"body": "{oops", "version": 2, "marked_for_deletion": False})
    failed = wait_for_state(store, "ese_device", device["id"], 2)
    assert failed["state"] == {"worker_state": "MODIFY_FAILED"} and "not valid JSON" in failed["error"]

    # the same unreadable version again, as a replayed event would bring it: nothing may happen
    store.put(keys.config("ese_device", device["id"]), {"body": "{oops", "version": 2, "marked_for_deletion": False})
    wait_until(lambda: pipeline.watcher.log_path.read_text().count(f"ese_device {device['id']}: current") >= 1,
               10, "the watcher to reconcile the replayed version")

    assert store.value(keys.state("ese_device", device["id"])) == failed
    assert store.get(keys.workflow("ese_device", device["id"])) is None, "no delete was dispatched"
    assert store.value(keys.heat_stack("ese_device", device["id"]))["stack_status"] == "CREATE_COMPLETE"
