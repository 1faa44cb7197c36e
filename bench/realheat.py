"""Figure 3 of bench.pipeline: one ese_physical_port at a time on real OpenStack Heat, against Heat's own time.

Its own etcd and Redis, real Heat (esiprov.devenv.heatserver, from .venv-heat), the emulated
switch of the bench, one default worker and the watcher. The seed's ese_device is created
first (its port stacks reference its stack's output), then each port alone:

- esiprov's time: the config put -> /state written (seen through an etcd watch on "/", which
  also gives the resource's timeline: dispatched, create sent, stack seen complete, monitoring
  registered); /monitoring must be written in the same transaction as /state;
- Heat's own time: a copy of the same stack (the template text and parameters the worker sent:
  tasks.heat_worker.heat_arguments on the job the watcher dispatched) created directly through
  the Heat API, create -> CREATE_COMPLETE, polled every ``POLL`` s (by id, outputs not resolved,
  so the polls cost Heat little); the time includes the create request itself.

Heat requests are counted on the wire (bench.wire), separately for esiprov and the copy.
"""
from __future__ import annotations

import socket
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from heatclient import client as heat_client
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint

from bench.costs import Costs, Spent, cost_lines, per, percentile, verdict
from bench.running import running, wait_for
from bench.wire import wire_counter
from esiprov import keys, templates
from esiprov.devenv import demo
from esiprov.devenv.apiserver import put_config, wait_for_state
from esiprov.devenv.etcd import EtcdServer
from esiprov.devenv.heatserver import HeatServer
from esiprov.devenv.local import HEAT_TOKEN, esiprov_env
from esiprov.devenv.pipeline import start_watcher, start_worker
from esiprov.devenv.redis import RedisServer
from esiprov.devenv.switches import Switch, Switches
from esiprov.documents import JobEntry
from esiprov.settings import from_env
from esiprov.store import Change, Store

PORT_TYPE = "ese_physical_port"
#: seconds between two checks of the copy
POLL = 0.02
#: ports created first and not reported (Heat's first stacks, the switch's first walk)
WARM_UP = 2
#: target of the difference esiprov - Heat, median
DIFFERENCE_TARGET = 0.25
#: the timeline's steps: (label, does this event of the port's keys mark it)
STEPS: list[tuple[str, Callable[[Change], bool]]] = [
    ("dispatched", lambda c: c.key.startswith(keys.JOBS) and ":heat_worker:" in c.key),
    ("heat step received", lambda c: c.key.startswith(keys.HOLDS)),
    ("create sent", lambda c: c.key.startswith(keys.HEAT_OPS)),
    ("stack seen complete", lambda c: "/heat_stacks/" in c.key),
    ("monitoring registered", lambda c: c.key.startswith(keys.TARGETS)),
    ("/state written", lambda c: c.key.startswith("/state/")),
]


class Timeline:
    """Every put under "/" from now on, with the time this process saw it."""

    def __init__(self, store: Store) -> None:
        self.events: list[tuple[float, Change]] = []
        self._cond = threading.Condition()
        self._cancel = store.on_changes("/", store.range(keys.SCHEMA, keys_only=True)[1] + 1, self._seen)

    def _seen(self, change: Change) -> None:
        now = time.time()
        with self._cond:
            self.events.append((now, change))
            self._cond.notify_all()

    def of(self, rid: str) -> list[tuple[float, Change]]:
        with self._cond:
            return [(at, change) for at, change in self.events if rid in change.key and change.entry is not None]

    def first(self, rid: str, prefix: str, timeout: float) -> tuple[float, Change]:
        """The first put of a key of ``rid`` under ``prefix``; waits up to ``timeout`` seconds."""
        def found() -> tuple[float, Change] | None:
            return next(((at, c) for at, c in self.of(rid) if c.key.startswith(prefix)), None)
        with self._cond:
            wait_for(self._cond, lambda: found() is not None, timeout, f"no {prefix}... of {rid}")
        return found()

    def close(self) -> None:
        self._cancel()


def heat_api(url: str, tenant: str) -> Any:
    """A python-heatclient on a keep-alive session, as esiprov.heat makes one."""
    auth = token_endpoint.Token(url.replace("{tenant_id}", tenant), HEAT_TOKEN)
    return heat_client.Client("1", session=ks_session.Session(auth=auth, timeout=30))


def heat_own_time(api: Any, name: str, template: str, parameters: dict[str, Any],
                  timeout_mins: int | None) -> tuple[float, int]:
    """(seconds from sending the create to seeing CREATE_COMPLETE, checks made) of a stack made directly."""
    extra = {} if timeout_mins is None else {"timeout_mins": timeout_mins}
    started = time.monotonic()
    created = api.stacks.create(stack_name=name, template=template, parameters=dict(parameters),
                                disable_rollback=True, **extra)
    path, checks = f"{name}/{created['stack']['id']}", 0
    while True:
        checks += 1
        status = api.stacks.get(path, resolve_outputs=False).stack_status
        if status == "CREATE_COMPLETE":
            return time.monotonic() - started, checks
        if not status.endswith("IN_PROGRESS"):
            raise RuntimeError(f"the copy {name} is {status}")
        time.sleep(POLL)


def port_body(n: int, device_id: str) -> dict[str, Any]:
    rid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"esiprov-bench:port:{n}"))
    return {**demo.PORT, "id": rid, "name": f"xe-0/0/{n}", "ese_device_id": device_id}


