"""The shipped types beyond the seed: network, port, ese_logical_port, edge_router, er_physical_interface.

Planning runs on an etcd of its own with the shipped templates (no worker acts on it): the jobs'
params are the reference system's recorded ones (seed-breadth §2.2–2.4), and the cross-resource
waits follow its rule (§3.1). End to end, a pipeline of its own (etcd, a Redis database, a worker
and the watcher; the session's Heat and switches) runs the recorded logical network sequence and
the edge routers' monitoring.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from heatclient import client as heat_client

from esiprov import dispatch, keys, planner, poller, publish, templates
from esiprov.devenv.apiserver import envelope, put_config, wait_for_state
from esiprov.devenv.bodies import device_body
from esiprov.devenv.etcd import EtcdServer
from esiprov.devenv.heatserver import HeatServer
from esiprov.devenv.history import history
from esiprov.devenv.redis import RedisServer
from esiprov.devenv.switches import Switches
from esiprov.documents import Job, JobEntry
from esiprov.settings import from_env
from esiprov.snmp import DOWN, UP, SnmpProbe
from esiprov.store import Store
from tasks.job import JobFailed, NotYet, wait_for_dependencies
from tests.fixtures.heat import HEAT_TOKEN
from tests.fixtures.pipeline import Pipeline, separate_pipeline
from tests.fixtures.services import SWITCH_A, SWITCH_B, running

TENANT = "4b4cb858859842a389d0b0c8eb567d59"
#: the session Redis's database for this module's pipeline (other fleets use 0, 1, 2 and 7)
REDIS_DB = 4


def new_id() -> str:
    return str(uuid.uuid4())


def device(ip: str = SWITCH_A.ip) -> dict[str, Any]:
    return device_body(ip, TENANT)


def physical_port(device_id: str, name: str = "xe-0/0/5") -> dict[str, Any]:
    return {"id": new_id(), "name": name, "existing": "new", "tenant_id": TENANT, "ese_device_id": device_id}


def network() -> dict[str, Any]:
    return {"id": new_id(), "name": "logical-network-1", "tenant_id": TENANT}


def port(network_id: str, **fields: Any) -> dict[str, Any]:
    """A tenant port as the G2 recording has it: on a bare metal's physical port, not attached yet."""
    return {"id": new_id(), "name": "", "network_id": network_id, "tenant_id": TENANT, "device_owner": "physical_port",
            "attached": False, "mac_address": "", "fixed_ips": [{"subnet_id": new_id(), "ip_address": "10.0.0.2"}],
            **fields}


def logical_port(physical: dict[str, Any], network_id: str, port_ids: list[str], vlan: int = 1003) -> dict[str, Any]:
    """As the API server writes it when it handles the port's POST (seed-breadth §2.2)."""
    return {"id": new_id(), "name": f"{physical['name']}.{vlan}", "connected_resource": "port",
            "description": f"ESE Logical port for Port {port_ids[0]}", "ese_physical_port_id": physical["id"],
            "network_id": network_id, "port_ids": port_ids, "tenant_id": TENANT, "type": "L2", "vlan_id": vlan,
            "status": "PENDING_CREATE", "tags": {}}


def edge_router(ip: str = SWITCH_B.ip) -> dict[str, Any]:
    return {"id": new_id(), "name": "edge-router-1", "ip": ip, "login": "esi", "password": "secret", "ssh_port": 22,
            "tenant_id": TENANT}


def er_interface(router_id: str, name: str = "ge-0/0/1") -> dict[str, Any]:
    return {"id": new_id(), "name": name, "device_id": router_id, "tenant_id": TENANT}


def put_together(store: Store, *configs: tuple[str, dict[str, Any]]) -> None:
    """Version 1 of several resources in one etcd transaction, in order (as the API server writes a
    port and the logical port it makes for it, 50 ms apart)."""
    store.commit(puts={keys.config(rtype, body["id"]): envelope(body, 1) for rtype, body in configs})


