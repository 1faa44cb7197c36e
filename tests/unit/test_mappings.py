"""The parameter-mapping grammar, evaluated without services."""
import json
from pathlib import Path

import pytest

from esiprov.mappings import Evaluator, MappingError, Subject

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference-data" / "plan_reference.json"
DEVICE = {"id": "dev-1", "hostname": "QFX-NW01", "management_ip_address": "127.0.161.33", "tor_agent_names": []}
PORT = {"id": "port-1", "name": "xe-0/0/4", "ese_device_id": "dev-1", "existing": "new",
        "primary": {"bgp_peer_ip": "127.0.0.9"}, "owner": "network:dhcp",
        "peers": [{"id": "dev-1"}, {"id": "dev-2"}]}
BODIES = {("ese_device", "dev-1"): DEVICE}
RELATIONS = {"ese_physical_port": {"ese_device_id": "ese_device"}}


def evaluate(mapping, body=PORT, rtype="ese_physical_port", version=3):
    return Evaluator(lambda t, i: BODIES.get((t, i)), RELATIONS)(mapping, Subject(rtype, body, version))


def reference():
    return json.loads(REFERENCE.read_text())


def test_p_reads_a_body_field():
    assert evaluate("Pname").param("n") == {"param": "n", "type": "value", "value": "xe-0/0/4", "resources": []}


def test_c_gives_a_string_constant_and_json_constant_keeps_its_type():
    assert evaluate("C6").value == "6"
    assert evaluate({"constant": 13}).value == 13


def test_v_gives_the_config_version():
    assert evaluate("Vauto_filled").value == 3


def test_f_follows_foreign_keys_and_lists_every_hop():
    resolved = evaluate("Fese_device+ese_device_id:hostname")
    assert resolved.value == "QFX-NW01"
    assert resolved.resources == ({"resource_type": "ese_device", "resource_id": "dev-1"},)


def test_m_gives_an_output_key_param_of_the_referenced_resource():
    resolved = evaluate("Mese_device:ese_device_id:id")
    assert resolved.type == "output_key"
    assert resolved.value == {"output_key": "id", "resource_type": "ese_device", "resource_id": "dev-1"}
    assert resolved.resources == ({"resource_type": "ese_device", "resource_id": "dev-1"},)


def test_o_reads_a_nested_field():
    assert evaluate("Oprimary:bgp_peer_ip").value == "127.0.0.9"


def test_a_concatenates_and_chooses_templates():
    assert evaluate("ACese_physical_port_&Pexisting").value == "ese_physical_port_new"


def test_json_field_with_path_uses_the_relations():
    resolved = evaluate({"field": "management_ip_address", "path": ["ese_device_id"]})
    assert resolved.value == "127.0.161.33"
    assert resolved.resources == ({"resource_type": "ese_device", "resource_id": "dev-1"},)


def test_json_typed_path_with_ignore_missing_gives_null_for_a_missing_resource():
    body = {**PORT, "ese_device_id": "gone"}
    mapping = {"field": "hostname", "path": [{"type": "ese_device", "id": "ese_device_id"}], "ignore_missing": True}
    assert evaluate(mapping, body).value is None


def test_json_nested_concatenate_and_conditional():
    assert evaluate({"nested": ["primary", "bgp_peer_ip"]}).value == "127.0.0.9"
    assert evaluate({"concatenate": [{"field": "name"}, "-x"]}).value == "xe-0/0/4-x"
    regexp = {"if_mapping": {"regexp": [{"field": "owner"}, {"constant": "network:dhcp|network:empty"}]},
              "then_mapping": {"constant": None}, "else_mapping": {"constant": "port"}}
    assert evaluate(regexp).value is None
    equal = {"if_mapping": {"equal": [{"field": "existing"}, {"constant": "old"}]},
             "then_mapping": {"constant": "a"}, "else_mapping": {"constant": "b"}}
    assert evaluate(equal).value == "b"


def test_for_field_gives_a_list_of_output_key_params():
    mapping = {"for_field": "peers", "for_mapping": {"path": [{"type": "ese_device", "id": "id"}], "output_key": "id"}}
    resolved = evaluate(mapping)
    assert resolved.type == "list"
    assert [item["value"]["resource_id"] for item in resolved.value] == ["dev-1", "dev-2"]
    assert all(item["type"] == "output_key" for item in resolved.value)


def test_a_missing_field_is_a_clear_error():
    with pytest.raises(MappingError, match="'hostname' is missing from the ese_physical_port body"):
        evaluate("Phostname")


def test_a_missing_referenced_resource_is_a_clear_error():
    with pytest.raises(MappingError, match="ese_device gone .*does not exist"):
        evaluate("Fese_device+ese_device_id:hostname", {**PORT, "ese_device_id": "gone"})


def test_an_unknown_operator_is_a_clear_error():
    with pytest.raises(MappingError, match="unknown mapping operator 'Z'"):
        evaluate("Zfoo")


@pytest.mark.parametrize("case", reference()["cases"], ids=lambda c: c["label"])
def test_reference_templates_give_the_reference_params(case):
    data = reference()
    bodies = {(c["rtype"], c["rid"]): c.get("body") or json.loads(c["raw_body"]) for c in data["cases"]}
    template_name = f"{case['rtype']}_{bodies[(case['rtype'], case['rid'])]['existing']}"
    mappings = next(t["body"]["parameter_mappings"] for t in data["templates"] if t["body"]["id"] == template_name)
    subject = Subject(case["rtype"], bodies[(case["rtype"], case["rid"])], case["want"]["version"], case["rid"])
    evaluator = Evaluator(lambda t, i: bodies.get((t, i)))
    got = [evaluator(m, subject).param(name) for name, m in mappings.items()]
    assert sorted(got, key=lambda p: p["param"]) == sorted(case["want"]["params"], key=lambda p: p["param"])
