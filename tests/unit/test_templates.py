"""Template and schema validation before anything is written, and template choice, without services."""

import pytest
import yaml

from esiprov import templates
from esiprov.documents import ResourceVersion
from esiprov.mappings import MappingError
from esiprov.templates import Schema, Template, TemplateError
from tests.data import plan_reference

HOT = """heat_template_version: 2013-05-23
parameters:
  name: {type: string}
  note: {type: string, default: ""}
resources: {}
"""
SCHEMA = Schema({"heat_worker": {"ese_device": "ACese_device_&Pexisting"}},
                {"ese_device": {"existing": "new"}}, {"ese_physical_port": {"ese_device_id": "ese_device"}})


def heat(id="t", mappings=None, text=HOT, handler="heat_worker"):
    return Template(id, handler, text, {"name": "Pname"} if mappings is None else mappings)


def problems(*found, schema=SCHEMA):
    with pytest.raises(TemplateError) as raised:
        templates.validate(schema, list(found))
    head, *lines = str(raised.value).split("\n")
    assert head == f"{len(lines)} problem{'s' if len(lines) > 1 else ''} in the templates; nothing was written:"
    return [line.strip() for line in lines]


def test_the_shipped_templates_are_valid():
    schema, found = templates.load_dir(templates.SHIPPED)
    assert sorted(t.id for t in found) == [
        "edge_router_monitoring", "er_physical_interface_monitoring", "ese_device_existing", "ese_device_monitoring",
        "ese_device_new", "ese_logical_port", "ese_logical_port_monitoring", "ese_physical_port_existing",
        "ese_physical_port_monitoring",
        "ese_physical_port_new", "network", "port"]
    assert "heat_worker" in schema.template_mappings


SHIPPED_CHOICES = [
    ("ese_device", {}, [("heat_worker", "ese_device_new"), ("monitoring_worker", "ese_device_monitoring")]),
    ("ese_physical_port", {"existing": "existing"},
     [("heat_worker", "ese_physical_port_existing"), ("monitoring_worker", "ese_physical_port_monitoring")]),
    ("network", {}, [("heat_worker", "network")]),
    ("port", {}, [("heat_worker", "port")]),
    ("port", {"device_owner": "physical_port"}, [("heat_worker", "port")]),
    ("port", {"device_owner": "network:dhcp"}, []),
    ("ese_logical_port", {}, [("heat_worker", "ese_logical_port"), ("monitoring_worker", "ese_logical_port_monitoring")]),
    ("edge_router", {}, [("monitoring_worker", "edge_router_monitoring")]),
    ("er_physical_interface", {}, [("monitoring_worker", "er_physical_interface_monitoring")]),
    ("subnet", {}, []),
]


@pytest.mark.parametrize(("rtype", "body", "want"), SHIPPED_CHOICES, ids=lambda v: str(v)[:40])
def test_the_shipped_schema_gives_each_type_its_templates_in_chain_order(rtype, body, want):
    schema, _ = templates.load_dir(templates.SHIPPED)
    assert choose(schema, body, rtype) == want


@pytest.mark.parametrize(("name", "minutes"), [("network", "3"), ("port", "13"), ("ese_logical_port", "6")])
def test_each_shipped_heat_template_has_the_reference_stack_timeout(name, minutes):
    _, found = templates.load_dir(templates.SHIPPED)
    assert next(t for t in found if t.id == name).parameter_mappings["heat_timeout"] == f"C{minutes}"


def test_the_reference_templates_are_valid():
    data = plan_reference()
    templates.validate(SCHEMA, [templates.parse_template(t["body"], t["key"]) for t in data["templates"]])


def test_heat_timeout_and_jinja_params_need_no_hot_parameter():
    text = HOT.replace("resources: {}", "resources:\n{% for port in jinja_ports %}"
                                        "  {{ port.name }}: {type: OS::Heat::None}\n{% endfor %}")
    templates.validate(SCHEMA, [heat(mappings={"name": "Pname", "heat_timeout": "C6", "jinja_ports": "Pports"},
                                     text=text)])


