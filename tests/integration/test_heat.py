"""HeatClient against real OpenStack Heat with the local Contrail plugin (tests/fixtures/heat.py)."""
from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from heatclient import client as heat_client

from esiprov import templates
from esiprov.devenv.heatserver import HeatServer
from esiprov.devenv.process import free_port, wait_until
from esiprov.heat import HeatClient, HeatRejected, HeatUnavailable, Stack
from esiprov.settings import Settings
from tests.fixtures.heat import HEAT_TOKEN

TENANT = "tenant-a"
TEMPLATES = Path(__file__).resolve().parents[2] / "heat_templates"

ROUTER = """
heat_template_version: 2013-05-23
parameters:
  name: {type: string}
  management_ip: {type: string}
resources:
  router:
    type: OS::Contrail::PhysicalRouter
    properties:
      name: {get_param: name}
      management_ip: {get_param: management_ip}
      vendor_name: Juniper
      product_name: qfx5100
      vnc_managed: false
      user_credentials: {username: admin, password: secret}
      virtual_routers: [tor-agent-1, tsn-1]
outputs:
  id: {value: {get_resource: router}}
  name: {value: {get_attr: [router, name]}}
  fq_name: {value: {get_attr: [router, fq_name]}}
  management_ip: {value: {get_attr: [router, show, management_ip]}}
"""


def router_params(name: str, management_ip: str = "192.0.2.10") -> dict[str, str]:
    return {"name": name, "management_ip": management_ip}


def contrail_uuid(contrail_type: str, *fq_name: str) -> str:
    """What the plugin (heat_files/plugins/contrail.py) reports as the object's id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{contrail_type}:{':'.join(fq_name)}"))


def outputs(stack: Stack) -> dict[str, Any]:
    return {output["output_key"]: output["output_value"] for output in stack.outputs}


@pytest.fixture
def heat(heat_settings: Settings) -> HeatClient:
    return HeatClient(heat_settings, TENANT)


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A stack name of this test's own (all tests share one Heat)."""
    return request.node.name.removeprefix("test_")[:40].replace("[", "-").strip("]") + "_" + uuid.uuid4().hex[:6]


def wait_for(heat: HeatClient, name: str, done: Callable[[Stack | None], bool], timeout: float = 60.0) -> Stack | None:
    """The stack once ``done(stack)`` holds (None: it is gone), checked every 0.2 s for ``timeout`` s."""
    seen: list[Stack | None] = [None]

    def reached() -> bool:
        seen[0] = heat.get(name)
        return done(seen[0])
    wait_until(reached, timeout, f"stack {name} to settle", interval=0.2)
    return seen[0]


def settled(heat: HeatClient, name: str, action: str) -> Stack:
    stack = wait_for(heat, name, lambda s: s is not None and s.action == action and not s.in_progress)
    assert stack is not None
    return stack


def test_create_reaches_CREATE_COMPLETE_with_the_outputs_of_a_physical_router_stack(
        heat: HeatClient, name: str) -> None:
    heat.create(name, ROUTER, router_params("sw-create"), timeout_mins=5)
    stack = settled(heat, name, "CREATE")
    assert (stack.status, stack.complete, stack.failed, stack.name) == ("CREATE_COMPLETE", True, False, name)
    assert outputs(stack) == {
        "id": contrail_uuid("physical_router", "default-global-system-config", "sw-create"),
        "name": "sw-create",
        "fq_name": ["default-global-system-config", "sw-create"],
        "management_ip": "192.0.2.10",
    }
    assert all("output_error" not in output for output in stack.outputs)


def test_a_second_create_of_the_same_name_is_not_an_error_and_leaves_one_stack(
        heat: HeatClient, heat_server: HeatServer, name: str) -> None:
    heat.create(name, ROUTER, router_params("sw-twice"), timeout_mins=None)
    first = settled(heat, name, "CREATE")
    heat.create(name, ROUTER, router_params("sw-twice"), timeout_mins=None)
    assert settled(heat, name, "CREATE").id == first.id
    raw = heat_client.Client("1", endpoint=heat_server.url.format(tenant_id=TENANT), token=HEAT_TOKEN)
    assert [s.id for s in raw.stacks.list(filters={"name": name})] == [first.id]


