"""Workers die, brokers lose messages, watchers crash: every resource still ends final, one stack each.

Each test runs its own etcd, Redis, worker and watcher(s) (the session's Heat and
switches are shared) and breaks them on purpose with N resources in flight.
"""
from __future__ import annotations

import pytest

from esiprov.devenv.pipeline import STANDING_BY, start_watcher, start_worker
from esiprov.devenv.process import wait_until

pytestmark = pytest.mark.slow


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


def test_an_etcd_restart_mid_flight_is_ridden_out_by_workers_and_watcher(cluster):
    with start_worker(cluster.env, cluster.logs), start_watcher(cluster.env, cluster.logs) as watcher:
        bodies = cluster.devices()
        wait_until(cluster.in_flight, 30, "a stack operation in flight")
        cluster.etcd.restart()
        later = cluster.devices(2)
        cluster.all_created(bodies + later)
        assert "relisting" in watcher.log_path.read_text()
    cluster.one_stack_each(bodies + later)


def test_a_hung_etcd_is_noticed_and_the_watcher_reconnects_when_it_answers_again(cluster):
    with start_worker(cluster.env, cluster.logs), start_watcher(cluster.env, cluster.logs) as watcher:
        first = cluster.devices(2)
        cluster.all_created(first)
        cluster.etcd.freeze()  # sockets stay open, nothing answers: a silent watch stream
        try:
            wait_until(lambda: "lost leadership" in watcher.log_path.read_text()
                       or "delivered nothing" in watcher.log_path.read_text(), 40, "the watcher to notice")
        finally:
            cluster.etcd.freeze(False)
        later = cluster.devices(2)
        cluster.all_created(later, timeout=120)
    cluster.one_stack_each(first + later)
