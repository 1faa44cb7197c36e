"""The monitoring poller against real etcd and snmpsim switches, and once under real Celery beat.

The module has an etcd of its own, so its cycles see only the targets it
registers (SWITCH_A and SWITCH_B with every port, as monitoring_worker and
finalize leave them); each test starts from that fleet, all ports up.
"""
from __future__ import annotations

import logging
import re
import sys
import threading
import time
from pathlib import Path

import pytest

from esiprov import keys, poller
from esiprov.devenv.apiserver import put_config
from esiprov.devenv.etcd import EtcdServer
from esiprov.devenv.fleet import device_id, port_id, register_fleet
from esiprov.devenv.pipeline import ROOT, start_worker
from esiprov.devenv.process import Service, wait_until
from esiprov.devenv.redis import RedisServer
from esiprov.devenv.switches import Switch, Switches
from esiprov.snmp import DOWN, FAIL, UP, SnmpProbe
from esiprov.store import Store
from tests.fixtures.polled_fleet import FLEET, etcd, etcd_of_module, module_store, probe  # noqa: F401 - fixtures
from tests.fixtures.services import COMMUNITY, COMMUNITY_TOKEN, NO_AGENT_IP, SWITCH_A, SWITCH_B

A, B = SWITCH_A, SWITCH_B
PORT_A, PORT_B = "xe-0/0/4", "ge-0/0/1"


def port_monitoring(switch: Switch, name: str) -> str:
    return keys.monitoring("ese_physical_port", port_id(switch.ip, name))


def device_monitoring(switch: Switch) -> str:
    return keys.monitoring("ese_device", device_id(switch.ip))


def statuses(etcd: Store, switch: Switch) -> dict[str, str]:
    """The /monitoring status of the switch ("switch") and of each of its ports."""
    found = {name: etcd.value(port_monitoring(switch, name))["port"] for name in switch.ports}
    return {"switch": etcd.value(device_monitoring(switch))["switch"], **found}


def all_up(switch: Switch) -> dict[str, str]:
    return {"switch": UP, **{name: UP for name in switch.ports}}


def test_a_port_flipped_down_shows_DOWN_after_one_cycle_and_UP_after_flipping_back(
        etcd: Store, probe: SnmpProbe, switches: Switches) -> None:
    try:
        switches.set_port(A.ip, PORT_A, up=False)
        summary = poller.poll(etcd, probe)
        assert etcd.value(port_monitoring(A, PORT_A)) == {"version": 1, "port": DOWN}
        assert statuses(etcd, A) == {**all_up(A), PORT_A: DOWN}
        assert summary.changes == 1
    finally:
        switches.set_port(A.ip, PORT_A, up=True)
    poller.poll(etcd, probe)
    assert statuses(etcd, A) == all_up(A)


def test_one_walk_per_device_serves_all_its_ports(etcd: Store, probe: SnmpProbe) -> None:
    summary = poller.poll(etcd, probe)
    assert (summary.devices, summary.targets, summary.unreachable) == (2, 7, 0)
    assert summary.snmp_calls == 2  # per switch: one walk that asks sysUpTime in its first request


def test_a_port_name_the_switch_does_not_have_shows_FAIL(etcd: Store, probe: SnmpProbe) -> None:
    register_fleet(etcd, [Switch(A.ip, COMMUNITY, ("xe-9/9/9",))], COMMUNITY_TOKEN)
    poller.poll(etcd, probe)
    assert etcd.value(port_monitoring(A, "xe-9/9/9"))["port"] == FAIL
    assert statuses(etcd, A) == all_up(A)


def test_a_silent_switch_gives_FAIL_within_one_timeout_while_the_other_is_still_polled(
        etcd: Store, probe: SnmpProbe, switches: Switches) -> None:
    try:
        switches.stop_answering(B.ip)
        switches.set_port(A.ip, PORT_A, up=False)
        summary = poller.poll(etcd, probe)
        assert statuses(etcd, B) == {name: FAIL for name in all_up(B)}
        assert statuses(etcd, A) == {**all_up(A), PORT_A: DOWN}
        assert summary.unreachable == 1
        # one unanswered sysUpTime for the whole switch, not one timeout per target (3 here)
        assert summary.seconds < probe.max_wait + 0.8
    finally:
        switches.resume(B.ip)
        switches.set_port(A.ip, PORT_A, up=True)
    poller.poll(etcd, probe)
    assert statuses(etcd, B) == all_up(B)


def test_monitoring_is_not_rewritten_when_nothing_changed(etcd: Store, probe: SnmpProbe) -> None:
    watched = [port_monitoring(s, name) for s in FLEET for name in s.ports] + [device_monitoring(s) for s in FLEET]
    before = {key: etcd.get(key).mod_revision for key in watched}
    for _ in range(2):
        assert poller.poll(etcd, probe).changes == 0
    assert {key: etcd.get(key).mod_revision for key in watched} == before


