"""Golden test: for the reference system's templates, `esiprov plan` gives the job documents it recorded.

The reference templates (plan_reference.json) share their names with the shipped ones, so they go into
an etcd of their own. Its schema has only heat_worker mappings, as the recorded cases (G1/G2 had no
monitoring_worker): each resource gets one job, first and last.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from esiprov import keys, templates
from esiprov.devenv.apiserver import put_config
from esiprov.devenv.etcd import EtcdServer
from esiprov.settings import from_env
from esiprov.store import Store
from esiprov.templates import Schema
from tests import seed
from tests.data import plan_reference
from tests.fixtures.services import running
from tests.integration.test_plan_command import esiprov

DATA = plan_reference()
SCHEMA = Schema(
    template_mappings={"heat_worker": {"ese_device": "ACese_device_&Pexisting",
                                       "ese_physical_port": "ACese_physical_port_&Pexisting"}},
    defaults={"ese_device": {"existing": "new"}, "ese_physical_port": {"existing": "new"}},
    relations={"ese_physical_port": {"ese_device_id": "ese_device"}})


@pytest.fixture(scope="module")
def reference_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An etcd of its own with the reference templates and every case's config, as the API server wrote it."""
    with running(EtcdServer(log_dir=tmp_path_factory.mktemp("reference-etcd"))) as server:
        store = Store.connect(from_env({"ESIPROV_ETCD_ENDPOINTS": server.endpoint}))
        found = [templates.parse_template(t["body"], t["key"]) for t in DATA["templates"]]
        assert [keys.template(t.id) for t in found] == [t["key"] for t in DATA["templates"]]
        templates.save(store, SCHEMA, found)
        for case in DATA["cases"]:
            version = case["want"]["version"]
            if "raw_body" in case:
                store.put(keys.config(case["rtype"], case["rid"]),
                          {"body": case["raw_body"], "version": version, "marked_for_deletion": False})
            else:
                put_config(store, case["rtype"], case["body"], version)
        yield server.endpoint
        store.close()


def by_name(params: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(params, key=lambda p: p["param"])


@pytest.mark.parametrize("case", DATA["cases"], ids=lambda c: c["label"])
def test_plan_gives_the_reference_job(reference_etcd: str, case: dict[str, Any]) -> None:
    done = esiprov(reference_etcd, "plan", case["rtype"], case["rid"])
    assert done.returncode == 0, done.stderr
    [job] = json.loads(done.stdout)
    want = case["want"]

    # the params: names, types, values and resources exactly; their order is the template's mapping
    # order, and the reference file stores its mappings sorted by name (not in the recorded order)
    assert by_name(job["params"]) == by_name(want["params"])
    template = next(t["body"] for t in DATA["templates"] if t["body"]["id"] == f"{case['rtype']}_"
                    f"{want['resource_input']['existing']}")
    assert [p["param"] for p in job["params"]] == list(template["parameter_mappings"])

    # the rest of the job document, but for the id's random suffix (a hash in esiprov)
    assert seed.without_suffix(job["id"]) == seed.without_suffix(want["id"])
    same = {k: v for k, v in job.items() if k not in ("id", "params")}
    assert same == {k: v for k, v in want.items() if k not in ("id", "params")}