def ref(rtype: str, body: dict[str, Any]) -> dict[str, str]:
    return {"resource_type": rtype, "resource_id": body["id"]}


# --- planning, on an etcd no worker acts on ------------------------------------------------------

@pytest.fixture
def quiet(tmp_path: Any) -> Iterator[Store]:
    """An etcd of its own with the shipped templates loaded."""
    with running(EtcdServer(log_dir=tmp_path)) as server:
        store = Store.connect(from_env({"ESIPROV_ETCD_ENDPOINTS": server.endpoint}))
        templates.save(store, *templates.load_dir(templates.SHIPPED))
        yield store
        store.close()


def planned(store: Store, rtype: str, body: dict[str, Any]) -> list[Job]:
    found = planner.plan(store, rtype, body["id"])
    assert found is not None
    return found.jobs


def in_flight(store: Store, rtype: str, body: dict[str, Any]) -> list[str]:
    """Claim the resource's workflow as the watcher does (nothing is sent): its job ids."""
    plan = planner.plan(store, rtype, body["id"])
    assert plan is not None and dispatch.claim(store, plan)
    return [job.id for job in plan.jobs]


def applied(store: Store, rtype: str, body: dict[str, Any], version: int = 1) -> None:
    """As if ``version`` had completed: /state says so (the next version is a modify)."""
    store.put(keys.state(rtype, body["id"]), {"state": {"worker_state": "CREATE_COMPLETED"}, "version": version,
                                             "error": ""})


@pytest.fixture
def logical_network(quiet: Store) -> dict[str, dict[str, Any]]:
    """A device, its physical port, a network, a port on it and the port's logical port, all in /config."""
    dev = device()
    phys, net = physical_port(dev["id"]), network()
    tenant_port = port(net["id"])
    logical = logical_port(phys, net["id"], [tenant_port["id"]])
    for rtype, body in (("ese_device", dev), ("ese_physical_port", phys), ("network", net), ("port", tenant_port),
                        ("ese_logical_port", logical)):
        put_config(quiet, rtype, body)
    return {"device": dev, "physical": phys, "network": net, "port": tenant_port, "logical": logical}


def test_a_logical_port_is_planned_with_the_reference_systems_recorded_params(
        quiet: Store, logical_network: dict[str, dict[str, Any]]) -> None:
    phys, dev, logical = logical_network["physical"], logical_network["device"], logical_network["logical"]
    port_id = logical_network["port"]["id"]
    job = planned(quiet, "ese_logical_port", logical)[0]
    assert job.id.startswith(f"create:heat_worker:ese_logical_port:{logical['id']}:1:")
    assert (job.is_first, job.is_last, job.on_failure, job.dependency) == (True, False, "fail", [])
    params = {p["param"]: p for p in job.params}
    # in the reference's mapping order
    assert list(params) == ["logical_port_type", "logical_port_vlan_id", "tenant_id", "device_ip", "heat_timeout",
                            "jinja_port_ids", "version", "virtual_machine_interface_ids", "logical_port_name",
                            "gohan_id", "physical_port_id"]
    # the three-hop F mapping: value resolved now, every resource on the way recorded
    assert params["device_ip"] == {"param": "device_ip", "type": "value", "value": SWITCH_A.ip,
                                   "resources": [ref("ese_physical_port", phys), ref("ese_device", dev)]}
    # the for_field list of port outputs, shaped as recorded
    vmi = {"output_key": "id", "resource_type": "port", "resource_id": port_id}
    assert params["virtual_machine_interface_ids"] == {
        "param": "virtual_machine_interface_ids", "type": "list", "resources": [ref("port", logical_network["port"])],
        "value": [{"param": "virtual_machine_interface_ids", "type": "output_key", "value": vmi, "resources": []}]}
    assert params["physical_port_id"] == {
        "param": "physical_port_id", "type": "output_key", "resources": [ref("ese_physical_port", phys)],
        "value": {"output_key": "id", "resource_type": "ese_physical_port", "resource_id": phys["id"]}}
    assert {name: params[name]["value"] for name in ("heat_timeout", "version", "jinja_port_ids",
                                                     "logical_port_vlan_id", "logical_port_type",
                                                     "logical_port_name", "gohan_id", "tenant_id")} == {
        "heat_timeout": "6", "version": 1, "jinja_port_ids": [port_id], "logical_port_vlan_id": 1003,
        "logical_port_type": "L2", "logical_port_name": "xe-0/0/5.1003", "gohan_id": logical["id"],
        "tenant_id": TENANT}


