"""End-to-end benchmark of the esiprov pipeline on real etcd, Redis, Celery workers and snmpsim,
with the Heat-API simulator (bench/heatsim.py) in place of Heat. One run prints five figures:

1. throughput (resources/s, config written -> /state written) with instant stacks, beside a bare
   Celery chain of three no-op tasks and a callback (bench/barechain.py) on the same broker;
2. 200 resources whose stacks take 5 s, one worker with 2 threads, beside the 500 s a design that
   holds a worker slot per build would need;
3. watcher latency, etcd put -> the heat_worker task starting, p50 and p99;
4. ``esiprov resync`` over 1,000 and 10,000 applied configs: time and peak memory;
5. Heat requests and etcd writes per resource.

    python -m bench.pipeline [--resources 300] [--chains 1000] [--slow 200] [--build-time 5]
                             [--latency 200] [--latency-rate 5] [--resync 10000] [--concurrency 8]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Iterable

from bench.heatsim import HeatSim
from esiprov import keys, templates
from esiprov.devenv.apiserver import envelope
from esiprov.devenv.etcd import EtcdServer
from esiprov.devenv.local import esiprov_env
from esiprov.devenv.pipeline import ROOT, start_watcher, start_worker
from esiprov.devenv.redis import RedisServer
from esiprov.devenv.switches import Switch, Switches
from esiprov.settings import from_env
from esiprov.store import Store

RTYPE = "ese_device"
TENANT = "bench-tenant"
SWITCH = Switch("127.0.162.1", "bench-community", ("xe-0/0/0",), name="bench-sw")
#: etcd's default limit of operations in one transaction
TXN_OPS = 128
#: a worker-blocking design: resources x build time / worker slots
SLOTS = 2


def device(name: str) -> tuple[str, dict[str, Any]]:
    """(id, body) of an ese_device on the emulated switch; the id starts with ``name``, so a batch
    (names ``<tag>-<n>``) is one key prefix."""
    rid = f"{name}-{uuid.uuid5(uuid.NAMESPACE_URL, f'esiprov-bench:{name}').hex[:12]}"
    return rid, {"id": rid, "name": name, "hostname": name, "existing": "new", "type": "tor",
                 "management_ip_address": SWITCH.ip, "public_ip_address": SWITCH.ip, "tenant_id": TENANT}


def put_devices(store: Store, names: Iterable[str], pause: float = 0.0) -> dict[str, float]:
    """Write the configs one put each, as the API server does; {id: time.time() just before its put}."""
    written = {}
    for name in names:
        rid, body = device(name)
        written[rid] = time.time()
        store.put(keys.config(RTYPE, rid), envelope(body, 1))
        if pause:
            time.sleep(pause)
    return written


def wait_for_states(store: Store, tag: str, count: int, timeout: float) -> Counter[str]:
    """Block until the ``count`` resources of batch ``tag`` have a /state; the worker_state counts.

    Polls a count (etcd counts, nothing is transferred), so the wait costs the pipeline little CPU.
    """
    prefix = keys.state(RTYPE, f"{tag}-")
    deadline = time.monotonic() + timeout
    while (found := store.count(prefix)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{found} of {count} /state of batch {tag} written after {timeout:.0f} s")
        time.sleep(0.02)
    return Counter(entry.value["state"]["worker_state"] for entry in store.scan(prefix))


def revision(store: Store) -> int:
    return store.range(keys.SCHEMA, keys_only=True)[1]


def run_batch(store: Store, heat: HeatSim, tag: str, count: int, timeout: float) -> dict[str, Any]:
    """Put ``count`` configs at once and wait for their /state: seconds, outcomes, Heat and etcd costs."""
    heat.reset()
    before = revision(store)
    started = time.monotonic()
    put_devices(store, (f"{tag}-{n:05d}" for n in range(count)))
    outcomes = wait_for_states(store, tag, count, timeout)
    seconds = time.monotonic() - started
    writes = revision(store) - before - count  # the config puts are the API server's, not esiprov's
    return {"seconds": seconds, "rate": count / seconds, "outcomes": dict(outcomes),
            "heat": heat.stats()["requests"], "etcd_writes": writes / count}


class TaskStarts:
    """When each heat_worker task first started, from the worker's Celery events (same host clock)."""

    def __init__(self) -> None:
        from tasks import app
        self.app = app
        self.first: dict[str, float] = {}
        self._receiver: Any = None
        self._thread = threading.Thread(target=self._capture, daemon=True)

    def _capture(self) -> None:
        with self.app.connection_for_read() as connection:
            self._receiver = self.app.events.Receiver(connection, handlers={"task-started": self._started})
            self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def _started(self, event: dict[str, Any]) -> None:
        parts = event["uuid"].split(":")
        if len(parts) == 6 and parts[1] == "heat_worker":
            self.first.setdefault(parts[3], event["timestamp"])

    def __enter__(self) -> "TaskStarts":
        self._thread.start()
        time.sleep(1.0)  # the event queue must be bound before the first put
        return self

    def __exit__(self, *exc: object) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True
        self._thread.join(5)


