"""The parameter-mapping grammar, parsed and evaluated without services: one test per form and per error."""
import json

import pytest

from esiprov.mappings import Concat, Const, Evaluator, Field, Hop, MappingError, Output, Subject, Version, parse
from tests.data import plan_reference

DEVICE = {"id": "dev-1", "hostname": "QFX-NW01", "management_ip_address": "127.0.161.33", "tor_agent_names": []}
PORT = {"id": "port-1", "name": "xe-0/0/4", "ese_device_id": "dev-1", "existing": "new",
        "primary": {"bgp_peer_ip": "127.0.0.9"}, "owner": "network:dhcp",
        "peers": [{"id": "dev-1"}, {"id": "dev-2"}], "peer_ids": ["dev-1", "dev-2"]}
LOGICAL = {"id": "lp-1", "ese_physical_port_id": "port-1"}
BODIES = {("ese_device", "dev-1"): DEVICE, ("ese_physical_port", "port-1"): PORT}
RELATIONS = {"ese_physical_port": {"ese_device_id": "ese_device"},
             "ese_logical_port": {"ese_physical_port_id": "ese_physical_port"}}
DEV_1 = {"resource_type": "ese_device", "resource_id": "dev-1"}
PORT_1 = {"resource_type": "ese_physical_port", "resource_id": "port-1"}


def evaluator():
    return Evaluator(lambda t, i: BODIES.get((t, i)), RELATIONS)


def evaluate(mapping, body=PORT, rtype="ese_physical_port", version=3):
    return evaluator()(mapping, Subject(rtype, body, version))


# --- parsing gives a tree ---------------------------------------------------------
def test_string_forms_parse_into_a_tree():
    assert parse("C6") == Const("6")
    assert parse("Vauto_filled") == Version()
    assert parse("Fese_device+ese_device_id:hostname") == Field("hostname", (Hop("ese_device_id", "ese_device"),))
    assert parse("Mese_device:ese_device_id:id") == Output("id", (Hop("ese_device_id", "ese_device"),))
    assert parse("ACese_device_&Pexisting") == Concat((Const("ese_device_"), Field("existing")))


def test_each_mapping_is_parsed_once():
    assert parse({"field": "name"}) is parse({"field": "name"})


def test_a_parsed_tree_evaluates_like_its_mapping():
    assert evaluate(parse("Pname")) == evaluate("Pname")


# --- string forms -----------------------------------------------------------------
def test_p_reads_a_body_field():
    assert evaluate("Pname").param("n") == {"param": "n", "type": "value", "value": "xe-0/0/4", "resources": []}


def test_c_gives_a_string_constant_and_json_constant_keeps_its_type():
    assert evaluate("C6").value == "6"
    assert evaluate("C").value == ""
    assert evaluate({"constant": 13}).value == 13
    assert evaluate({"constant": None}).value is None


def test_a_list_constant_is_not_shared_between_jobs():
    evaluate({"constant": [1]}).value.append(2)
    assert evaluate({"constant": [1]}).value == [1]


def test_v_gives_the_config_version():
    assert evaluate("Vauto_filled").value == 3


def test_f_follows_foreign_keys_and_lists_every_hop():
    resolved = evaluate("Fese_device+ese_device_id:hostname")
    assert resolved.value == "QFX-NW01"
    assert resolved.resources == (DEV_1,)


def test_f_follows_several_hops():
    resolved = evaluate("Fese_physical_port+ese_physical_port_id:ese_device+ese_device_id:management_ip_address",
                        LOGICAL, "ese_logical_port")
    assert resolved.value == "127.0.161.33"
    assert resolved.resources == (PORT_1, DEV_1)


def test_m_gives_an_output_key_param_of_the_referenced_resource():
    resolved = evaluate("Mese_device:ese_device_id:id")
    assert resolved.type == "output_key"
    assert resolved.value == {"output_key": "id", "resource_type": "ese_device", "resource_id": "dev-1"}
    assert resolved.resources == (DEV_1,)


def test_o_reads_a_nested_field():
    assert evaluate("Oprimary:bgp_peer_ip").value == "127.0.0.9"


def test_a_concatenates_and_chooses_templates():
    assert evaluate("ACese_physical_port_&Pexisting").value == "ese_physical_port_new"
    assert evaluate("APname&C_IN&Vx").value == "xe-0/0/4_IN3"


def test_a_with_a_null_part_gives_null():
    assert evaluate("ACese_&Pnothing", {"nothing": None}).value is None


# --- JSON forms -------------------------------------------------------------------
def test_json_field_reads_a_body_field():
    assert evaluate({"field": "name"}).value == "xe-0/0/4"


