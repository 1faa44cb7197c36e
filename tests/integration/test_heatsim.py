"""The benchmark's Heat-API simulator (bench/heatsim.py) speaks what python-heatclient sends.

Driven through esiprov.heat.HeatClient (and heatclient itself for the lookup
paths), so the benchmark measures the requests the workers really make.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Iterator

import pytest

from bench.heatsim import HeatSim, output_value
from esiprov.heat import HeatClient, HeatUnavailable, Stack
from esiprov.settings import Settings
from esiprov.templates import SHIPPED, load_dir

TENANT = "tenant-sim"
BUILD_TIME = 0.3


@pytest.fixture
def heat(sim: HeatSim, sim_settings: Settings) -> Iterator[HeatClient]:
    """A client of the simulator; stacks build for BUILD_TIME s, nothing fails unless a test says so."""
    sim.configure(build_time=BUILD_TIME, fail_rate=0, error_rate=0)
    yield HeatClient(sim_settings, TENANT)
    sim.configure(fail_rate=0, error_rate=0)


@pytest.fixture
def name() -> str:
    return f"ese_device_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def template() -> str:
    _, found = load_dir(SHIPPED)
    return next(t for t in found if t.id == "ese_device_new").template_file


def settled(heat: HeatClient, name: str) -> Stack | None:
    time.sleep(BUILD_TIME + 0.05)
    return heat.get(name)


def raw(sim: HeatSim, method: str, path: str, body: dict | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request without following redirects: (status, headers, body)."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect)
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{sim.port}/v1/{TENANT}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with opener.open(request, timeout=5) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_a_stack_is_created_in_progress_then_complete_with_the_templates_outputs(heat, name, template):
    heat.create(name, template, {"name": "QFX-1", "management_ip": "127.0.0.1"}, 6)
    assert heat.get(name).status == "CREATE_IN_PROGRESS"
    stack = settled(heat, name)
    assert stack.status == "CREATE_COMPLETE"
    assert [o["output_key"] for o in stack.outputs] == ["id", "name", "fq_name"]
    assert stack.outputs[0]["output_value"] == output_value(name, "id")


def test_update_and_delete_go_through_the_lookup_and_a_deleted_stack_is_gone(heat, name, template):
    heat.create(name, template, {"name": "QFX-1", "management_ip": "127.0.0.1"}, None)
    settled(heat, name)
    heat.update(name, template, {"name": "QFX-2", "management_ip": "127.0.0.1"}, None)
    assert heat.get(name).status == "UPDATE_IN_PROGRESS"
    assert settled(heat, name).status == "UPDATE_COMPLETE"
    heat.delete(name)
    assert heat.get(name) is None
    heat.delete(name)  # already gone: fine


def test_the_lookup_redirects_to_name_and_id_keeping_the_query(sim, heat, name, template):
    heat.create(name, template, {"name": "QFX-1", "management_ip": "127.0.0.1"}, None)
    stack_id = heat.get(name).id
    for looked_up in (name, stack_id):
        status, headers, _ = raw(sim, "GET", f"/stacks/{looked_up}?resolve_outputs=False")
        assert status == 302
        assert headers["Location"].endswith(f"/v1/{TENANT}/stacks/{name}/{stack_id}?resolve_outputs=False")
    assert heat.get(f"{name}/{stack_id}").id == stack_id
    settled(heat, name)
    assert heat._heat.stacks.output_show(name, "id")["output"]["output_value"] == output_value(name, "id")


def test_a_duplicate_name_is_a_409_which_the_client_takes_as_already_created(sim, heat, name, template):
    heat.create(name, template, {"name": "QFX-1", "management_ip": "127.0.0.1"}, None)
    status, _, body = raw(sim, "POST", "/stacks", {"stack_name": name, "template": template})
    assert status == 409 and "already exists" in json.loads(body)["error"]["message"]
    heat.create(name, template, {"name": "QFX-1", "management_ip": "127.0.0.1"}, None)


def test_the_fail_rate_fails_stacks_with_a_reason(sim, heat, name, template):
    sim.configure(fail_rate=1)
    heat.create(name, template, {"name": "QFX-1", "management_ip": "127.0.0.1"}, None)
    stack = settled(heat, name)
    assert stack.status == "CREATE_FAILED" and "simulated failure" in stack.status_reason


def test_injected_5xx_and_an_update_during_an_operation_are_transient(sim, heat, name, template):
    heat.create(name, template, {"name": "QFX-1", "management_ip": "127.0.0.1"}, None)
    with pytest.raises(HeatUnavailable, match="409"):
        heat.update(name, template, {"name": "QFX-2", "management_ip": "127.0.0.1"}, None)
    sim.configure(error_rate=1)
    with pytest.raises(HeatUnavailable, match="503"):
        heat.get(name)


def test_requests_are_counted_per_method_and_path_kind(sim, heat, name, template):
    sim.reset()
    heat.create(name, template, {"name": "QFX-1", "management_ip": "127.0.0.1"}, None)
    heat._heat.stacks.get(name)  # heatclient by name: the lookup, then the stack
    assert sim.stats()["requests"] == {"POST stacks": 1, "GET lookup": 1, "GET stack": 1}


def test_the_client_remembers_stack_ids_so_checks_skip_the_lookup(sim, heat, name, template):
    heat.create(name, template, {"name": "QFX-1", "management_ip": "127.0.0.1"}, None)
    sim.reset()
    heat.get(name)
    heat.get(name)
    assert sim.stats()["requests"] == {"GET stack": 2}
    old = heat.get(name).id
    heat._heat.stacks.delete(name)  # another process deletes the stack and makes a new one of that name
    time.sleep(BUILD_TIME + 0.05)
    heat._heat.stacks.create(stack_name=name, template=template, parameters={"name": "QFX-2"})
    stack = heat.get(name)
    assert stack.id != old and stack.status == "CREATE_IN_PROGRESS"