def test_each_cycle_keeps_sysUpTime_for_the_next_and_a_restarted_switch_stays_UP(
        etcd: Store, probe: SnmpProbe) -> None:
    poller.poll(etcd, probe)
    first = etcd.value(poller.LAST_CYCLE)["uptimes"]
    poller.poll(etcd, probe)
    second = etcd.value(poller.LAST_CYCLE)["uptimes"]
    assert set(second) == {A.ip, B.ip} and second[A.ip] > first[A.ip]
    last = etcd.value(poller.LAST_CYCLE)
    etcd.put(poller.LAST_CYCLE, {**last, "uptimes": {**second, A.ip: second[A.ip] + 10 ** 6}})
    poller.poll(etcd, probe)  # sysUpTime went back: restarted, alive (a frozen one is DOWN: unit tests)
    assert etcd.value(device_monitoring(A)) == {"version": 1, "switch": UP}


def test_monitoring_carries_the_resources_current_config_version(
        etcd: Store, probe: SnmpProbe, switches: Switches) -> None:
    put_config(etcd, "ese_physical_port",
               {"id": port_id(A.ip, PORT_A), "name": PORT_A, "ese_device_id": device_id(A.ip)}, version=2)
    try:
        switches.set_port(A.ip, PORT_A, up=False)
        poller.poll(etcd, probe)
    finally:
        switches.set_port(A.ip, PORT_A, up=True)
    assert etcd.value(port_monitoring(A, PORT_A)) == {"version": 2, "port": DOWN}


def test_a_poll_that_read_a_target_before_its_delete_does_not_recreate_monitoring(
        etcd: Store, probe: SnmpProbe, switches: Switches) -> None:
    stale = poller.read_snapshot(etcd)
    deleted = port_id(B.ip, PORT_B)
    etcd.commit(deletes=[keys.target("ese_physical_port", deleted), keys.monitoring("ese_physical_port", deleted)])
    devices, _ = poller.group(stale.targets, stale.configs)
    device_b = next(d for d in devices if d.address == B.ip)
    try:
        switches.set_port(B.ip, PORT_B, up=False)
        _, changes, conflicts = poller.poll_device(etcd, probe, device_b, stale)
    finally:
        switches.set_port(B.ip, PORT_B, up=True)
    assert (changes, conflicts) == (0, 1)
    assert etcd.get(keys.monitoring("ese_physical_port", deleted)) is None
    assert etcd.get(keys.target("ese_physical_port", deleted)) is None


def test_a_device_whose_management_address_changes_takes_its_ports_along(
        etcd: Store, probe: SnmpProbe) -> None:
    put_config(etcd, "ese_device", {"id": device_id(A.ip), "management_ip_address": NO_AGENT_IP}, version=2)
    poller.poll(etcd, probe)
    assert statuses(etcd, A) == {name: FAIL for name in all_up(A)}
    moved = etcd.value(keys.target("ese_physical_port", port_id(A.ip, PORT_A)))
    assert moved["device_ip"] == NO_AGENT_IP
    put_config(etcd, "ese_device", {"id": device_id(A.ip), "management_ip_address": A.ip}, version=3)
    poller.poll(etcd, probe)
    assert statuses(etcd, A) == all_up(A)
    assert etcd.value(device_monitoring(A)) == {"version": 3, "switch": UP}


def test_a_cycle_skips_while_another_holds_the_lock_and_says_so(
        etcd: Store, probe: SnmpProbe, caplog: pytest.LogCaptureFixture) -> None:
    holding, release = threading.Event(), threading.Event()

    def other_cycle() -> None:
        with poller.cycle_lock(etcd) as keep_alive:
            assert keep_alive is not None
            holding.set()
            release.wait(10)

    other = threading.Thread(target=other_cycle)
    other.start()
    try:
        assert holding.wait(10)
        with caplog.at_level(logging.INFO, logger="esiprov.poller"):
            assert poller.guarded_poll(etcd, probe, interval=0.01) is None
        assert "skipped: another cycle holds" in caplog.text
    finally:
        release.set()
        other.join()
    assert poller.guarded_poll(etcd, probe, interval=0.01) is not None


def test_a_cycle_due_less_than_half_an_interval_after_the_last_skips_as_a_second_beat_would(
        etcd: Store, probe: SnmpProbe, caplog: pytest.LogCaptureFixture) -> None:
    assert poller.guarded_poll(etcd, probe, interval=60) is not None
    with caplog.at_level(logging.INFO, logger="esiprov.poller"):
        assert poller.guarded_poll(etcd, probe, interval=60) is None
    assert "second celery beat" in caplog.text
    assert etcd.get(poller.LOCK) is None  # released: the lease is revoked at once