def test_json_field_with_path_uses_the_relations():
    resolved = evaluate({"field": "management_ip_address", "path": ["ese_device_id"]})
    assert resolved.value == "127.0.161.33"
    assert resolved.resources == (DEV_1,)
    two_hops = {"field": "hostname", "path": ["ese_physical_port_id", "ese_device_id"]}
    assert evaluate(two_hops, LOGICAL, "ese_logical_port").resources == (PORT_1, DEV_1)


def test_json_typed_path_needs_no_relation():
    mapping = {"field": "hostname", "path": [{"type": "ese_device", "id": "ese_device_id"}]}
    assert evaluate(mapping, rtype="other").value == "QFX-NW01"


def test_json_typed_path_with_ignore_missing_gives_null_for_a_missing_resource():
    body = {**PORT, "ese_device_id": "gone"}
    mapping = {"field": "hostname", "path": [{"type": "ese_device", "id": "ese_device_id"}], "ignore_missing": True}
    assert evaluate(mapping, body).param("h") == {"param": "h", "type": "value", "value": None, "resources": []}
    assert evaluate({"field": "nothing", "ignore_missing": True}).value is None


def test_json_output_key_with_path():
    resolved = evaluate({"output_key": "id", "path": ["ese_physical_port_id", "ese_device_id"]},
                        LOGICAL, "ese_logical_port")
    assert resolved.type == "output_key"
    assert resolved.value == {"output_key": "id", **DEV_1}
    assert resolved.resources == (PORT_1, DEV_1)


def test_json_nested():
    assert evaluate({"nested": ["primary", "bgp_peer_ip"]}).value == "127.0.0.9"


def test_json_concatenate_of_mappings_and_literal_strings():
    assert evaluate({"concatenate": [{"field": "name"}, "-x", "Pname"]}).value == "xe-0/0/4-xPname"
    resolved = evaluate({"concatenate": [{"field": "hostname", "path": ["ese_device_id"]}, "/", {"field": "name"}]})
    assert (resolved.value, resolved.resources) == ("QFX-NW01/xe-0/0/4", (DEV_1,))


def test_if_mapping_regexp():
    regexp = {"if_mapping": {"regexp": [{"field": "owner"}, {"constant": "network:dhcp|network:empty"}]},
              "then_mapping": {"constant": None}, "else_mapping": {"constant": "port"}}
    assert evaluate(regexp).value is None
    assert evaluate(regexp, {**PORT, "owner": "compute:nova"}).value == "port"


def test_if_mapping_equal_and_its_resources():
    equal = {"if_mapping": {"equal": [{"field": "hostname", "path": ["ese_device_id"]}, {"constant": "QFX-NW01"}]},
             "then_mapping": "Mese_device:ese_device_id:id", "else_mapping": {"constant": "b"}}
    resolved = evaluate(equal)
    assert resolved.type == "output_key"
    assert resolved.resources == (DEV_1, DEV_1)  # the reference keeps duplicates
    assert evaluate({**equal, "if_mapping": {"equal": ["Pexisting", "Cold"]}}).value == "b"


def test_if_mapping_without_a_branch_gives_null():
    assert evaluate({"if_mapping": {"equal": ["Pexisting", "Cold"]}, "then_mapping": "Cx"}).value is None


def test_for_field_gives_a_list_of_output_key_params():
    mapping = {"for_field": "peers", "for_mapping": {"path": [{"type": "ese_device", "id": "id"}], "output_key": "id"}}
    resolved = evaluate(mapping)
    assert resolved.type == "list"
    assert [item["value"] for item in resolved.value] == [{"output_key": "id", **DEV_1},
                                                          {"output_key": "id", "resource_type": "ese_device",
                                                           "resource_id": "dev-2"}]
    assert [r["resource_id"] for r in resolved.resources] == ["dev-1", "dev-2"]


def test_a_for_field_param_is_shaped_as_the_reference_recorded_virtual_machine_interface_ids():
    """seed-breadth §2.2: the list names every port; each item is named after the param, with no resources."""
    logical = {"id": "lp-1", "port_ids": ["3a04", "5b11"]}
    mapping = {"for_field": "port_ids", "for_mapping": {"path": [{"type": "port", "id": ""}], "output_key": "id"}}
    param = evaluator().param("virtual_machine_interface_ids", mapping, Subject("ese_logical_port", logical, 1))
    port = [{"resource_type": "port", "resource_id": rid} for rid in ("3a04", "5b11")]
    assert param == {"param": "virtual_machine_interface_ids", "type": "list", "resources": port, "value": [
        {"param": "virtual_machine_interface_ids", "type": "output_key", "value": {"output_key": "id", **ref},
         "resources": []} for ref in port]}


def test_a_for_field_over_an_empty_list_is_an_empty_list_param():
    mapping = {"for_field": "port_ids", "for_mapping": {"path": [{"type": "port", "id": ""}], "output_key": "id"}}
    param = evaluator().param("ids", mapping, Subject("ese_logical_port", {"port_ids": []}, 1))
    assert param == {"param": "ids", "type": "list", "value": [], "resources": []}


