"""Queue placement across hosts, on network namespaces (README, "Running in production").

Four hosts on one private /24: "control" runs etcd, Redis (the broker) and Heat; "heat" a worker on
heat_worker and finalize; "mgmt" a worker on monitoring_worker and poller, and beat; "watch" the
watcher. The emulated switch sits in a fifth namespace linked to mgmt alone, so only mgmt reaches
it. Every namespace and link is removed at the end, whatever happened (esiprov.devenv.netns).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from esiprov import keys, templates
from esiprov.devenv.apiserver import put_config, wait_for_state
from esiprov.devenv.demo import DEVICE, PORT
from esiprov.devenv.etcd import EtcdServer
from esiprov.devenv.heatserver import HeatServer
from esiprov.devenv.local import esiprov_env
from esiprov.devenv.netns import Network
from esiprov.devenv.pipeline import start_beat, start_watcher, start_worker
from esiprov.devenv.process import Service, wait_until
from esiprov.devenv.redis import RedisServer
from esiprov.devenv.switches import Switch, Switches
from esiprov.settings import Settings, from_env
from esiprov.snmp import DOWN, FAIL, UP, SnmpProbe
from esiprov.store import Store

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                       reason="network namespaces need root and iproute2"),
]

LAN = "10.231.7.0/24"
SWITCH_NET, SWITCH_IP = "10.231.8.0/24", "10.231.8.34"
SWITCH = Switch(SWITCH_IP, "public-esi", ("xe-0/0/3", "xe-0/0/4", "xe-0/0/5"), name="ese-sw-01")
DEVICE_HERE: dict[str, Any] = {**DEVICE, "management_ip_address": SWITCH_IP, "public_ip_address": SWITCH_IP}
HEAT_STEPS = ("esiprov.heat_worker", "esiprov.finalize")
#: set in the pytest process that runs the test for real (in_a_fresh_process)
FRESH = "ESIPROV_TEST_FRESH_PROCESS"
MONITORING_STEPS = ("esiprov.monitoring_worker", "esiprov.poll_targets")


def ran(worker: Service, step: str) -> bool:
    """The worker's log shows ``step`` succeeded there."""
    return any(step in line and "succeeded" in line
               for line in worker.log_path.read_text(errors="replace").splitlines())


def in_a_fresh_process(request: pytest.FixtureRequest) -> bool:
    """Run this test again in a pytest process of its own, unless this is that process.

    gRPC's I/O threads are made once per process, in the network namespace of whoever first used
    gRPC: after an earlier test they live in the test runner's namespace and cannot reach an etcd
    in the "control" host. A fresh process makes its first gRPC call inside "control".
    """
    if os.environ.get(FRESH) == "1":
        return False
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", request.node.nodeid],
                          cwd=request.config.rootpath, env={**os.environ, FRESH: "1"}, capture_output=True,
                          text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    return True


def test_a_port_create_completes_and_its_monitoring_follows_the_switch_only_the_mgmt_host_reaches(
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if in_a_fresh_process(request):
        return
    with ExitStack() as stack:
        net = stack.enter_context(Network(["control", "heat", "mgmt", "watch"], lan=LAN))
        net.add_private("mgmt", "switches", SWITCH_NET, [SWITCH_IP])
        with net.inside("switches"):
            switches = stack.enter_context(Switches([SWITCH], log_dir=tmp_path).start())
        with net.inside("control") as control:
            etcd = stack.enter_context(EtcdServer(log_dir=tmp_path, host=control.ip).start())
            redis = stack.enter_context(RedisServer(log_dir=tmp_path, host=control.ip).start())
            heat = HeatServer(tmp_path / "heat")
            heat.host = control.ip
            stack.enter_context(heat.start())
            env = {**esiprov_env(etcd, redis, heat, switches, SWITCH.community), "ESIPROV_MONITOR_INTERVAL": "1"}
            store = Store.connect(from_env(env))
            stack.callback(store.close)
            templates.save(store, *templates.load_dir(templates.SHIPPED))
        with net.inside("heat"):
            heat_worker = stack.enter_context(start_worker(env, tmp_path, "heat", queues="heat_worker,finalize"))
        with net.inside("mgmt"):
            mgmt_worker = stack.enter_context(start_worker(env, tmp_path, "mgmt", queues="monitoring_worker,poller"))
            stack.enter_context(start_beat(env, tmp_path))
        with net.inside("watch"):
            stack.enter_context(start_watcher(env, tmp_path))

        probe = SnmpProbe(Settings(snmp_port=switches.port, snmp_timeout=0.5), retries=0)
        with net.inside("heat"):
            assert probe.device_status(SWITCH_IP, SWITCH.community) == FAIL
        with net.inside("mgmt"):
            assert probe.device_status(SWITCH_IP, SWITCH.community) == UP

        port_monitoring = keys.monitoring("ese_physical_port", PORT["id"])
        with net.inside("control"):
            put_config(store, "ese_device", DEVICE_HERE)
            device = wait_for_state(store, "ese_device", DEVICE["id"], 1, timeout=180)
            assert (device["state"]["worker_state"], device["error"]) == ("CREATE_COMPLETED", "")
            put_config(store, "ese_physical_port", PORT)
            port = wait_for_state(store, "ese_physical_port", PORT["id"], 1, timeout=180)
            assert (port["state"]["worker_state"], port["error"]) == ("CREATE_COMPLETED", "")
            wait_until(lambda: store.value(port_monitoring)["port"] == UP, 30, "port monitoring UP")

        with net.inside("switches"):
            switches.set_port(SWITCH_IP, PORT["name"], up=False)
        with net.inside("control"):
            wait_until(lambda: store.value(port_monitoring)["port"] == DOWN, 30, "port monitoring DOWN")

        for step in HEAT_STEPS:
            assert ran(heat_worker, step) and not ran(mgmt_worker, step), step
        for step in MONITORING_STEPS:
            assert ran(mgmt_worker, step) and not ran(heat_worker, step), step
