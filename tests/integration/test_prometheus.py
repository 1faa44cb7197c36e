"""The repository's Prometheus files pass promtool, and a real Prometheus scrapes real watchers and Flower.

The scrape test runs a fleet of its own (etcd, Redis, a worker, a leading and a
standby watcher serving metrics, Flower with basic authentication; the session's
Heat and switches), creates a device and a port through it, and asks a real
Prometheus server, through its HTTP API, what it scraped.
"""
from __future__ import annotations

import base64
import urllib.error
import urllib.request
import uuid
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from esiprov import templates
from esiprov.devenv.etcd import EtcdServer
from esiprov.devenv.flower import Flower, start_flower, wait_for_events
from esiprov.devenv.local import esiprov_env
from esiprov.devenv.pipeline import ROOT, STANDING_BY, start_worker
from esiprov.devenv.process import ServiceError, wait_until
from esiprov.devenv.prometheus import PrometheusServer, promtool
from esiprov.devenv.redis import RedisServer
from esiprov.settings import from_env
from esiprov.store import Store
from tests.fixtures.cluster import PORT, Cluster
from tests.fixtures.metrics import start_watcher_with_metrics
from tests.fixtures.services import running

pytestmark = pytest.mark.slow

DEPLOY = ROOT / "deploy" / "prometheus"
ALERTS_TEST = ROOT / "tests" / "data" / "prometheus" / "alerts_test.yml"
FLOWER_LOGIN = "ops:flower-secret"
#: seconds within which Prometheus (scraping every second) shows what the fleet did
SCRAPED = 60.0


def test_promtool_accepts_the_repository_s_scrape_configuration_and_alert_rules() -> None:
    config, rules = promtool("check", "config", str(DEPLOY / "prometheus.yml")), \
        promtool("check", "rules", str(DEPLOY / "alerts.yml"))
    assert config.returncode == 0, config.stdout + config.stderr
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 6 rules found" in rules.stdout