def latency(store: Store, count: int, rate: float, timeout: float) -> list[float]:
    """Seconds from each config put to its heat_worker task starting; puts at ``rate`` per second."""
    with TaskStarts() as starts:
        written = put_devices(store, (f"lat-{n:05d}" for n in range(count)), pause=1 / rate)
        wait_for_states(store, "lat", count, timeout)
    return sorted(starts.first[rid] - at for rid, at in written.items() if rid in starts.first)


def seed_applied(store: Store, start: int, stop: int) -> None:
    """Configs with their /state and esiprov's copy at the same version: applied, nothing to do."""
    records: dict[str, Any] = {}
    for n in range(start, stop):
        rid, body = device(f"resync-{n:06d}")
        records[keys.config(RTYPE, rid)] = envelope(body, 1)
        records[keys.state(RTYPE, rid)] = {"state": {"worker_state": "CREATE_COMPLETED"}, "version": 1, "error": ""}
        records[keys.worker_config(RTYPE, rid)] = {"body": body, "version": 1, "deleted": False}
        if len(records) >= TXN_OPS - 2:
            store.commit(puts=records)
            records = {}
    if records:
        store.commit(puts=records)


def timed_resync(env: dict[str, str], log: Path) -> tuple[float, float, dict[str, Any]]:
    """Run ``esiprov resync --json``: (seconds, the child's own peak RSS in MB from wait4, its output)."""
    started = time.monotonic()
    with open(log, "ab") as errors:
        proc = subprocess.Popen([sys.executable, "-m", "esiprov.cli", "resync", "--json"],
                                env={**os.environ, **env}, cwd=ROOT, stdout=subprocess.PIPE, stderr=errors)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    if proc.returncode:
        raise RuntimeError(f"esiprov resync failed ({proc.returncode}); see {log}")
    return seconds, usage.ru_maxrss / 1024, json.loads(out)


def resync_figures(env: dict[str, str], logs: Path, sizes: list[int]) -> list[tuple[int, float, float, dict[str, Any]]]:
    """esiprov resync over ``sizes`` applied configs in a fresh etcd: (size, seconds, MB, output)."""
    found = []
    with EtcdServer(log_dir=logs) as etcd:
        store = Store.connect(from_env({"ESIPROV_ETCD_ENDPOINTS": etcd.endpoint}))
        templates.save(store, *templates.load_dir(templates.SHIPPED))
        done = 0
        for size in sizes:
            seed_applied(store, done, size)
            done = size
            found.append((size, *timed_resync({**env, "ESIPROV_ETCD_ENDPOINTS": etcd.endpoint},
                                              logs / "resync.log")))
        store.close()
    return found


def percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(share * len(values)))]


def per_resource(requests: dict[str, int], count: int) -> str:
    total = sum(requests.values())
    detail = ", ".join(f"{k} {v / count:.2f}" for k, v in sorted(requests.items()))
    return f"{total / count:.2f} ({detail})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resources", type=int, default=300, help="resources of the throughput run")
    parser.add_argument("--chains", type=int, default=1000, help="bare chains of the baseline")
    parser.add_argument("--slow", type=int, default=200, help="resources whose stacks take --build-time")
    parser.add_argument("--build-time", type=float, default=5.0)
    parser.add_argument("--latency", type=int, default=200, help="puts of the latency run")
    parser.add_argument("--latency-rate", type=float, default=5.0,
                        help="puts per second of the latency run: well below the throughput, or it measures a queue")
    parser.add_argument("--resync", type=int, default=10000, help="configs of the resync run")
    parser.add_argument("--concurrency", type=int, default=8, help="worker threads of the throughput runs")
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="esiprov-bench-pipeline-"))
    print(f"pipeline benchmark: {os.cpu_count()} CPUs; logs in {logs}", flush=True)
    with ExitStack() as stack:
        etcd = stack.enter_context(EtcdServer(log_dir=logs))
        redis = stack.enter_context(RedisServer(log_dir=logs))
        heat = stack.enter_context(HeatSim(logs))
        switches = stack.enter_context(Switches([SWITCH], log_dir=logs))
        env = esiprov_env(etcd, redis, heat, switches, SWITCH.community)
        os.environ.update(env)  # before celeryconfig is imported: the driver sends to this broker
        store = Store.connect(from_env(env))
        stack.callback(store.close)
        templates.save(store, *templates.load_dir(templates.SHIPPED))
        run(args, env, logs, store, heat)


