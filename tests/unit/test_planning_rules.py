"""Pure planning rules: job ids, actions, envelopes and the composed /state."""
import json
import re

import pytest

from esiprov.documents import BadConfig, JobId, ResourceVersion, parse_envelope
from esiprov.planner import CREATE, DELETE, MODIFY, next_action
from esiprov.publish import compose_state, worker_state

ID_GRAMMAR = re.compile(r"^create:heat_worker:ese_device:d1:2:[a-z0-9]{5}$")


def version(n, deleting=False):
    return ResourceVersion("ese_device", "d1", n, {}, deleting)


def test_job_ids_follow_the_reference_grammar_and_are_stable():
    first = str(JobId.make("create", "heat_worker", "ese_device", "d1", 2))
    assert ID_GRAMMAR.match(first)
    assert first == str(JobId.make("create", "heat_worker", "ese_device", "d1", 2))
    assert first != str(JobId.make("create", "heat_worker", "ese_device", "d1", 3))


def test_a_job_id_parses_back_into_the_parts_it_was_made_from():
    made = JobId.make("logical_delete", "monitoring_worker", "ese_physical_port", "p-1", 12)
    parsed = JobId.parse(str(made))
    assert parsed == made
    assert (parsed.resource, parsed.job_name) == (("ese_physical_port", "p-1"), "ese_physical_port:p-1:12")


@pytest.mark.parametrize("text", ["", "finalize:ese_device:d1:1", "create:heat_worker:ese_device:d1:v2:abcde",
                                  "create:heat_worker:ese_device::1:abcde", "a:b:c:d:1:e:f"])
def test_text_that_is_not_a_job_id_is_refused_by_parse_and_is_none_for_of(text):
    with pytest.raises(ValueError, match="is not a job id"):
        JobId.parse(text)
    assert JobId.of(text) is None


def test_no_state_means_create_a_newer_version_modify_and_a_deletion_logical_delete():
    assert next_action(version(1), None) == CREATE
    applied = {"state": {"worker_state": "CREATE_COMPLETED"}, "version": 1, "error": ""}
    assert next_action(version(2), applied) == MODIFY
    assert next_action(version(2, deleting=True), applied) == DELETE


def test_an_applied_or_older_version_needs_nothing():
    applied = {"state": {"worker_state": "CREATE_COMPLETED"}, "version": 2, "error": ""}
    assert next_action(version(2), applied) is None
    assert next_action(version(1), applied) is None


def test_a_failed_create_is_created_again_by_the_next_version():
    failed = {"state": {"worker_state": "CREATE_FAILED"}, "version": 1, "error": "boom"}
    assert next_action(version(2), failed) == CREATE


def test_the_envelope_body_may_be_a_json_string_or_an_object():
    as_string = parse_envelope("ese_device", "d1", {"body": json.dumps({"a": 1}), "version": 1})
    as_object = parse_envelope("ese_device", "d1", {"body": {"a": 1}, "version": 1})
    assert as_string.body == as_object.body == {"a": 1}


@pytest.mark.parametrize("raw, message", [
    ({"body": "{not json", "version": 1}, "body is not valid JSON"),
    ({"body": "[]", "version": 1}, "body must be a JSON object"),
    ({"body": "{}", "version": "x"}, "'version' must be a positive integer"),
    ("text", "not a JSON object"),
])
def test_a_broken_envelope_is_a_clear_error(raw, message):
    with pytest.raises(BadConfig, match=message):
        parse_envelope("ese_device", "d1", raw)


def test_state_values_that_are_not_strings_are_json_encoded_as_python_does():
    state = compose_state({"state_monitoring": {"port": "ACTIVE"}, "orchestration_state": "CREATE_COMPLETE"},
                          worker_state("create", "COMPLETED"))
    assert state == {"state_monitoring": "{\"port\": \"ACTIVE\"}", "orchestration_state": "CREATE_COMPLETE",
                     "worker_state": "CREATE_COMPLETED"}
    assert worker_state("logical_delete", "FAILED") == "DELETE_FAILED"