def test_update_changes_the_outputs_in_place_and_ends_UPDATE_COMPLETE(heat: HeatClient, name: str) -> None:
    heat.create(name, ROUTER, router_params("sw-update"), timeout_mins=None)
    created = settled(heat, name, "CREATE")
    heat.update(name, ROUTER, router_params("sw-update", "192.0.2.99"), timeout_mins=5)
    updated = settled(heat, name, "UPDATE")
    assert updated.status == "UPDATE_COMPLETE"
    assert outputs(updated)["management_ip"] == "192.0.2.99"
    assert outputs(updated)["id"] == outputs(created)["id"]


def test_a_renamed_router_is_replaced_and_gets_the_id_of_its_new_name(heat: HeatClient, name: str) -> None:
    heat.create(name, ROUTER, router_params("sw-old"), timeout_mins=None)
    settled(heat, name, "CREATE")
    heat.update(name, ROUTER, router_params("sw-new"), timeout_mins=None)
    updated = settled(heat, name, "UPDATE")
    assert updated.status == "UPDATE_COMPLETE"
    assert outputs(updated)["id"] == contrail_uuid("physical_router", "default-global-system-config", "sw-new")


def test_a_deleted_stack_reads_as_None(heat: HeatClient, name: str) -> None:
    heat.create(name, ROUTER, router_params("sw-delete"), timeout_mins=None)
    settled(heat, name, "CREATE")
    heat.delete(name)
    assert wait_for(heat, name, lambda stack: stack is None) is None
    heat.delete(name)  # and deleting it again is fine


def test_deleting_a_stack_that_never_existed_is_fine(heat: HeatClient, name: str) -> None:
    heat.delete(name)
    assert heat.get(name) is None


#: a stack that stays CREATE_IN_PROGRESS for a few seconds (Heat's own test resource)
SLOW = """
heat_template_version: 2013-05-23
resources:
  slow: {type: OS::Heat::TestResource, properties: {wait_secs: 3}}
"""


def test_the_statuses_of_many_stacks_come_in_one_list_without_the_ones_that_do_not_exist(
        heat: HeatClient, name: str) -> None:
    slow, quick, missing = f"{name}-slow", f"{name}-quick", f"{name}-missing"
    heat.create(slow, SLOW, {}, timeout_mins=None)
    heat.create(quick, ROUTER, router_params("sw-list"), timeout_mins=None)
    settled(heat, quick, "CREATE")

    listed = heat.statuses([slow, quick, missing])

    assert sorted(listed) == [quick, slow]
    assert listed[slow].status == "CREATE_IN_PROGRESS" and listed[slow].in_progress
    assert listed[quick].revision == heat.get(quick).revision == ["CREATE_COMPLETE", ""]
    assert settled(heat, slow, "CREATE").revision == heat.statuses([slow])[slow].revision
    heat.delete(quick)
    wait_for(heat, quick, lambda stack: stack is None)
    assert heat.statuses([quick, slow]).keys() == {slow}, "a deleted stack is not listed"


def test_updating_a_stack_that_does_not_exist_is_rejected(heat: HeatClient, name: str) -> None:
    with pytest.raises(HeatRejected, match=f"update stack {name}: HTTP 404 .*could not be found"):
        heat.update(name, ROUTER, router_params("sw-ghost"), timeout_mins=None)


@pytest.mark.parametrize("template, reason", [
    (ROUTER.replace("OS::Contrail::PhysicalRouter", "OS::Contrail::NoSuchThing"),
     r"HTTP 400 .*The Resource Type \(OS::Contrail::NoSuchThing\) could not be found"),
    (ROUTER.replace("[router, fq_name]", "[router, serial_number]"),
     r"HTTP 400 .*The Referenced Attribute \(router serial_number\) is incorrect"),
    (ROUTER.replace("management_ip: {get_param: management_ip}", "management_ip: {get_param: management_ip}\n"
                    "      colour: blue"), r"HTTP 400 .*Unknown Property colour"),
    ("heat_template_version: 2013-05-23\nresources: [unclosed", r"HTTP 400 .*while parsing a flow"),
], ids=["unknown-type", "undeclared-attribute", "unknown-property", "bad-yaml"])
def test_a_bad_template_is_rejected_with_heats_reason_and_no_stack_is_left(
        heat: HeatClient, name: str, template: str, reason: str) -> None:
    with pytest.raises(HeatRejected, match=reason) as rejected:
        heat.create(name, template, router_params("sw-bad"), timeout_mins=None)
    assert HEAT_TOKEN not in str(rejected.value)
    assert heat.get(name) is None


