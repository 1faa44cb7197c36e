"""The rows of `esiprov state list`, and resource types given in the plural."""
from __future__ import annotations

from esiprov.resources import resource_row, singular_type

RESOURCE = ("ese_device", "d1")


def test_a_row_puts_config_state_and_monitoring_side_by_side():
    row = resource_row(RESOURCE, {"version": 3, "body": "{}"},
                       {"version": 2, "state": {"worker_state": "MODIFY_COMPLETED"}, "error": ""},
                       {"version": 2, "switch": "UP"})
    assert row.document() == {"resource_type": "ese_device", "resource_id": "d1", "version": 3, "state_version": 2,
                              "worker_state": "MODIFY_COMPLETED", "monitoring": {"switch": "UP"}, "error": "",
                              "marked_for_deletion": False}
    assert not row.failed
    assert row.cells()["monitoring"] == "switch: UP"


def test_a_planning_failure_is_a_failed_row_with_its_error():
    row = resource_row(RESOURCE, {"version": 1, "body": "{}"},
                       {"version": 1, "state": {"worker_state": "CREATE_FAILED"}, "error": "parameter x: missing"},
                       None)
    assert row.failed and row.error == "parameter x: missing" and row.monitoring == {}


def test_a_resource_with_a_state_and_no_config_has_no_version():
    row = resource_row(RESOURCE, None, {"version": 4, "state": {"worker_state": "DELETE_COMPLETED"}}, None)
    assert (row.version, row.state_version, row.worker_state) == (None, 4, "DELETE_COMPLETED")


def test_documents_that_are_not_json_objects_give_an_empty_row_not_an_error():
    row = resource_row(RESOURCE, "not json", ["a"], 7)
    assert (row.version, row.state_version, row.worker_state, row.monitoring, row.error) == (None, None, "", {}, "")


def test_a_version_that_is_not_a_whole_number_is_no_version():
    assert resource_row(RESOURCE, {"version": True}, {"version": "2"}, None).version is None


def test_a_config_marked_for_deletion_says_so():
    assert resource_row(RESOURCE, {"version": 2, "marked_for_deletion": True}, None, None).marked_for_deletion


def test_the_plural_of_the_etcd_keys_names_the_singular_type():
    assert singular_type("ese_devices", {"ese_device"}.__contains__) == "ese_device"


def test_a_singular_type_is_kept():
    assert singular_type("ese_device", {"ese_device"}.__contains__) == "ese_device"


def test_a_singular_type_ending_in_s_is_kept_when_it_exists():
    assert singular_type("ese_address", {"ese_address"}.__contains__) == "ese_address"


def test_a_name_that_names_no_type_either_way_is_kept_as_given():
    assert singular_type("nothings", set().__contains__) == "nothings"
