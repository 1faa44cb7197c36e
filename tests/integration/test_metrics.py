"""`esiprov watch` with ESIPROV_METRICS_ADDRESS: /metrics counts what etcd holds, /healthz follows the etcd session.

Real processes: an etcd and a Redis of this module's own, a leading and a standby
watcher, each serving its metrics on a free loopback port. Records are written to
etcd as esiprov's workers would leave them; the watchers must report them.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

from esiprov import keys, poller
from esiprov.devenv.apiserver import put_config
from esiprov.devenv.etcd import EtcdServer
from esiprov.devenv.pipeline import ROOT, STANDING_BY
from esiprov.devenv.process import wait_until
from esiprov.devenv.redis import RedisServer
from esiprov.settings import from_env
from esiprov.store import Store
from tests.fixtures.metrics import MetricsEndpoint, Samples, start_watcher_with_metrics
from tests.fixtures.services import running

PORT, DEVICE = "ese_physical_port", "ese_device"
#: seconds within which a scrape shows a change in etcd (the fleet's numbers are cached 5 s)
SHOWN = 30.0
#: seconds within which /healthz follows etcd going away or coming back (a request times out after
#: 10 s, a silent session counts as dead after 20 s)
FOLLOWS = 60.0


@dataclass
class Watchers:
    store: Store
    etcd: EtcdServer
    leader: MetricsEndpoint
    standby: MetricsEndpoint
    env: dict[str, str]


@pytest.fixture(scope="module")
def watchers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watchers]:
    with running_watchers(tmp_path_factory.mktemp("metrics")) as both:
        yield both


@pytest.fixture
def own_watchers(tmp_path: Path) -> Iterator[Watchers]:
    """Watchers on an etcd of the test's own, for a test that kills it."""
    with running_watchers(tmp_path) as both:
        yield both


@contextmanager
def running_watchers(logs: Path) -> Iterator[Watchers]:
    """etcd, Redis, a leading watcher then a standby, both serving metrics; everything stopped afterwards."""
    with running(EtcdServer(log_dir=logs)) as etcd, running(RedisServer(log_dir=logs)) as redis:
        env = {"ESIPROV_ETCD_ENDPOINTS": etcd.endpoint, "ESIPROV_BROKER_URL": redis.url}
        leading, leader = start_watcher_with_metrics(env, logs, "watcher-1")
        with leading:
            standing_by, standby = start_watcher_with_metrics(env, logs, "watcher-2", ready=STANDING_BY)
            with standing_by, closing(Store.connect(from_env(env))) as store:
                yield Watchers(store, etcd, leader, standby, env)


def test_healthz_answers_200_on_the_leader_and_on_the_standby(watchers: Watchers) -> None:
    assert watchers.leader.get("/healthz") == (200, "ok: leading\n")
    assert watchers.standby.get("/healthz") == (200, "ok: standing by\n")


def test_esiprov_watcher_leader_is_1_on_the_leader_and_0_on_the_standby(watchers: Watchers) -> None:
    assert watchers.leader.value("esiprov_watcher_leader") == 1
    assert watchers.standby.value("esiprov_watcher_leader") == 0


def test_an_unknown_path_is_404_and_names_the_two_that_exist(watchers: Watchers) -> None:
    assert watchers.leader.get("/") == (404, "not found: try /metrics or /healthz\n")


def fleet_records(now: float) -> dict[str, object]:
    """What esiprov's steps leave in etcd for a small fleet: states, failures, workflows, monitoring, holds."""
    def job(handler: str, rid: str) -> str:
        return f"create:{handler}:{PORT}:{rid}:1:abcde"

    def state(worker_state: str) -> dict[str, object]:
        return {"state": {"worker_state": worker_state}, "version": 1, "error": ""}

    return {
        keys.state(PORT, "p1"): state("CREATE_COMPLETED"), keys.state(PORT, "p2"): state("CREATE_COMPLETED"),
        keys.state(PORT, "p3"): state("CREATE_FAILED"), keys.state(DEVICE, "d1"): state("MODIFY_COMPLETED"),
        keys.failure(job("heat_worker", "p3")): {"error": "boom", "at": now},
        keys.failure(job("heat_worker", "p4")): {"error": "boom", "at": now},
        keys.failure(job("monitoring_worker", "p5")): {"error": "boom", "at": now},
        # no jobs: the leader's recovery has nothing to send again, and leaves them as they are
        keys.workflow(PORT, "p4"): {"version": 1, "action": "create", "jobs": [], "sent_at": now - 100},
        keys.workflow(PORT, "p5"): {"version": 1, "action": "create", "jobs": [], "sent_at": now - 40},
        keys.monitoring(PORT, "p1"): {"version": 1, "port": "UP"},
        keys.monitoring(PORT, "p2"): {"version": 1, "port": "DOWN"},
        keys.monitoring(DEVICE, "d1"): {"version": 1, "switch": "FAIL"},
        keys.hold(PORT, "p4"): {"worker": "worker-a@host", "task": job("heat_worker", "p4"), "at": now},
        keys.hold(PORT, "p5"): {"worker": "worker-a@host", "task": job("heat_worker", "p5"), "at": now},
        keys.workflow(PORT, "p6"): {"version": 1, "action": "create", "jobs": [], "sent_at": now - 10},
        keys.unsent(PORT, "p6"): {"at": now, "error": "broker down"},  # a claim the broker did not take
        poller.LAST_CYCLE: {"started": now - 30, "by": "beat", "summary": {"seconds": 2.5}, "uptimes": {}},
    }


