"""The leading watcher plans every config with the schema and templates etcd holds when the config
arrives: an operator's change is used by the very next resource, though the watcher has just planned
others of the same type with the old ones (it reads them in the round trip that reads the config)."""
from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from esiprov import keys, templates
from esiprov.devenv.apiserver import put_config
from esiprov.devenv.etcd import EtcdServer
from esiprov.devenv.pipeline import start_watcher
from esiprov.devenv.process import wait_until
from esiprov.devenv.redis import RedisServer
from esiprov.settings import from_env
from esiprov.store import Store
from tests import seed
from tests.fixtures.services import running

RTYPE = "ese_device"


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[Store]:
    """An etcd with the shipped templates and a leading watcher (no worker: the jobs stay to be read)."""
    with running(EtcdServer(log_dir=tmp_path)) as etcd, running(RedisServer(log_dir=tmp_path)) as redis:
        env = {"ESIPROV_ETCD_ENDPOINTS": etcd.endpoint, "ESIPROV_BROKER_URL": redis.url}
        store = Store.connect(from_env(env))
        templates.save(store, *templates.load_dir(templates.SHIPPED))
        with start_watcher(env, tmp_path):
            yield store
        store.close()


def planned_jobs(store: Store, rid: str) -> dict[str, dict[str, Any]]:
    """{handler: job document} of the workflow the watcher dispatched for device ``rid``, once it exists."""
    marker = f":{RTYPE}:{rid}:"
    wait_until(lambda: store.get(keys.workflow(RTYPE, rid)) is not None, 30, f"the workflow of {rid}")
    found = [entry.value for entry in store.range(keys.JOBS)[0] if marker in entry.key]
    return {handler: job for handler, job, _ in found}


def new_device(store: Store) -> str:
    body = {**seed.device_body(), "id": str(uuid.uuid4())}
    put_config(store, RTYPE, body)
    return body["id"]


def param(job: dict[str, Any], name: str) -> Any:
    return next(p["value"] for p in job["params"] if p["param"] == name)


def test_a_template_changed_just_before_a_config_is_put_is_the_one_its_jobs_are_planned_with(watched: Store) -> None:
    schema, shipped = templates.load_dir(templates.SHIPPED)
    before = planned_jobs(watched, new_device(watched))
    assert param(before[templates.HEAT], "vendor_name") == "Juniper"

    changed = [dataclasses.replace(t, parameter_mappings={**t.parameter_mappings, "vendor_name": "CArista"})
               if t.id == "ese_device_new" else t for t in shipped]
    templates.save(watched, schema, changed)
    after = planned_jobs(watched, new_device(watched))
    assert param(after[templates.HEAT], "vendor_name") == "Arista"


def test_a_schema_changed_just_before_a_config_is_put_decides_which_jobs_it_gets(watched: Store) -> None:
    assert set(planned_jobs(watched, new_device(watched))) == {templates.HEAT, templates.MONITORING}

    document = watched.value(keys.SCHEMA)
    del document["template_mappings"][templates.MONITORING][RTYPE]
    watched.put(keys.SCHEMA, document)
    assert set(planned_jobs(watched, new_device(watched))) == {templates.HEAT}