def test_a_port_takes_its_networks_stack_output_and_thirteen_minutes(
        quiet: Store, logical_network: dict[str, dict[str, Any]]) -> None:
    [job] = planned(quiet, "port", logical_network["port"])
    params = {p["param"]: p for p in job.params}
    net = logical_network["network"]
    assert params["virtual_network"]["value"] == {"output_key": "id", "resource_type": "network",
                                                  "resource_id": net["id"]}
    assert params["heat_timeout"]["value"] == "13"
    assert params["jinja_fixed_ips"]["value"] == logical_network["port"]["fixed_ips"]
    [network_job] = planned(quiet, "network", net)
    assert {p["param"]: p["value"] for p in network_job.params}["heat_timeout"] == "3"


def test_a_dhcp_port_has_no_jobs(quiet: Store) -> None:
    dhcp = port(new_id(), device_owner="network:dhcp")
    put_config(quiet, "port", dhcp)
    assert planned(quiet, "port", dhcp) == []


def test_an_edge_router_and_its_interface_are_one_monitoring_job_each(quiet: Store) -> None:
    router = edge_router()
    interface = er_interface(router["id"])
    put_config(quiet, "edge_router", router)
    put_config(quiet, "er_physical_interface", interface)
    [router_job] = planned(quiet, "edge_router", router)
    [interface_job] = planned(quiet, "er_physical_interface", interface)
    assert (router_job.handler, interface_job.handler) == ("monitoring_worker", "monitoring_worker")
    assert {p["param"]: p["value"] for p in router_job.params} == {"community_name": "EDGE_ROUTER_COMMUNITY",
                                                                   "device_ip": SWITCH_B.ip}
    params = {p["param"]: p for p in interface_job.params}
    assert params["device_ip"]["value"] == SWITCH_B.ip and params["device_ip"]["resources"] == [
        ref("edge_router", router)]
    assert params["name"]["value"] == "ge-0/0/1"


# --- the reference's dependency rule -------------------------------------------------------------

def test_a_logical_port_created_while_its_port_is_in_flight_depends_on_the_ports_job(
        quiet: Store, logical_network: dict[str, dict[str, Any]]) -> None:
    port_jobs = in_flight(quiet, "port", logical_network["port"])
    job = planned(quiet, "ese_logical_port", logical_network["logical"])[0]
    assert job.dependency == port_jobs


def test_a_job_depends_on_every_in_flight_job_of_a_referenced_resource_whatever_its_handler(
        quiet: Store, logical_network: dict[str, dict[str, Any]]) -> None:
    """The physical port's workflow has a heat and a monitoring job; the logical port's first job is a
    heat job and depends on both (a failure of either must reach it)."""
    physical_jobs = in_flight(quiet, "ese_physical_port", logical_network["physical"])
    device_jobs = in_flight(quiet, "ese_device", logical_network["device"])
    port_jobs = in_flight(quiet, "port", logical_network["port"])
    assert [j.split(":")[1] for j in physical_jobs] == ["heat_worker", "monitoring_worker"]
    job = planned(quiet, "ese_logical_port", logical_network["logical"])[0]
    # in param order: device_ip (physical port, device), the port list, physical_port_id
    assert job.dependency == physical_jobs + device_jobs + port_jobs


