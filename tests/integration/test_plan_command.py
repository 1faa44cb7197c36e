"""`esiprov plan` prints the jobs the planner would write, and writes nothing."""
from __future__ import annotations

import json
import subprocess
import sys
from typing import Iterator

import pytest

from esiprov import keys, templates
from esiprov.devenv.apiserver import put_config
from esiprov.devenv.etcd import EtcdServer
from esiprov.settings import from_env
from esiprov.store import Store
from tests import seed


@pytest.fixture
def quiet_etcd(tmp_path) -> Iterator[tuple[Store, str]]:
    """An etcd of its own (no watcher acts on it), with the shipped templates loaded."""
    with EtcdServer(log_dir=tmp_path).start() as server:
        store = Store.connect(from_env({"ESIPROV_ETCD_ENDPOINTS": server.endpoint}))
        templates.save(store, *templates.load_dir(templates.SHIPPED))
        yield store, server.endpoint
        store.close()


def esiprov(endpoint: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "esiprov.cli", *args], capture_output=True, text=True,
                          env={"ESIPROV_ETCD_ENDPOINTS": endpoint, "PATH": "/usr/bin:/bin"}, timeout=60)


def test_plan_prints_the_seeds_two_job_documents_and_writes_nothing(quiet_etcd):
    store, endpoint = quiet_etcd
    put_config(store, "ese_device", seed.device_body())
    config = seed.record("/config/")
    put_config(store, "ese_physical_port", config["body"], config["version"])
    _, before = store.range("/", keys_only=True)

    done = esiprov(endpoint, "plan", "ese_physical_port", seed.PORT_ID)

    assert done.returncode == 0, done.stderr
    want = [seed.record("/jobs/all/", i)[1] for i in (0, 1)]
    got = json.loads(done.stdout)
    for job in want + got:
        job["id"] = seed.without_suffix(job["id"])
        job["dependency"] = [seed.without_suffix(d) for d in job["dependency"]]
    assert got == want
    assert store.range("/", keys_only=True)[1] == before


def test_plan_of_a_missing_resource_says_so_with_exit_code_3(quiet_etcd):
    _, endpoint = quiet_etcd
    done = esiprov(endpoint, "plan", "ese_device", "nope")
    assert done.returncode == 3
    assert done.stderr.strip() == f"esiprov: no config at {keys.config('ese_device', 'nope')}"


def test_commands_say_clearly_when_etcd_is_unreachable():
    done = esiprov("127.0.0.1:9", "plan", "ese_device", "x")
    assert done.returncode == 1
    assert done.stderr.startswith("esiprov: etcd at 127.0.0.1:9:")
    assert "Traceback" not in done.stderr


def test_plan_shows_modify_jobs_for_a_newer_version_and_delete_jobs_monitoring_first(quiet_etcd):
    store, endpoint = quiet_etcd
    put_config(store, "ese_device", seed.device_body())
    store.put(keys.state("ese_device", seed.DEVICE_ID),
              {"state": {"worker_state": "CREATE_COMPLETED"}, "version": 1, "error": ""})
    put_config(store, "ese_device", seed.device_body(), version=2)

    modify = json.loads(esiprov(endpoint, "plan", "ese_device", seed.DEVICE_ID).stdout)
    assert [(j["action"], j["handler"], j["version"], j["on_failure"]) for j in modify] == [
        ("modify", "heat_worker", 2, "fail"), ("modify", "monitoring_worker", 2, "fail")]

    put_config(store, "ese_device", seed.device_body(), version=3, marked_for_deletion=True)
    delete = json.loads(esiprov(endpoint, "plan", "ese_device", seed.DEVICE_ID).stdout)
    assert [(j["action"], j["handler"], j["is_first"], j["is_last"], j["on_failure"]) for j in delete] == [
        ("logical_delete", "monitoring_worker", True, False, "ignore"),
        ("logical_delete", "heat_worker", False, True, "fail")]
    assert delete[1]["dependency"] == [delete[0]["id"]]