def test_a_bad_mapping_names_template_parameter_and_mapping():
    assert problems(heat(mappings={"name": "Zname"})) == [
        "template t parameter name (Zname): unknown operator 'Z' (a string mapping starts with one of P C V F M O A)"]
    assert problems(heat(mappings={"name": {"field": "a", "paht": ["x"]}})) == [
        ('template t parameter name ({"field": "a", "paht": ["x"]}): '
         "unknown key 'paht' beside 'field' (it may have path, ignore_missing)")]


def test_hot_parameters_and_mappings_must_agree():
    assert problems(heat(mappings={"name": "Pname", "colour": "Cred"}), heat("u", mappings={})) == [
        "template t parameter colour: not declared in the template's HOT parameters",
        "template u parameter name: declared without a default but not mapped (Heat would refuse the stack)"]


def test_the_template_text_must_be_hot():
    assert problems(heat(text="parameters: {}\n")) == [
        "template t: template_file has no heat_template_version (not a HOT template)"]
    assert problems(heat(text="heat_template_version: 1\nparameters: [a]\n")) == [
        "template t: template_file's parameters must be a mapping"]
    assert problems(heat(text="heat_template_version: 1\nparameters:\n  a: 1\n b: 2\n")) == [
        "template t: template_file is not valid YAML (line 4: expected <block end>, but found '<block mapping start>')"]


def test_jinja_must_parse_and_every_variable_must_be_supplied():
    assert problems(heat(text=HOT + "{% if x %}")) == [
        ("template t: template_file is not a valid Jinja template (line 6: Unexpected end of template. "
         "Jinja was looking for the following tags: 'elif' or 'else' or 'endif'. "
         "The innermost block that needs to be closed is 'if'.)")]
    assert problems(heat(text=HOT + "# {{ name }} {{ jinja_x }}")) == [
        "template t: template_file uses jinja_x, name, which no jinja_* parameter maps"]
    assert problems(heat("m", {"a": "Pa"}, "port: {{ b }}", "monitoring_worker")) == [
        "template m: template_file uses b, which no parameter maps"]


def test_a_monitoring_template_renders_to_one_target():
    templates.validate(SCHEMA, [heat("m", {"a": "Pa"}, "port: {type: physical_port, name: {{ a | tojson }}}",
                                     "monitoring_worker")])
    assert problems(heat("m", {"a": "Pa"}, "port: {{ a }}\nswitch: {}", "monitoring_worker")) == [
        "template m: template_file must render to one field whose value describes the target"]


def test_handler_schema_and_duplicates():
    schema = Schema({"heat_worker": {"ese_device": "Mx"}, "dns_worker": {}, "monitoring_worker": None},
                    {"ese_device": []}, {"ese_physical_port": {"ese_device_id": 1}})
    assert problems(heat(), heat(), heat("x", handler="dns_worker"), schema=schema) == [
        "template t: defined more than once",
        "schema template_mappings heat_worker ese_device (Mx): expected M<type>:<fk>:<output_key>",
        "schema template_mappings dns_worker: unknown handler (known: heat_worker, monitoring_worker)",
        "schema template_mappings monitoring_worker: must map resource types to template mappings",
        "schema relations: must map each resource type to {foreign-key field: type}",
        "schema defaults: must map each resource type to {field: default value}",
        "template x: unknown handler 'dns_worker' (known: heat_worker, monitoring_worker)"]


def write(directory, name, doc):
    (directory / name).write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))


def test_load_dir_reports_every_problem_of_every_file_at_once(tmp_path):
    write(tmp_path, "schema.yaml", SCHEMA.document())
    write(tmp_path, "a.yaml", {**heat("a", {"name": "P"}).body()})
    write(tmp_path, "b.yaml", "id: b\nhandler: [")
    write(tmp_path, "c.yaml", {"id": "c"})
    write(tmp_path, "d.yaml", heat("d", {"name": "Pname", "size": "C1"}).body())
    with pytest.raises(TemplateError) as raised:
        templates.load_dir(tmp_path)
    assert str(raised.value).split("\n") == [
        "4 problems in the templates; nothing was written:",
        f"  {tmp_path}/b.yaml: not valid YAML (line 2: expected the node content, but found '<stream end>')",
        f"  {tmp_path}/c.yaml: missing handler, template_file, parameter_mappings",
        "  template a parameter name (P): expected P<field>: '' is not a name",
        "  template d parameter size: not declared in the template's HOT parameters"]