def test_a_missing_required_parameter_is_rejected(heat: HeatClient, name: str) -> None:
    with pytest.raises(HeatRejected, match=r"HTTP 400 .*management_ip"):
        heat.create(name, ROUTER, {"name": "sw-no-ip"}, timeout_mins=None)


def test_a_Lab_Fail_stack_ends_CREATE_FAILED_with_its_reason(heat: HeatClient, name: str) -> None:
    template = """
heat_template_version: 2013-05-23
resources:
  doomed:
    type: Lab::Fail
    properties: {message: the switch is on fire}
"""
    heat.create(name, template, {}, timeout_mins=None)
    stack = settled(heat, name, "CREATE")
    assert (stack.status, stack.failed, stack.complete) == ("CREATE_FAILED", True, False)
    assert "the switch is on fire" in stack.status_reason


def test_an_output_whose_attribute_raises_keeps_output_error(heat: HeatClient, name: str) -> None:
    template = """
heat_template_version: 2013-05-23
resources:
  broken: {type: Lab::BrokenAttr}
outputs:
  bad: {value: {get_attr: [broken, boom]}}
"""
    heat.create(name, template, {}, timeout_mins=None)
    stack = settled(heat, name, "CREATE")
    assert stack.status == "CREATE_COMPLETE"
    [bad] = stack.outputs
    assert bad["output_key"] == "bad" and bad["output_value"] is None
    assert bad["output_error"] == "The Referenced Attribute (broken boom) is incorrect."


def test_an_existing_interface_lookup_finds_the_id_the_new_interface_got(heat: HeatClient, name: str) -> None:
    new = """
heat_template_version: 2013-05-23
resources:
  port:
    type: OS::Contrail::PhysicalInterface
    properties: {name: xe-0/0/3, physical_router: sw-port}
outputs:
  id: {value: {get_resource: port}}
  name: {value: {get_attr: [port, name]}}
"""
    existing = """
heat_template_version: 2013-05-23
resources:
  port:
    type: OS::Contrail::ExistingResource
    properties:
      fq_name: [default-global-system-config, sw-port, xe-0/0/3]
      resource_type: physical_interface
outputs:
  id: {value: {get_resource: port}}
  name: {value: {get_attr: [port, name]}}
"""
    heat.create(name + "_new", new, {}, timeout_mins=None)
    heat.create(name + "_existing", existing, {}, timeout_mins=None)
    made, found = settled(heat, name + "_new", "CREATE"), settled(heat, name + "_existing", "CREATE")
    assert outputs(made) == outputs(found) == {
        "id": contrail_uuid("physical_interface", "default-global-system-config", "sw-port", "xe-0/0/3"),
        "name": "xe-0/0/3"}


def shipped_heat_templates() -> list[Path]:
    return sorted(path for path in TEMPLATES.glob("*.yaml")
                  if (yaml.safe_load(path.read_text()) or {}).get("handler") == "heat_worker")


#: values of the shipped templates' jinja_* params, as a worker renders them: a port with two fixed ips
JINJA_SAMPLES = {"jinja_fixed_ips": [{"subnet_id": "subnet-1", "ip_address": "10.0.0.2"}, {"subnet_id": "subnet-2"}],
                 "jinja_device_owner": "physical_port", "jinja_attached": False, "jinja_port_ids": ["port-1"]}
#: parameters whose value Heat (or the plugin) constrains: any sample of their type would not do
CHOSEN_SAMPLES = {"logical_port_type": "L2"}


@pytest.mark.parametrize("path", shipped_heat_templates(), ids=lambda path: path.stem)
def test_a_shipped_heat_template_builds_on_the_local_contrail_types(
        heat: HeatClient, name: str, path: Path) -> None:
    template = templates.parse_template(yaml.safe_load(path.read_text()), str(path))
    jinja = {key: value for key, value in JINJA_SAMPLES.items() if key in template.parameter_mappings}
    text = template.render(jinja)
    sample = {"string": "sample-1", "boolean": False, "number": 1, "comma_delimited_list": "a,b",
              "json": {}}
    parameters = {key: CHOSEN_SAMPLES.get(key, sample[spec["type"]])
                  for key, spec in yaml.safe_load(text)["parameters"].items()}
    heat.create(name, text, parameters, timeout_mins=None)
    stack = settled(heat, name, "CREATE")
    assert stack.status == "CREATE_COMPLETE", stack.status_reason
    assert stack.outputs and all(o.get("output_value") is not None for o in stack.outputs), stack.outputs