def test_a_modify_waits_for_another_resources_modify_and_for_its_create(
        quiet: Store, logical_network: dict[str, dict[str, Any]]) -> None:
    tenant_port, logical = logical_network["port"], logical_network["logical"]
    applied(quiet, "ese_logical_port", logical)
    put_config(quiet, "ese_logical_port", {**logical, "type": "L3"}, version=2)
    port_create = in_flight(quiet, "port", tenant_port)
    modify = planned(quiet, "ese_logical_port", logical)[0]
    assert modify.action == "modify" and modify.dependency == port_create

    quiet.delete(keys.workflow("port", tenant_port["id"]))  # the port's create is over
    applied(quiet, "port", tenant_port)
    put_config(quiet, "port", {**tenant_port, "attached": True}, version=2)
    port_modify = in_flight(quiet, "port", tenant_port)
    assert port_modify[0].startswith("modify:heat_worker:port:")
    modify = planned(quiet, "ese_logical_port", logical)[0]
    assert modify.dependency == port_modify


def test_an_interface_created_with_its_edge_router_waits_for_the_routers_monitoring_job(quiet: Store) -> None:
    router = edge_router()
    interface = er_interface(router["id"])
    put_config(quiet, "edge_router", router)
    put_config(quiet, "er_physical_interface", interface)
    router_jobs = in_flight(quiet, "edge_router", router)
    [job] = planned(quiet, "er_physical_interface", interface)
    assert job.dependency == router_jobs


def test_a_job_fails_at_once_when_a_job_it_depends_on_failed_even_behind_one_still_in_flight(
        quiet: Store, logical_network: dict[str, dict[str, Any]]) -> None:
    physical_jobs = in_flight(quiet, "ese_physical_port", logical_network["physical"])
    [port_job] = in_flight(quiet, "port", logical_network["port"])
    job = planned(quiet, "ese_logical_port", logical_network["logical"])[0]
    assert job.dependency == [*physical_jobs, port_job]
    with pytest.raises(NotYet, match="waiting for"):
        wait_for_dependencies(job, quiet)

    publish.fail(quiet, "port", logical_network["port"]["id"], 1, "create", "stack failed", port_job)
    with pytest.raises(JobFailed) as failed:
        wait_for_dependencies(job, quiet)
    assert str(failed.value) == f"job {port_job}, which this job depends on, failed"


def test_nothing_in_flight_means_no_dependency_even_for_output_key_params(
        quiet: Store, logical_network: dict[str, dict[str, Any]]) -> None:
    """As recorded: a port created after its device completed has ``dependency: []``."""
    job = planned(quiet, "ese_logical_port", logical_network["logical"])[0]
    assert job.dependency == []


# --- end to end on real Heat, a worker and the watcher -------------------------------------------