def run(args: argparse.Namespace, env: dict[str, str], logs: Path, store: Store, heat: HeatSim) -> None:
    """Every figure, in the order the services allow: bare chain, esiprov's runs, then resync."""
    bare = bare_chains(args, env, logs)
    with start_worker(env, logs, "worker", args.concurrency), start_watcher(env, logs):
        run_batch(store, heat, "warm", 10, 120)
        fast = run_batch(store, heat, "fast", args.resources, 600)
        print(f"1. esiprov, instant stacks: {fast['rate']:.1f} resources/s over {args.resources} "
              f"({fast['seconds']:.1f} s, {fast['outcomes']}); ratio to the bare chain {fast['rate'] / bare:.2f} "
              f"(target >= 0.7)", flush=True)
        delays = latency(store, args.latency, args.latency_rate, 300)
        print(f"3. put -> heat_worker task started ({len(delays)} puts at {args.latency_rate:g}/s): "
              f"p50 {percentile(delays, .5) * 1000:.0f} ms, p99 {percentile(delays, .99) * 1000:.0f} ms, "
              f"max {delays[-1] * 1000:.0f} ms (target p99 <= 100 ms)", flush=True)
    slow = slow_run(args, env, logs, store, heat)
    blocking = args.slow * args.build_time / SLOTS
    print(f"2. {args.slow} resources x {args.build_time:g} s stacks, one worker -c {SLOTS}: {slow['seconds']:.1f} s "
          f"({slow['outcomes']}) vs {blocking:.0f} s worker-blocking: {blocking / slow['seconds']:.1f}x "
          f"(target < 20 s)", flush=True)
    print(f"5. Heat requests per resource, instant stacks: {per_resource(fast['heat'], args.resources)}")
    print(f"5. Heat requests per resource, {args.build_time:g} s stacks: {per_resource(slow['heat'], args.slow)}")
    print(f"5. etcd writes (revisions) per resource: {fast['etcd_writes']:.1f} (instant), "
          f"{slow['etcd_writes']:.1f} ({args.build_time:g} s stacks; both include the watcher's heartbeat)", flush=True)
    for size, seconds, mb, output in resync_figures(env, logs, sorted({min(1000, args.resync), args.resync})):
        print(f"4. esiprov resync over {size} applied configs: {seconds:.1f} s, peak RSS {mb:.0f} MB, "
              f"{output['outcomes']} (target 10,000 in <= 10 s, memory flat)", flush=True)


def bare_chains(args: argparse.Namespace, env: dict[str, str], logs: Path) -> float:
    """Chains/s of the baseline, on a worker like esiprov's."""
    from bench import barechain
    with start_worker(env, logs, "bare", args.concurrency, queues=barechain.QUEUE, app="bench.barechain"):
        barechain.run(20)  # warm-up
        bare = args.chains / barechain.run(args.chains)
    print(f"1. bare Celery chain (3 no-op tasks + callback, threads -c {args.concurrency}): "
          f"{bare:.1f} chains/s over {args.chains}", flush=True)
    return bare


def slow_run(args: argparse.Namespace, env: dict[str, str], logs: Path, store: Store, heat: HeatSim) -> dict[str, Any]:
    """The slow-stack batch with one worker of SLOTS threads (and the watcher)."""
    heat.configure(build_time=args.build_time)
    with start_worker(env, logs, "slow", SLOTS), start_watcher(env, logs, "watcher-slow"):
        return run_batch(store, heat, "slow", args.slow, 900)


if __name__ == "__main__":
    main()