def shows(endpoint: MetricsEndpoint, expected: Samples) -> Callable[[], bool]:
    """A check: a scrape of ``endpoint`` shows every sample of ``expected``."""
    return lambda: expected.items() <= endpoint.samples().items()


def answers(endpoint: MetricsEndpoint, status: int) -> Callable[[], bool]:
    """A check: ``endpoint``'s /healthz answers ``status``."""
    return lambda: endpoint.health() == status


def test_metrics_count_what_etcd_holds_under_their_fixed_names_and_labels(watchers: Watchers) -> None:
    now = time.time()
    watchers.store.commit(puts=fleet_records(now))
    expected: Samples = {
        ("esiprov_resources", (("resource_type", PORT), ("worker_state", "CREATE_COMPLETED"))): 2,
        ("esiprov_resources", (("resource_type", PORT), ("worker_state", "CREATE_FAILED"))): 1,
        ("esiprov_resources", (("resource_type", DEVICE), ("worker_state", "MODIFY_COMPLETED"))): 1,
        ("esiprov_failed_jobs", (("handler", "heat_worker"),)): 2,
        ("esiprov_failed_jobs", (("handler", "monitoring_worker"),)): 1,
        ("esiprov_workflows_in_flight", ()): 3,
        ("esiprov_monitoring_status", (("resource_type", PORT), ("status", "UP"))): 1,
        ("esiprov_monitoring_status", (("resource_type", PORT), ("status", "DOWN"))): 1,
        ("esiprov_monitoring_status", (("resource_type", DEVICE), ("status", "FAIL"))): 1,
        ("esiprov_workflows_held", (("worker", "worker-a@host"),)): 2,
        ("esiprov_unsent_workflows", ()): 1,
        ("esiprov_poll_cycle_seconds", ()): 2.5,
        ("esiprov_etcd_up", ()): 1,
    }
    for endpoint in (watchers.leader, watchers.standby):  # both report the same fleet
        wait_until(shows(endpoint, expected), SHOWN, f"the fleet on {endpoint.url}")
        samples = endpoint.samples()
        scraped = time.time()
        assert 100 <= samples["esiprov_oldest_workflow_age_seconds", ()] <= scraped - now + 100
        assert 27.5 <= samples["esiprov_poll_cycle_age_seconds", ()] <= scraped - now + 27.5


def test_the_leader_counts_the_config_events_it_handled_and_a_standby_none(watchers: Watchers) -> None:
    before = watchers.leader.value("esiprov_watcher_events_total") or 0
    put_config(watchers.store, "ese_widget", {"id": "w1", "name": "no template for this type"})
    wait_until(lambda: (watchers.leader.value("esiprov_watcher_events_total") or 0) > before, SHOWN,
               "the leader to count the event")
    assert watchers.standby.value("esiprov_watcher_events_total") == 0
    assert watchers.leader.value("esiprov_reconcile_errors_total") == 0


def test_healthz_answers_503_on_both_watchers_once_etcd_is_gone_and_200_once_it_is_back(
        own_watchers: Watchers) -> None:
    both = (own_watchers.leader, own_watchers.standby)
    own_watchers.etcd.kill()
    for endpoint in both:
        wait_until(answers(endpoint, 503), FOLLOWS, f"{endpoint.url}/healthz to answer 503")
    for endpoint in both:  # /metrics still answers: it says etcd is down, and nobody leads
        assert (endpoint.value("esiprov_etcd_up"), endpoint.value("esiprov_watcher_leader")) == (0, 0)
        assert endpoint.value("esiprov_resources") is None  # the fleet is left out, not shown stale
    own_watchers.etcd.restart()
    for endpoint in both:
        wait_until(answers(endpoint, 200), FOLLOWS, f"{endpoint.url}/healthz to answer 200 again")
    wait_until(lambda: sum(endpoint.value("esiprov_watcher_leader") or 0 for endpoint in both) == 1, FOLLOWS,
               "one of the two to lead again")


def watch_exit(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "esiprov.cli", "watch"], env={**os.environ, **env}, cwd=ROOT,
                          check=False, capture_output=True, text=True, timeout=60)


def test_a_metrics_address_already_in_use_stops_esiprov_watch_with_one_line_naming_the_variable(
        watchers: Watchers) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        done = watch_exit({**watchers.env, "ESIPROV_METRICS_ADDRESS": address})
    assert done.returncode == 1
    line = f"esiprov: ESIPROV_METRICS_ADDRESS: cannot listen on {address}: Address already in use"
    assert done.stderr.splitlines() == [line]


def test_a_metrics_address_that_is_not_host_and_port_stops_esiprov_watch_with_one_line(watchers: Watchers) -> None:
    done = watch_exit({**watchers.env, "ESIPROV_METRICS_ADDRESS": "9465"})
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "esiprov: ESIPROV_METRICS_ADDRESS: '9465' is not host:port (e.g. 127.0.0.1:9465, 0.0.0.0:9465 or [::]:9465)"]