def _beat_env(etcd: EtcdServer, redis: RedisServer, switches: Switches, database: int,
              interval: float) -> dict[str, str]:
    """The environment of a beat and its worker, polling every ``interval`` s, on a Redis ``database``
    of its own (no other test's worker takes these tasks)."""
    return {"ESIPROV_ETCD_ENDPOINTS": etcd.endpoint, "ESIPROV_BROKER_URL": redis.url.rsplit("/", 1)[0] + f"/{database}",
            "ESIPROV_SNMP_PORT": str(switches.port), "ESIPROV_SNMP_COMMUNITIES": f"{COMMUNITY_TOKEN}={COMMUNITY}",
            "ESIPROV_SNMP_TIMEOUT": "0.5", "ESIPROV_MONITOR_INTERVAL": str(interval)}


def _beat(name: str, env: dict[str, str], tmp_path: Path) -> Service:
    """``celery -A tasks beat`` with a schedule file of its own; at debug level it logs each task id it sends."""
    return Service(name, [sys.executable, "-m", "celery", "-A", "tasks", "beat", "-l", "debug",
                          "-s", str(tmp_path / f"{name}-schedule"), "--pidfile", str(tmp_path / f"{name}.pid")],
                   tmp_path, env, cwd=ROOT)


def _sent(beat: Service, task: str, since: int = 0) -> list[str]:
    """The ids of the ``task``s ``beat`` logged sending past byte ``since`` of its log."""
    return re.findall(rf"{re.escape(task)} sent\. id->(\S+)", beat.log_path.read_text(errors="replace")[since:])


def _succeeded(worker: Service, task: str, task_id: str) -> bool:
    return f"Task {task}[{task_id}] succeeded" in worker.log_path.read_text(errors="replace")


def test_two_beats_one_killed_polls_and_resyncs_go_on_with_the_survivor(
        etcd: Store, etcd_of_module: EtcdServer, redis_server: RedisServer, switches: Switches,
        tmp_path: Path) -> None:
    interval = 2
    env = {**_beat_env(etcd_of_module, redis_server, switches, database=4, interval=interval),
           "ESIPROV_RESYNC_INTERVAL": str(interval)}
    doomed, survivor = _beat("beat-a", env, tmp_path), _beat("beat-b", env, tmp_path)
    with doomed.start(lambda: True), survivor.start(lambda: True), \
            start_worker(env, tmp_path, name="periodic-worker", concurrency=4, queues="poller,finalize") as worker:
        wait_until(lambda: all(_sent(beat, "esiprov.poll_targets") for beat in (doomed, survivor)), 20,
                   "both beats sending polls (see beat-a.log, beat-b.log)")
        doomed.kill()
        killed, since = time.time(), len(survivor.log_path.read_text(errors="replace"))
        # a poll sent before the kill expires one interval after it was sent: a cycle started later
        # was sent by the survivor
        wait_until(lambda: (etcd.value(poller.LAST_CYCLE) or {}).get("started", 0) > killed + interval,
                   5 * interval + 10, "a poll cycle started after the kill (see periodic-worker.log)")
        wait_until(lambda: any(_succeeded(worker, "esiprov.resync", task_id)
                               for task_id in _sent(survivor, "esiprov.resync", since)), 5 * interval + 10,
                   "a resync the survivor sent after the kill, succeeded (see periodic-worker.log)")


def test_celery_beat_and_a_worker_show_a_flipped_port_within_one_interval(
        etcd: Store, etcd_of_module: EtcdServer, redis_server: RedisServer, switches: Switches,
        tmp_path: Path) -> None:
    interval = 1.0
    env = _beat_env(etcd_of_module, redis_server, switches, database=3, interval=interval)
    beat = _beat("beat", env, tmp_path)
    # beat starts while the worker does; its first task waits in the queue meanwhile
    with beat.start(lambda: True), start_worker(env, tmp_path, name="poller-worker", concurrency=2,
                                                queues="poller"):
        wait_until(lambda: etcd.get(poller.LAST_CYCLE) is not None, 15, "a first poll cycle (see beat.log)")
        try:
            switches.set_port(A.ip, PORT_A, up=False)
            flipped = time.monotonic()
            wait_until(lambda: etcd.value(port_monitoring(A, PORT_A))["port"] == DOWN, 10, "DOWN")
            assert time.monotonic() - flipped < interval + 1.5
        finally:
            switches.set_port(A.ip, PORT_A, up=True)
        flipped = time.monotonic()
        wait_until(lambda: etcd.value(port_monitoring(A, PORT_A))["port"] == UP, 10, "UP again")
        assert time.monotonic() - flipped < interval + 1.5
    assert statuses(etcd, A) == all_up(A)
