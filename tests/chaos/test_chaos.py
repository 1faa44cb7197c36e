"""Workers die, brokers lose messages, watchers crash: every resource still ends final, one stack each.

Each test runs its own etcd, Redis, worker and watcher(s) (the session's Heat and
switches are shared) and breaks them on purpose with N resources in flight.
"""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from esiprov import keys, templates
from esiprov.devenv.apiserver import put_config, wait_for_state
from esiprov.devenv.etcd import EtcdServer
from esiprov.devenv.local import esiprov_env
from esiprov.devenv.pipeline import ROOT, STANDING_BY, start_watcher, start_worker
from esiprov.devenv.process import wait_until
from esiprov.devenv.redis import RedisServer
from esiprov.settings import from_env
from esiprov.store import Store
from tests.fixtures.services import COMMUNITY, SWITCH_A, running

pytestmark = pytest.mark.slow
N = 6


@dataclass
class Cluster:
    env: dict[str, str]
    store: Store
    logs: Path
    heat_url: str
    redis: RedisServer
    tenant: str

    def devices(self, count: int = N) -> list[dict]:
        """Write ``count`` new device configs; return their bodies."""
        bodies = []
        for _ in range(count):
            rid = str(uuid.uuid4())
            body = {"id": rid, "name": f"d-{rid[:8]}", "hostname": f"h-{rid[:8]}", "existing": "new",
                    "management_ip_address": SWITCH_A.ip, "public_ip_address": SWITCH_A.ip,
                    "tenant_id": self.tenant}
            put_config(self.store, "ese_device", body)
            bodies.append(body)
        return bodies

    def all_created(self, bodies: list[dict], timeout: float = 180) -> None:
        for body in bodies:
            state = wait_for_state(self.store, "ese_device", body["id"], 1, timeout)
            assert state["state"]["worker_state"] == "CREATE_COMPLETED", state

    def stack_names(self) -> list[str]:
        """Every stack Heat holds (noauth Heat keeps all tenants' stacks in one project)."""
        url = self.heat_url.format(tenant_id=self.tenant) + "/stacks"
        with urllib.request.urlopen(url, timeout=10) as answer:
            return [s["stack_name"] for s in json.load(answer)["stacks"]]

    def one_stack_each(self, bodies: list[dict]) -> None:
        names = self.stack_names()
        assert [names.count(f"ese_device_{b['id']}") for b in bodies] == [1] * len(bodies)

    def in_flight(self) -> bool:
        return bool(self.store.range(keys.HEAT_OPS, keys_only=True)[0])

    def resync(self) -> str:
        done = subprocess.run([sys.executable, "-m", "esiprov.cli", "resync", "--resend-after", "0"],
                              capture_output=True, text=True, env=self.env, cwd=ROOT, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture
def cluster(tmp_path: Path, heat_server, switches) -> Iterator[Cluster]:
    with running(EtcdServer(log_dir=tmp_path)) as etcd, running(RedisServer(log_dir=tmp_path)) as redis:
        env = esiprov_env(etcd, redis, heat_server, switches, COMMUNITY)
        store = Store.connect(from_env(env))
        templates.save(store, *templates.load_dir(templates.SHIPPED))
        yield Cluster(env, store, tmp_path, heat_server.url, redis, uuid.uuid4().hex)
        store.close()


def test_a_worker_killed_mid_chain_loses_nothing_after_a_restart_and_resync(cluster):
    with start_watcher(cluster.env, cluster.logs):
        with start_worker(cluster.env, cluster.logs, name="worker-1") as worker:
            bodies = cluster.devices()
            wait_until(cluster.in_flight, 30, "a stack operation in flight")
            worker.kill()
        with start_worker(cluster.env, cluster.logs, name="worker-2"):
            cluster.resync()
            cluster.all_created(bodies)
    cluster.one_stack_each(bodies)


def test_the_standby_watcher_takes_over_when_the_leader_is_killed(cluster):
    with start_worker(cluster.env, cluster.logs):
        with start_watcher(cluster.env, cluster.logs, name="watcher-1") as leader, \
                start_watcher(cluster.env, cluster.logs, name="watcher-2", ready=STANDING_BY) as standby:
            first = cluster.devices(2)
            cluster.all_created(first)
            leader.kill()
            later = cluster.devices(2)
            cluster.all_created(later, timeout=120)
            assert "leads" in standby.log_path.read_text()
    cluster.one_stack_each(first + later)


def test_a_flushed_redis_is_recovered_by_resync(cluster):
    with start_worker(cluster.env, cluster.logs), start_watcher(cluster.env, cluster.logs):
        bodies = cluster.devices()
        wait_until(cluster.in_flight, 30, "a stack operation in flight")
        with cluster.redis.client() as client:
            client.flushall()
        cluster.resync()
        cluster.all_created(bodies)
    cluster.one_stack_each(bodies)


def test_a_watcher_started_after_the_configs_were_written_creates_them_all(cluster):
    bodies = cluster.devices()
    with start_worker(cluster.env, cluster.logs), start_watcher(cluster.env, cluster.logs):
        cluster.all_created(bodies)
    cluster.one_stack_each(bodies)