def real_heat(count: int, logs: Path, switches: Switches, switch: Switch, community: str,
              say: Callable[[str], None], load: Callable[[], str], settings: dict[str, str]) -> None:
    """Figure 3 on its own services (etcd, Redis, Heat), with ``switch`` as the ports' device; ``settings``
    are added to esiprov's environment."""
    from esiprov.templates import read_catalogue
    from tasks.heat_worker import heat_arguments  # the worker's own rendering of the stack's arguments

    if count + WARM_UP > len(switch.ports):
        raise ValueError(f"{count} ports: the switch has {len(switch.ports)} ({WARM_UP} go to the warm-up)")
    with ExitStack() as stack:
        logs = logs / "realheat"
        etcd = stack.enter_context(EtcdServer(log_dir=logs))
        redis = stack.enter_context(RedisServer(log_dir=logs))
        heat = stack.enter_context(HeatServer(logs / "heat"))
        env = {**esiprov_env(etcd, redis, heat, switches, community), **settings}
        store = Store.connect(from_env(env))
        stack.callback(store.close)
        templates.save(store, *templates.load_dir(templates.SHIPPED))
        worker = stack.enter_context(running(start_worker(env, logs, "worker")))
        watcher = stack.enter_context(running(start_watcher(env, logs, "watcher")))
        client = redis.client()
        stack.callback(client.close)
        pids = {"worker": worker.proc.pid, "watcher": watcher.proc.pid, "heat": heat._service.proc.pid,
                "etcd": etcd._service.proc.pid}
        costs = Costs(etcd.endpoint, client, lambda: pids, wire_counter(switches.port),
                      heat_wire=wire_counter(heat.port, socket.IPPROTO_TCP))
        device = {**demo.DEVICE, "management_ip_address": switch.ip, "public_ip_address": switch.ip}
        put_config(store, "ese_device", device)
        state = wait_for_state(store, "ese_device", device["id"], 1, timeout=120)
        if state["error"]:
            raise RuntimeError(f"the device failed: {state['error']}")
        api = heat_api(heat.url, demo.TENANT)
        timeline = Timeline(store)
        stack.callback(timeline.close)
        rows, spent_total, copies = [], Spent(), Counter()
        for n in range(count + WARM_UP):
            body = port_body(n, device["id"])
            rid = body["id"]
            with costs.window(settle=0.2) as spent:
                put_at = time.time()
                put_config(store, PORT_TYPE, body)
                state_at, state = timeline.first(rid, "/state/", 60)
                monitoring_at, monitoring = timeline.first(rid, "/monitoring/", 5)
            if state.entry.value.get("error"):
                raise RuntimeError(f"port {rid} failed: {state.entry.value['error']}")
            job = next(JobEntry.from_etcd(c.entry.value).job for _, c in timeline.of(rid)
                       if c.key.startswith(keys.JOBS) and ":heat_worker:" in c.key)
            arguments = heat_arguments(job, store, read_catalogue(store, job.resource_type)[1])
            if costs.heat_wire is not None:
                costs.heat_wire.take_requests()
            own, checks = heat_own_time(api, f"copy_{PORT_TYPE}_{rid}", *arguments)
            copy_requests = costs.heat_wire.take_requests() if costs.heat_wire is not None else Counter()
            if n < WARM_UP:
                continue
            steps = {}
            for at, change in timeline.of(rid):
                for label, marks in STEPS:
                    if label not in steps and marks(change):
                        steps[label] = at - put_at
            rows.append({"esiprov": state_at - put_at, "heat": own, "checks": checks, "steps": steps,
                         "together": monitoring.revision == state.revision,
                         "monitoring_after": monitoring_at - state_at})
            spent.etcd_writes -= 1  # the bench's config put
            spent.etcd_requests["Put"] -= 1
            spent_total.add(spent)
            copies.update(copy_requests)
        report(rows, spent_total, copies, count, say, load)


def report(rows: list[dict[str, Any]], spent: Spent, copies: Counter[str], count: int,
           say: Callable[[str], None], load: Callable[[], str]) -> None:
    def stats(values: list[float]) -> str:
        return f"median {statistics.median(values):.3f} s, p90 {percentile(values, .9):.3f} s"

    esiprov = [r["esiprov"] for r in rows]
    own = [r["heat"] for r in rows]
    difference = [r["esiprov"] - r["heat"] for r in rows]
    met = statistics.median(difference) <= DIFFERENCE_TARGET
    together = sum(r["together"] for r in rows)
    say(f"3. real Heat, {count} ese_physical_ports one at a time, config put -> /state: {stats(esiprov)} [{load()}]")
    say(f"3. Heat's own create -> CREATE_COMPLETE of a copy of each stack (polled every {POLL * 1000:.0f} ms, "
        f"{statistics.mean(r['checks'] for r in rows):.1f} checks): {stats(own)}")
    say(f"3. difference esiprov - Heat: {stats(difference)} (target median <= {DIFFERENCE_TARGET} s: {verdict(met)})")
    say(f"3. /monitoring written in the same transaction as /state: {together} of {count}")
    timeline = "; ".join(f"{label} {statistics.median(r['steps'][label] for r in rows if label in r['steps']):.3f}"
                         for label, _ in STEPS)
    say(f"3. esiprov's timeline (median seconds after the put, seen through an etcd watch): {timeline}")
    say(f"3. per port (esiprov; the copies took {per(copies, count)} requests each):")
    for line in cost_lines(spent, count, "port"):
        say(f"   {line}")