@pytest.fixture(scope="module")
def types_pipeline(redis_server: RedisServer, heat_server: HeatServer, switches: Switches,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """A pipeline of its own: an etcd and a Redis database no other fleet uses, the session's Heat and
    switches (which stand in for the edge routers too: esiprov_env maps EDGE_ROUTER_COMMUNITY)."""
    with separate_pipeline(redis_server, REDIS_DB, heat_server, switches,
                           tmp_path_factory.mktemp("pipeline-types")) as pipeline:
        yield pipeline


def created(store: Store, rtype: str, body: dict[str, Any], version: int = 1) -> dict[str, Any]:
    state = wait_for_state(store, rtype, body["id"], version, timeout=180)
    assert state["error"] == "" and state["version"] == version, state
    return state


def revision_of_first_put(store: Store, key: str, since: int) -> int:
    """The etcd revision at which ``key`` was first written since ``since``."""
    return next(change.entry.mod_revision for change in history(store, key, since) if change.entry is not None)


def output(store: Store, rtype: str, body: dict[str, Any], key: str) -> Any:
    outputs = store.value(keys.heat_stack(rtype, body["id"]))["output"]
    return next(o["output_value"] for o in outputs if o["output_key"] == key)


@pytest.mark.slow
def test_the_recorded_logical_network_sequence_runs_end_to_end(types_pipeline: Pipeline,
                                                               heat_server: HeatServer) -> None:
    """seed-breadth §2.2: port create -> the logical port, created meanwhile, waits -> the port's stack
    completes -> the logical port proceeds -> CREATE_COMPLETED -> a port modify issued afterwards completes."""
    store = types_pipeline.store
    dev = device()
    phys, net = physical_port(dev["id"]), network()
    put_config(store, "ese_device", dev)
    put_config(store, "ese_physical_port", phys)
    put_config(store, "network", net)
    for rtype, body in (("ese_device", dev), ("ese_physical_port", phys), ("network", net)):
        assert created(store, rtype, body)["state"]["worker_state"] == "CREATE_COMPLETED"
    tenant_port = port(net["id"])
    logical = logical_port(phys, net["id"], [tenant_port["id"]])
    _, since = store.range(keys.CONFIG, keys_only=True)

    put_together(store, ("port", tenant_port), ("ese_logical_port", logical))

    logical_state = created(store, "ese_logical_port", logical)
    port_state = created(store, "port", tenant_port)
    assert (port_state["state"]["worker_state"], logical_state["state"]["worker_state"]) == \
        ("CREATE_COMPLETED", "CREATE_COMPLETED")
    jobs = [JobEntry.from_etcd(c.entry.value).job for c in history(store, keys.JOBS, since) if c.entry is not None]
    [port_job] = [job for job in jobs if job.resource_type == "port"]
    [logical_job, _] = [job for job in jobs if job.resource_type == "ese_logical_port"]  # heat, then monitoring
    # the logical port was claimed while the port's create was in flight, and named its job ...
    claimed = revision_of_first_put(store, keys.job(logical_job.id), since)
    port_done = revision_of_first_put(store, keys.state("port", tenant_port["id"]), since)
    assert claimed < port_done
    assert logical_job.dependency == [port_job.id]
    # ... and sent its stack operation only once the port's workflow had completed
    assert port_done < revision_of_first_put(store, keys.heat_op(logical_job.id), since)

    # the logical interface holds the port's interface, on the physical port's interface
    raw = heat_client.Client("1", endpoint=heat_server.url.format(tenant_id=TENANT), token=HEAT_TOKEN)
    stack = raw.stacks.get(f"ese_logical_port_{logical['id']}")
    assert stack.parameters["virtual_machine_interface_ids"] == output(store, "port", tenant_port, "id")
    assert stack.parameters["physical_port_id"] == output(store, "ese_physical_port", phys, "id")
    assert stack.parameters["device_ip"] == SWITCH_A.ip
    outputs = {o["output_key"] for o in json.loads(logical_state["state"]["heat_outputs"])}
    assert outputs == {"id", "name"}
    assert output(store, "ese_logical_port", logical, "name") == "xe-0/0/5.1003"
    # its switch has no unit xe-0/0/5.1003 yet: the FAIL is withheld by the 30 s hold, /monitoring stays absent
    assert logical_state["state"]["state_monitoring"] == json.dumps({"logical_port": "FAIL"})
    assert store.get(keys.monitoring("ese_logical_port", logical["id"])) is None
    assert store.value(keys.target("ese_logical_port", logical["id"]))["withheld"] is True

    # the API server then marks the port attached: a modify, which completes
    put_config(store, "port", {**tenant_port, "attached": True, "ese_logical_port_id": logical["id"]}, version=2)
    modified = created(store, "port", tenant_port, version=2)
    assert modified["state"]["worker_state"] == "MODIFY_COMPLETED"
    assert store.value(keys.heat_stack("port", tenant_port["id"]))["stack_status"] == "UPDATE_COMPLETE"


@pytest.mark.slow
def test_a_dhcp_port_is_read_complete_and_gets_no_stack(types_pipeline: Pipeline) -> None:
    store = types_pipeline.store
    dhcp = port(new_id(), device_owner="network:dhcp", fixed_ips=[])
    put_config(store, "port", dhcp)
    assert created(store, "port", dhcp)["state"] == {"worker_state": "READ_COMPLETE"}
    assert store.get(keys.heat_stack("port", dhcp["id"])) is None


@pytest.mark.slow
def test_edge_routers_are_monitored_as_router_and_interface_with_their_own_community_token(
        types_pipeline: Pipeline, switches: Switches) -> None:
    store = types_pipeline.store
    router = edge_router()
    interfaces = [er_interface(router["id"], name) for name in SWITCH_B.ports]
    put_together(store, ("edge_router", router), *(("er_physical_interface", i) for i in interfaces))

    state = created(store, "edge_router", router)
    assert state["state"] == {"state_monitoring": json.dumps({"router": "ACTIVE"}), "worker_state": "CREATE_COMPLETED"}
    for interface in interfaces:
        state = created(store, "er_physical_interface", interface)
        assert state["state"]["state_monitoring"] == json.dumps({"interface": "ACTIVE"})
    assert store.value(keys.monitoring("edge_router", router["id"])) == {"router": UP, "version": 1}
    monitoring = keys.monitoring("er_physical_interface", interfaces[0]["id"])
    assert store.value(monitoring) == {"interface": UP, "version": 1}
    target = store.value(keys.target("er_physical_interface", interfaces[0]["id"]))
    assert (target["community_name"], target["field"], target["type"]) == \
        ("EDGE_ROUTER_COMMUNITY", "interface", "physical_port")

    # the poller keeps them true: the community token mapped, the router's address
    probe = SnmpProbe(from_env(types_pipeline.env))
    try:
        switches.set_port(SWITCH_B.ip, interfaces[0]["name"], up=False)
        poller.poll(store, probe)
        assert store.value(monitoring) == {"interface": DOWN, "version": 1}
        assert store.value(keys.monitoring("edge_router", router["id"])) == {"router": UP, "version": 1}
    finally:
        switches.set_port(SWITCH_B.ip, interfaces[0]["name"], up=True)
    poller.poll(store, probe)
    assert store.value(monitoring) == {"interface": UP, "version": 1}


@pytest.mark.slow
def test_a_logical_port_whose_unit_is_up_is_published_up_with_its_state(types_pipeline: Pipeline) -> None:
    store = types_pipeline.store
    dev = device(SWITCH_B.ip)
    phys, net = physical_port(dev["id"], "ge-0/0/1"), network()
    put_together(store, ("ese_device", dev), ("ese_physical_port", phys), ("network", net))
    for rtype, body in (("ese_device", dev), ("ese_physical_port", phys), ("network", net)):
        created(store, rtype, body)
    tenant_port = port(net["id"])
    logical = logical_port(phys, net["id"], [tenant_port["id"]])
    assert logical["name"] in SWITCH_B.units
    put_together(store, ("port", tenant_port), ("ese_logical_port", logical))

    assert created(store, "ese_logical_port", logical)["state"]["state_monitoring"] == json.dumps(
        {"logical_port": "ACTIVE"})
    monitoring = store.get(keys.monitoring("ese_logical_port", logical["id"]))
    assert monitoring.value == {"version": 1, "logical_port": UP}
    assert monitoring.mod_revision == store.get(keys.state("ese_logical_port", logical["id"])).mod_revision
    target = store.value(keys.target("ese_logical_port", logical["id"]))
    assert (target["type"], target["if_name"], target["device_ip"], target["port_ids"]) == \
        ("snmp_ports", "ge-0/0/1.1003", SWITCH_B.ip, [tenant_port["id"]])
    assert target["hold_ended"] is True