def shipped(template_id: str, **jinja: Any) -> str:
    """A shipped heat template's text, rendered as a worker renders it."""
    path = TEMPLATES / f"{template_id}.yaml"
    return templates.parse_template(yaml.safe_load(path.read_text()), str(path)).render(jinja)


def test_a_logical_interface_lists_the_port_stacks_interfaces_on_the_network_stacks_network(
        heat: HeatClient, name: str) -> None:
    """network -> port -> ese_logical_port as the shipped templates chain them, each stack's outputs
    the next one's parameters, list parameters given as lists (as heat_worker sends them)."""
    heat.create(name + "_net", shipped("network"), {"name": "net-1", "display_name": "blue", "tenant_id": TENANT},
                timeout_mins=3)
    network = outputs(settled(heat, name + "_net", "CREATE"))
    assert network == {"id": contrail_uuid("virtual_network", "default-domain", TENANT, "net-1"), "name": "net-1",
                       "fq_name": ["default-domain", TENANT, "net-1"], "route_targets": []}
    ports = []
    for index, fixed_ips in enumerate(([{"subnet_id": "s-1", "ip_address": "10.0.0.2"}], [])):
        text = shipped("port", jinja_fixed_ips=fixed_ips, jinja_device_owner="physical_port", jinja_attached=False)
        heat.create(f"{name}_port{index}", text, {"name": f"port-{index}", "tenant_id": TENANT,
                                                  "virtual_network": network["id"]}, timeout_mins=13)
        ports.append(settled(heat, f"{name}_port{index}", "CREATE"))
    assert [p.status for p in ports] == ["CREATE_COMPLETE"] * 2
    port = outputs(ports[0])
    assert port["id"] == contrail_uuid("virtual_machine_interface", "default-domain", TENANT, "port-0")
    assert port["virtual_network"] == network["id"] and port["allowed_address_pairs"] == []
    assert port["mac_address"].startswith("02:") and port["fq_name"] == ["default-domain", TENANT, "port-0"]
    vmis = [outputs(p)["id"] for p in ports]

    parameters = {"logical_port_name": "xe-0/0/4.1003", "logical_port_vlan_id": 1003, "physical_port_id": "pi-1",
                  "virtual_machine_interface_ids": vmis[:1]}
    heat.create(name + "_lp", shipped("ese_logical_port", jinja_port_ids=["p"]), parameters, timeout_mins=6)
    created = settled(heat, name + "_lp", "CREATE")
    assert created.status == "CREATE_COMPLETE", created.status_reason
    assert outputs(created) == {"id": contrail_uuid("logical_interface", "default-global-system-config", "pi-1",
                                                    "xe-0/0/4.1003"), "name": "xe-0/0/4.1003"}

    # a second port bridged onto the unit: updated in place, same id
    heat.update(name + "_lp", shipped("ese_logical_port", jinja_port_ids=["p"]),
                {**parameters, "virtual_machine_interface_ids": vmis}, timeout_mins=6)
    updated = settled(heat, name + "_lp", "UPDATE")
    assert updated.status == "UPDATE_COMPLETE", updated.status_reason
    assert outputs(updated) == outputs(created)


def test_a_logical_interface_refuses_a_vlan_out_of_range(heat: HeatClient, name: str) -> None:
    parameters = {"logical_port_name": "xe-0/0/4.5000", "logical_port_vlan_id": 5000, "physical_port_id": "pi-1"}
    with pytest.raises(HeatRejected, match="vlan"):
        heat.create(name, shipped("ese_logical_port", jinja_port_ids=[]), parameters, timeout_mins=6)


def test_heat_is_unavailable_when_nothing_listens_on_its_port(heat_settings: Settings) -> None:
    nowhere = dataclasses.replace(heat_settings, heat_url=f"http://127.0.0.1:{free_port()}/v1/{{tenant_id}}")
    with pytest.raises(HeatUnavailable, match="show stack sw: .*127.0.0.1") as unavailable:
        HeatClient(nowhere, TENANT).get("sw")
    assert HEAT_TOKEN not in str(unavailable.value)
