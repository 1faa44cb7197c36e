"""A stack that builds for seconds is waited for by its worker's stack watch (esiprov.stack_watch):
the heat step hands the wait over and is sent again once, when its stack has finished, instead of
re-checking after every countdown; the watch lists all building stacks of a tenant in one request."""
from __future__ import annotations

import re
import time
import uuid
from collections import Counter

import pytest

from esiprov import keys
from esiprov.devenv.history import history
from esiprov.devenv.pipeline import start_watcher, start_worker
from esiprov.devenv.process import wait_until
from esiprov.heat import HeatClient
from esiprov.settings import Settings
from esiprov.stack_watch import StackWatch
from tests.fixtures.cluster import DEVICE, handed_over

pytestmark = pytest.mark.slow

BUILD_SECONDS = 3
#: how the worker logs a heat step that re-checks its stack after a countdown
COUNTDOWN = re.compile(r"esiprov\.heat_worker\[.*\] retry: Retry in")
TENANT = "tenant-watch"
TEMPLATE = "heat_template_version: 2013-05-23\nresources: {}\n"


def test_a_stack_that_builds_for_seconds_is_checked_again_once_when_it_has_finished(cluster):
    cluster.slow_devices(BUILD_SECONDS)
    since = cluster.store.range(keys.CONFIG, keys_only=True)[1] + 1
    with start_worker(cluster.env, cluster.logs) as worker, start_watcher(cluster.env, cluster.logs):
        started = time.monotonic()
        bodies = cluster.devices(4)
        cluster.all_created(bodies)
        took = time.monotonic() - started

    assert took >= BUILD_SECONDS, "the stacks really built for seconds"
    ids = sorted(body["id"] for body in bodies)
    assert sorted(handed_over(worker.log_path)) == ids, "each step handed its wait over exactly once"
    assert not COUNTDOWN.findall(worker.log_path.read_text()), "no step re-checked its stack after a countdown"
    held = [change.key for change in history(cluster.store, keys.HOLDS, since) if change.entry is not None]
    assert sorted(held) == sorted(keys.hold(DEVICE, rid) for rid in ids), \
        "one hold per workflow: the re-check the watch sent carried the worker's mark"
    cluster.one_stack_each(bodies)


def test_a_prefork_worker_s_steps_which_hold_nothing_themselves_re_check_after_countdowns(cluster):
    cluster.slow_devices(BUILD_SECONDS)
    with start_worker(cluster.env, cluster.logs, pool="prefork", concurrency=2) as worker, \
            start_watcher(cluster.env, cluster.logs):
        bodies = cluster.devices(2)
        cluster.all_created(bodies)

    assert not handed_over(worker.log_path), "a pool child's wait would die with the child, its lease alive"
    assert COUNTDOWN.findall(worker.log_path.read_text())
    cluster.one_stack_each(bodies)


def test_a_worker_stopped_while_its_stacks_build_leaves_them_to_the_next_worker(cluster):
    cluster.slow_devices(BUILD_SECONDS)
    with start_watcher(cluster.env, cluster.logs) as watcher:
        with start_worker(cluster.env, cluster.logs, name="worker-1") as worker:
            bodies = cluster.devices(3)
            wait_until(lambda: set(handed_over(worker.log_path)) == {b["id"] for b in bodies}, 60,
                       "every step waiting in the stack watch")
            worker.stop()  # SIGTERM: a warm shutdown ends the worker's lease, and with it its holds
        with start_worker(cluster.env, cluster.logs, name="worker-2"):
            cluster.all_created(bodies, timeout=60)
        assert "the worker holding its workflow is gone; sent again" in watcher.log_path.read_text()
    cluster.one_stack_each(bodies)


def woken_when(stacks: list[str], settings: Settings, watch: StackWatch, countdown: float = 60.0
               ) -> dict[str, float]:
    """Hand the wait of each of ``stacks`` (just created) to ``watch``; {name: time.time() of its resend}."""
    woken: dict[str, float] = {}
    for name in stacks:
        watch.add(TENANT, name, ["CREATE_IN_PROGRESS", ""], time.time(), countdown,
                  lambda name=name: woken.setdefault(name, time.time()))
    wait_until(lambda: len(woken) == len(stacks), 30, "every step woken")
    return woken


def test_the_watch_wakes_each_step_once_its_stack_has_finished_and_lists_them_together(sim, sim_settings):
    sim.configure(build_time=1.0, fail_rate=0, error_rate=0)
    heat = HeatClient(sim_settings, TENANT)
    names = [f"ese_device_{uuid.uuid4().hex[:8]}" for _ in range(30)]
    built = {}
    for name in names:
        built[name] = time.time() + 1.0  # at the earliest: the simulator starts the build on the create
        heat.create(name, TEMPLATE, {}, None)
    before = sim.stats()["requests"]

    woken = woken_when(names, sim_settings, StackWatch(sim_settings))

    assert all(woken[name] >= built[name] for name in names), "no step woken before its stack finished"
    assert all(heat.get(name).complete for name in names)
    requests = Counter(sim.stats()["requests"]) - Counter(before)
    assert requests["GET stacks"] < len(names) / 2, f"the building stacks were listed together: {requests}"
    assert requests["GET stack"] == len(names), "no stack was read on its own but by the test"


def test_a_watch_that_cannot_list_wakes_each_step_at_the_countdown_it_would_have_waited(sim, sim_settings, caplog):
    sim.configure(build_time=30.0, fail_rate=0, error_rate=0)
    name = f"ese_device_{uuid.uuid4().hex[:8]}"
    HeatClient(sim_settings, TENANT).create(name, TEMPLATE, {}, None)
    sim.configure(error_rate=1.0)
    try:
        handed = time.time()
        woken = woken_when([name], sim_settings, StackWatch(sim_settings), countdown=1.0)
    finally:
        sim.configure(error_rate=0)
    assert woken[name] >= handed + 1.0, "woken at its countdown, though the stack still builds"
    failures = [r for r in caplog.records if r.name == "esiprov.stack_watch" and r.levelname == "WARNING"]
    assert len(failures) == 1, "one warning when the lists start failing, not one per round"
    assert "HTTP 503" in failures[0].getMessage()


def test_a_re_check_the_broker_refused_is_sent_again(sim, sim_settings):
    sim.configure(build_time=0.0, fail_rate=0, error_rate=0)
    name = f"ese_device_{uuid.uuid4().hex[:8]}"
    HeatClient(sim_settings, TENANT).create(name, TEMPLATE, {}, None)
    attempts: list[float] = []

    def resend() -> None:
        attempts.append(time.time())
        if len(attempts) == 1:
            raise ConnectionError("the broker is down")

    StackWatch(sim_settings).add(TENANT, name, ["CREATE_IN_PROGRESS", ""], time.time(), 60.0, resend)
    wait_until(lambda: len(attempts) == 2, 30, "the re-check sent again")
