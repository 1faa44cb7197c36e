"""Workers die, brokers lose messages, watchers crash: every resource still ends final, one stack each.

Each test runs its own etcd, broker, worker and watcher(s) on default settings
(the session's Heat and switches are shared), breaks them on purpose with
resources in flight, and lets the fleet heal itself: nobody runs resync. How long
each recovery took is printed in the run's summary.
"""
from __future__ import annotations

import pytest

from esiprov import keys
from esiprov.devenv.pipeline import STANDING_BY, start_watcher, start_worker
from esiprov.devenv.process import wait_until
from tests.fixtures.cluster import DEVICE, PORT, handed_over
from tests.fixtures.pipeline import BROKERS

pytestmark = pytest.mark.slow

#: seconds within which a broker that came back empty has everything in flight final again
BROKER_BACK = 20.0
#: what the leading watcher logs when it resends the workflow of a worker that is gone
RESENT_FROM_A_DEAD_WORKER = "the worker holding its workflow is gone; sent again"


@pytest.mark.parametrize("cluster", BROKERS, indirect=True)
def test_a_worker_killed_with_kill_9_mid_flight_is_healed_by_the_next_worker_without_an_operator(cluster):
    with start_watcher(cluster.env, cluster.logs) as watcher:
        with start_worker(cluster.env, cluster.logs, name="worker-1") as worker:
            devices = cluster.devices()
            ports = cluster.ports(devices[0], 6)  # they wait (countdowns) for the first device's stack
            wait_until(cluster.in_flight, 30, "a stack operation in flight")
            worker.kill()
        with start_worker(cluster.env, cluster.logs, name="worker-2"):
            cluster.recovered(f"{cluster.broker}: a worker killed with kill -9, another started",
                              {DEVICE: devices, PORT: ports})
        if cluster.broker == "redis":  # RabbitMQ hands a dead consumer's messages back by itself
            assert RESENT_FROM_A_DEAD_WORKER in watcher.log_path.read_text()
            # and Redis kept no copy of what the dead worker had taken, to run again 15 minutes later
            with cluster.redis.client() as broker:
                assert broker.hlen("unacked") == 0
    cluster.one_stack_each(devices)
    cluster.one_stack_each(ports, PORT)


@pytest.mark.parametrize("cluster", BROKERS, indirect=True)
def test_a_worker_killed_while_its_stack_watch_waits_loses_none_of_the_stacks_building(cluster):
    cluster.slow_devices(6)
    with start_watcher(cluster.env, cluster.logs) as watcher:
        with start_worker(cluster.env, cluster.logs, name="worker-1") as worker:
            devices = cluster.devices()
            # every heat step has handed its wait to the watch and acked its message: only the
            # worker's holds keep those workflows now, on both brokers
            wait_until(lambda: set(handed_over(worker.log_path)) == {d["id"] for d in devices}, 60,
                       "every step waiting in the stack watch")
            worker.kill()
        with start_worker(cluster.env, cluster.logs, name="worker-2"):
            cluster.recovered(f"{cluster.broker}: a worker killed with kill -9 while its stacks built",
                              {DEVICE: devices})
        assert RESENT_FROM_A_DEAD_WORKER in watcher.log_path.read_text()
    cluster.one_stack_each(devices)


@pytest.mark.parametrize("cluster", BROKERS, indirect=True)
def test_a_frozen_worker_s_workflows_are_taken_over_by_the_other_worker(cluster):
    with start_watcher(cluster.env, cluster.logs) as watcher, \
            start_worker(cluster.env, cluster.logs, name="worker-1") as frozen:
        bodies = cluster.devices()
        wait_until(cluster.in_flight, 30, "a stack operation in flight")
        frozen.freeze()  # SIGSTOP: sockets stay open, as on a host that vanished from the network
        try:
            with start_worker(cluster.env, cluster.logs, name="worker-2"):
                cluster.recovered(f"{cluster.broker}: a worker frozen with SIGSTOP, another running",
                                  {DEVICE: bodies})
        finally:
            frozen.freeze(False)
        if cluster.broker == "redis":  # RabbitMQ hands them back once heartbeats say the worker is gone
            assert RESENT_FROM_A_DEAD_WORKER in watcher.log_path.read_text()
    cluster.one_stack_each(bodies)


@pytest.mark.parametrize("cluster", BROKERS, indirect=True)
def test_a_broker_that_lost_its_messages_is_noticed_and_everything_in_flight_is_sent_again(cluster):
    with start_worker(cluster.env, cluster.logs), start_watcher(cluster.env, cluster.logs) as watcher:
        bodies = cluster.devices()
        wait_until(cluster.in_flight, 30, "a stack operation in flight")
        cluster.empty_broker()
        # the leader's marker check (3 s) and the workers' reconnect: seconds, not a consumer that
        # stalls after its reconnect until RabbitMQ drops it for missed heartbeats (30 s)
        cluster.recovered(f"{cluster.broker}: the broker emptied", {DEVICE: bodies}, within=BROKER_BACK)
        wait_until(lambda: "the broker holds none of esiprov's messages" in watcher.log_path.read_text(), 30,
                   "the leader to notice the broker lost its messages")
    cluster.one_stack_each(bodies)


@pytest.mark.parametrize("cluster", BROKERS, indirect=True)
def test_workflows_claimed_while_the_broker_was_down_are_sent_once_it_answers(cluster):
    with start_worker(cluster.env, cluster.logs), start_watcher(cluster.env, cluster.logs):
        cluster.stop_broker()
        bodies = cluster.devices(2)
        wait_until(lambda: cluster.store.count(keys.UNSENT) == len(bodies), 60, "the claims to be marked unsent")
        cluster.start_broker()
        cluster.recovered(f"{cluster.broker}: workflows claimed while the broker was down", {DEVICE: bodies})
    assert cluster.store.count(keys.UNSENT) == 0
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