def test_each_alert_fires_when_it_should_and_none_on_a_healthy_fleet_as_promtool_test_rules_checks() -> None:
    result = promtool("test", "rules", str(ALERTS_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    for alert in ("EsiprovNoLeader", "EsiprovWorkflowTooOld", "EsiprovFailedJobs", "EsiprovPollCyclesStopped",
                  "EsiprovUnsentWorkflows", "EsiprovEtcdUnreachable"):
        assert f"alertname: {alert}" in ALERTS_TEST.read_text()


@dataclass
class Scraped:
    prometheus: PrometheusServer
    flower: Flower


@pytest.fixture(scope="module")
def scraped(heat_server, switches, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    """A fleet that created a device and a port while Flower watched, scraped every second by Prometheus."""
    logs = tmp_path_factory.mktemp("prometheus")
    with ExitStack() as stack:
        etcd = stack.enter_context(running(EtcdServer(log_dir=logs)))
        redis = stack.enter_context(running(RedisServer(log_dir=logs)))
        env = esiprov_env(etcd, redis, heat_server, switches, "public-esi")
        store = stack.enter_context(closing(Store.connect(from_env(env))))
        templates.save(store, *templates.load_dir(templates.SHIPPED))
        flower = _flower(env, logs)
        stack.enter_context(flower)
        worker = stack.enter_context(start_worker(env, logs))
        leading, leader = start_watcher_with_metrics(env, logs, "watcher-1")
        stack.enter_context(leading)
        standing_by, standby = start_watcher_with_metrics(env, logs, "watcher-2", ready=STANDING_BY)
        stack.enter_context(standing_by)
        wait_for_events(flower, worker)
        fleet = Cluster(env, store, logs, heat_server.url, redis, etcd, uuid.uuid4().hex)
        device = fleet.devices(1)
        port = fleet.ports(device[0], 1)
        fleet.all_created(device)
        fleet.all_created(port, rtype=PORT)
        jobs = {"esiprov": [leader.address, standby.address], "flower": [f"127.0.0.1:{flower.port}"]}
        prometheus = PrometheusServer(jobs, rule_files=[DEPLOY / "alerts.yml"], log_dir=logs)
        yield Scraped(stack.enter_context(running(prometheus)), flower)


def _flower(env: dict[str, str], logs: Path) -> Flower:
    try:
        return start_flower(env, logs, basic_auth=FLOWER_LOGIN)
    except ServiceError as exc:
        pytest.fail(f"Flower did not start: {exc}", pytrace=False)


def answers(prometheus: PrometheusServer, expression: str, wanted: set[float]) -> bool:
    """The query's answer is one value per series, and their set is ``wanted``."""
    return {value for _, value in prometheus.query(expression)} == wanted


def test_prometheus_scrapes_both_watchers_and_finds_exactly_one_leader(scraped: Scraped) -> None:
    prometheus = scraped.prometheus
    wait_until(lambda: answers(prometheus, 'count(up{job="esiprov"} == 1)', {2}), SCRAPED, "both watchers up")
    wait_until(lambda: answers(prometheus, "esiprov_watcher_leader", {0, 1}), SCRAPED, "a leader and a standby")
    assert answers(prometheus, "sum(esiprov_watcher_leader)", {1})


def test_prometheus_sees_the_created_port_as_create_completed_on_every_watcher(scraped: Scraped) -> None:
    query = 'esiprov_resources{resource_type="ese_physical_port",worker_state="CREATE_COMPLETED"} >= 1'
    wait_until(lambda: len(scraped.prometheus.query(query)) == 2, SCRAPED, "the port on both watchers")
    assert {labels["instance"] for labels, _ in scraped.prometheus.query(query)} == \
        set(scraped.prometheus.jobs["esiprov"])
    assert answers(scraped.prometheus, 'esiprov_resources{resource_type="ese_device"}', {1})


def test_prometheus_scrapes_flower_s_own_metrics_of_the_esiprov_steps_without_credentials(scraped: Scraped) -> None:
    """Flower counts the task events it receives; which of them arrive is Flower's business (events are
    best-effort), so this asks for the three steps by name, not for a count of successes."""
    query = 'sum by (task) (flower_events_total{task=~"esiprov[.].*"})'
    steps = {"esiprov.heat_worker", "esiprov.monitoring_worker", "esiprov.finalize"}
    try:
        wait_until(lambda: {labels["task"] for labels, _ in scraped.prometheus.query(query)} >= steps, SCRAPED,
                   "Flower's counts of the esiprov steps")
    except TimeoutError as exc:
        pytest.fail(f"{exc}: Prometheus has {scraped.prometheus.query('flower_events_total')}", pytrace=False)
    assert answers(scraped.prometheus, 'up{job="flower"}', {1})
    assert answers(scraped.prometheus, "flower_worker_online", {1})


def test_flower_with_basic_auth_refuses_its_api_and_ui_without_the_login_and_serves_them_with_it(
        scraped: Scraped) -> None:
    def status(path: str, login: str | None = None) -> int:
        headers = {"Authorization": "Basic " + base64.b64encode(login.encode()).decode()} if login else {}
        try:
            with urllib.request.urlopen(urllib.request.Request(f"{scraped.flower.url}{path}", headers=headers),
                                        timeout=10) as answer:
                return answer.status
        except urllib.error.HTTPError as error:
            return error.code

    assert [status("/api/workers"), status("/tasks"), status("/api/workers", "ops:wrong")] == [401, 401, 401]
    assert [status("/api/workers", FLOWER_LOGIN), status("/tasks", FLOWER_LOGIN)] == [200, 200]
    assert status("/metrics") == 200  # as README says: Flower's /metrics needs no login


def test_prometheus_evaluates_the_repository_s_alerts_on_the_real_watchers(scraped: Scraped) -> None:
    """No alert rule errs; nobody misses a leader; no poll cycle ever ran here, so that alert is pending."""
    def states() -> dict[str, str]:
        rules = [rule for group in scraped.prometheus.api("rules")["groups"] for rule in group["rules"]]
        assert [rule["name"] for rule in rules if rule["health"] == "err"] == []
        return {rule["name"]: rule["state"] for rule in rules if rule["type"] == "alerting"}

    expected = {"EsiprovNoLeader": "inactive", "EsiprovWorkflowTooOld": "inactive", "EsiprovFailedJobs": "inactive",
                "EsiprovPollCyclesStopped": "pending", "EsiprovUnsentWorkflows": "inactive",
                "EsiprovEtcdUnreachable": "inactive"}
    # before the first scrapes, every series is absent: EsiprovNoLeader is pending until they come
    wait_until(lambda: states() == expected, SCRAPED, f"the alerts to settle as {expected}")