def test_for_field_of_plain_ids():
    mapping = {"for_field": "peer_ids", "for_mapping": {"path": [{"type": "ese_device", "id": ""}], "output_key": "id"}}
    assert [item["value"]["resource_id"] for item in evaluate(mapping).value] == ["dev-1", "dev-2"]


# --- malformed mappings: a parse error names the part and what was expected ----------
MALFORMED = [
    ("", "'': an empty string is not a mapping"),
    ("Zfoo", "'Zfoo': unknown operator 'Z' (a string mapping starts with one of P C V F M O A)"),
    ("P", "'P': expected P<field>: '' is not a name"),
    ("Fese_device:hostname", "hop 'ese_device' is not <type>+<fk>"),
    ("F+ese_device_id:hostname", "hop '+ese_device_id' is not <type>+<fk>"),
    ("Fhostname", "'Fhostname': expected F<type>+<fk>:[<type>+<fk>:…]<field>"),
    ("Fese_device+ese_device_id:", "part 2 is empty"),
    ("Mese_device:ese_device_id", "'Mese_device:ese_device_id': expected M<type>:<fk>:<output_key>"),
    ("Mese_device:a:b:c", "expected M<type>:<fk>:<output_key>"),
    ("Mese_device::id", "part 2 is empty"),
    ("Oprimary", "'Oprimary': expected O<field>:<sub>"),
    ("ACx&", "'ACx&': expected A<expr>&<expr>…: part 2 is empty"),
    ("ACx&Zy", "'Zy': unknown operator 'Z'"),
    (5, "5: a mapping is a string or an object, not a number"),
    (None, "null: a mapping is a string or an object, not null"),
    (["Pname"], "a mapping is a string or an object, not a list"),
    ({}, "{}: no form: an object mapping has exactly one of constant, field, output_key"),
    ({"field": "a", "constant": 1}, "more than one form (constant, field)"),
    ({"field": "a", "paht": []}, "unknown key 'paht' beside 'field' (it may have path, ignore_missing)"),
    ({"constant": 1, "x": 2}, "unknown key 'x' beside 'constant' (it may have no other key)"),
    ({"field": ""}, "expected a field name: '' is not a name"),
    ({"field": 3}, "expected a field name: 3 is not a name"),
    ({"field": "a", "path": "ese_device_id"}, "path is a string, not a list"),
    ({"field": "a", "path": [{"type": "t"}]}, 'path step {"type": "t"} is neither a foreign-key field name'),
    ({"field": "a", "path": [7]}, "path step 7 is neither"),
    ({"field": "a", "ignore_missing": "yes"}, "ignore_missing is 'yes', not true or false"),
    ({"output_key": "id"}, "an output_key mapping needs a path"),
    ({"output_key": "", "path": ["x"]}, "expected an output key"),
    ({"nested": []}, "nested needs a non-empty list of field names"),
    ({"nested": ["a", 1]}, "1 is not a name"),
    ({"concatenate": "Pname"}, "concatenate needs a non-empty list"),
    ({"concatenate": [5]}, "5: a mapping is a string or an object, not a number"),
    ({"concatenate": ["x", "Zq", {"field": "a"}, {"bad": 1}]}, '{"bad": 1}: no form'),
    ({"if_mapping": {"same": ["Pa", "Pb"]}}, 'if_mapping needs {"equal": [m1, m2]} or {"regexp": [m, pattern]}'),
    ({"if_mapping": "Pa"}, "if_mapping needs"),
    ({"if_mapping": {"equal": ["Pa", "Pb"], "regexp": ["Pa", "Cb"]}}, "if_mapping needs"),
    ({"if_mapping": {"equal": ["Pa"]}}, 'equal has ["Pa"], not a list of two mappings'),
    ({"if_mapping": {"regexp": ["Pa", "C("]}}, "regexp '(' is invalid: missing )"),
    ({"if_mapping": {"equal": ["Pa", "Pb"]}, "then": "Cx"}, "unknown key 'then' beside 'if_mapping'"),
    ({"if_mapping": {"equal": ["Pa", "Pb"]}, "then_mapping": "Zx"}, "'Zx': unknown operator"),
    ({"for_field": "peers"}, 'for_mapping needs {"path": [{"type": …, "id": <subkey or "">}], "output_key": …}'),
    ({"for_field": "peers", "for_mapping": {"path": [], "output_key": "id"}}, "for_mapping needs"),
    ({"for_field": "peers", "for_mapping": {"path": [{"type": "t", "id": 1}], "output_key": "id"}},
     "for_mapping needs"),
    ({"for_field": "peers", "for_mapping": {"path": [{"type": "", "id": ""}], "output_key": "id"}},
     "expected a resource type in for_mapping's path"),
    ({"for_field": [], "for_mapping": {"path": [{"type": "t", "id": ""}], "output_key": "id"}},
     "expected a list field name"),
]