def test_load_dir_without_a_schema_says_so(tmp_path):
    write(tmp_path, "a.yaml", heat("a").body())
    with pytest.raises(TemplateError, match="schema.yaml: cannot read \\(No such file or directory\\)"):
        templates.load_dir(tmp_path)


class Untouchable:
    """A store that fails the test if save() reads or writes anything."""

    def __getattr__(self, name):
        raise AssertionError(f"store.{name} used although the templates are invalid")


def test_save_writes_nothing_when_a_template_is_invalid():
    with pytest.raises(TemplateError, match="template t parameter name"):
        templates.save(Untouchable(), SCHEMA, [heat(mappings={"name": "Z"})])


# --- template choice --------------------------------------------------------------
def choose(schema, body, rtype="ese_device"):
    return schema.choose(ResourceVersion(rtype, "d1", 1, body), lambda t, i: None)


def test_template_choice_uses_the_schema_defaults_and_the_grammar():
    assert choose(SCHEMA, {}) == [("heat_worker", "ese_device_new")]
    assert choose(SCHEMA, {"existing": "existing"}) == [("heat_worker", "ese_device_existing")]
    assert choose(SCHEMA, {}, "location") == []


def test_a_template_mapping_giving_null_is_not_workable():
    port = {"if_mapping": {"regexp": [{"field": "device_owner"}, {"constant": "network:dhcp|network:empty"}]},
            "then_mapping": {"constant": None}, "else_mapping": {"constant": "port"}}
    schema = Schema({"heat_worker": {"port": port}})
    assert choose(schema, {"device_owner": "network:dhcp"}, "port") == []
    assert choose(schema, {"device_owner": "compute:nova"}, "port") == [("heat_worker", "port")]


def test_a_template_mapping_that_fails_names_handler_and_type():
    with pytest.raises(MappingError) as raised:
        choose(Schema({"heat_worker": {"ese_device": "ACese_device_&Pkind"}}), {})
    assert str(raised.value) == ("heat_worker template mapping of ese_device (ACese_device_&Pkind): "
                                 "field 'kind' is missing from the ese_device body")


# --- the sandbox: a template from etcd must not run code --------------------------
def escape(marker):
    """Jinja that, outside a sandbox, reaches ``os`` through a global and runs a shell command."""
    return "{{ cycler.__init__.__globals__.os.system('touch " + str(marker) + "') }}"


def test_a_template_reaching_for_python_internals_is_refused_at_load_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    through_a_param = heat("p", {"a": "Pa"}, "port: {{ a.__class__.__mro__ }}", "monitoring_worker")

    assert problems(heat("m", {"a": "Pa"}, f"port: {escape(marker)}", "monitoring_worker"), through_a_param) == [
        ("template m: the template tried something unsafe, which the sandbox refused "
         "(access to attribute '__init__' of 'type' object is unsafe)"),
        ("template p: the template tried something unsafe, which the sandbox refused "
         "(access to attribute '__class__' of '_Placeholder' object is unsafe)")]
    assert not marker.exists()


def test_rendering_an_unsafe_template_fails_naming_the_template_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(TemplateError) as raised:
        heat("m", {}, f"port: {escape(marker)}", "monitoring_worker").render({})
    assert str(raised.value) == ("template m: the template tried something unsafe, which the sandbox refused "
                                 "(access to attribute '__init__' of 'type' object is unsafe)")
    assert not marker.exists()


def test_the_sandbox_keeps_what_templates_use_loops_attributes_and_filters():
    text = "{% for p in jinja_ports %}{{ p.name | upper }}:{{ p['speed'] | tojson }} {% endfor %}"
    rendered = heat(text=text).render({"jinja_ports": [{"name": "xe-0/0/1", "speed": 10}]})
    assert rendered == "XE-0/0/1:10 "