@pytest.mark.parametrize("mapping, message", MALFORMED, ids=[json.dumps(m) for m, _ in MALFORMED])
def test_a_malformed_mapping_is_a_clear_parse_error(mapping, message):
    with pytest.raises(MappingError) as raised:
        parse(mapping)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


# --- errors when evaluating -------------------------------------------------------
def test_a_missing_field_is_a_clear_error():
    with pytest.raises(MappingError, match="^field 'hostname' is missing from the ese_physical_port body$"):
        evaluate("Phostname")


def test_a_missing_nested_field_is_a_clear_error():
    with pytest.raises(MappingError, match="^field 'primary.nope' is missing from the ese_physical_port body$"):
        evaluate("Oprimary:nope")


@pytest.mark.parametrize("mapping", ["Fese_device+ese_device_id:hostname", "Mese_device:ese_device_id:id",
                                     {"field": "hostname", "path": ["ese_device_id"]}])
def test_a_missing_referenced_resource_is_a_clear_error(mapping):
    with pytest.raises(MappingError) as raised:
        evaluate(mapping, {**PORT, "ese_device_id": "gone"})
    assert str(raised.value) == "ese_device gone (referenced by ese_device_id of ese_physical_port) does not exist"


def test_a_foreign_key_that_is_not_an_id_is_a_clear_error():
    with pytest.raises(MappingError) as raised:
        evaluate("Fese_device+ese_device_id:hostname", {**PORT, "ese_device_id": None})
    assert str(raised.value) == "field 'ese_device_id' of the ese_physical_port body is null, not an id of ese_device"


def test_a_path_name_without_a_relation_is_a_clear_error():
    with pytest.raises(MappingError, match="no relation says which type field 'owner' of ese_physical_port points at"):
        evaluate({"field": "x", "path": ["owner"]})


def test_for_field_of_a_non_list_is_a_clear_error():
    mapping = {"for_field": "name", "for_mapping": {"path": [{"type": "ese_device", "id": ""}], "output_key": "id"}}
    with pytest.raises(MappingError, match="^field 'name' of the ese_physical_port body is a string, not a list$"):
        evaluate(mapping)


def test_for_field_item_without_its_id_is_a_clear_error():
    mapping = {"for_field": "peers",
               "for_mapping": {"path": [{"type": "ese_device", "id": "uuid"}], "output_key": "id"}}
    with pytest.raises(MappingError, match="^item 0 of field 'peers' has no 'uuid'$"):
        evaluate(mapping)


def test_a_regexp_from_a_field_that_is_invalid_is_a_clear_error():
    with pytest.raises(MappingError, match="regexp '\\[' is invalid"):
        evaluate({"if_mapping": {"regexp": ["Pname", "Ppattern"]}}, {**PORT, "pattern": "["})


def test_a_param_error_names_the_parameter_and_its_mapping():
    ev, subject = evaluator(), Subject("ese_physical_port", {**PORT, "ese_device_id": "123"}, 1)
    with pytest.raises(MappingError) as raised:
        ev.param("physical_device_hostname", "Fese_device+ese_device_id:hostname", subject)
    assert str(raised.value) == ("parameter physical_device_hostname (Fese_device+ese_device_id:hostname): "
                                 "ese_device 123 (referenced by ese_device_id of ese_physical_port) does not exist")
    with pytest.raises(MappingError) as raised:
        ev.param("n", {"field": "x", "paht": []}, subject)
    assert str(raised.value) == ('parameter n ({"field": "x", "paht": []}): '
                                 "unknown key 'paht' beside 'field' (it may have path, ignore_missing)")


# --- golden: the reference system's recorded params --------------------------------
@pytest.mark.parametrize("case", plan_reference()["cases"], ids=lambda c: c["label"])
def test_reference_templates_give_the_reference_params(case):
    data = plan_reference()
    bodies = {(c["rtype"], c["rid"]): c.get("body") or json.loads(c["raw_body"]) for c in data["cases"]}
    template_name = f"{case['rtype']}_{bodies[(case['rtype'], case['rid'])]['existing']}"
    mappings = next(t["body"]["parameter_mappings"] for t in data["templates"] if t["body"]["id"] == template_name)
    subject = Subject(case["rtype"], bodies[(case["rtype"], case["rid"])], case["want"]["version"], case["rid"])
    evaluator = Evaluator(lambda t, i: bodies.get((t, i)))
    got = [evaluator.param(name, m, subject) for name, m in mappings.items()]
    assert sorted(got, key=lambda p: p["param"]) == sorted(case["want"]["params"], key=lambda p: p["param"])
