"""End-to-end benchmark of the esiprov pipeline on the worker a user starts: ``celery -A tasks worker``.

Real etcd, Redis, Celery workers, snmpsim and (figure 3) real OpenStack Heat, all on loopback; the
fast Heat-API simulator bench/heatsim.py stands in for Heat elsewhere. One run prints, each measured
side by side in the same run (with the load average, since the machine is shared):

1. throughput with instant stacks, esiprov on the default worker (no -P, no -c: celeryconfig's pool
   and concurrency), against a bare Celery chain of three no-op tasks and a callback on Celery's own
   defaults (bench/barechain.py) with the same pool and concurrency; the ratio; esiprov on
   a prefork pool (``-P processes -c <cores>``, Celery's own default) for contrast;
2. 200 resources whose stacks build for 5 s, on one default worker: first put -> last /state;
3. one ese_physical_port at a time on real Heat: config put -> /state (and /monitoring with it),
   against Heat's own create -> CREATE_COMPLETE for a copy of the same stack (bench/realheat.py);
4. per resource: Heat requests, etcd writes, reads and requests, SNMP requests, Redis commands, CPU;
5. the watcher's latency (put -> the worker's hold on the resource written) and ``esiprov resync``
   over 1,000 and 10,000 applied configs;
6. a py-spy profile of the default worker during a throughput batch (bench/spy.py).

    python -m bench.pipeline [--resources 300] [--chains 1500] [--rounds 2] [--slow 200] [--build-time 5]
                             [--ports 20] [--latency 100] [--latency-rate 5] [--resync 10000]
                             [--skip FIGURES] [--setting ESIPROV_X=value ...]

``--setting`` adds an ESIPROV_* variable to the environment of every esiprov process the bench
starts (to try a setting; the figures in bench/RESULTS.md are taken on the defaults).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.costs import Costs, Spent, cost_lines, per, percentile, verdict
from bench.heatsim import HeatSim
from bench.running import running, wait_for
from bench.spy import Profile
from bench.wire import wire_counter
from esiprov import keys, templates
from esiprov.devenv.apiserver import envelope
from esiprov.devenv.bodies import device_body
from esiprov.devenv.etcd import EtcdServer
from esiprov.devenv.local import esiprov_env
from esiprov.devenv.pipeline import ROOT, start_watcher, start_worker
from esiprov.devenv.process import LocalServer, Service
from esiprov.devenv.redis import RedisServer
from esiprov.devenv.switches import Switch, Switches
from esiprov.settings import from_env
from esiprov.store import Change, Store

RTYPE = "ese_device"
TENANT = "bench-tenant"
COMMUNITY = "bench-community"
SWITCH = Switch("127.0.162.1", COMMUNITY, ("xe-0/0/0",), name="bench-sw")
#: the switch of figure 3's ports (one port each)
PORT_SWITCH = Switch("127.0.162.2", COMMUNITY, tuple(f"xe-0/0/{n}" for n in range(48)), name="bench-port-sw")
#: etcd's default limit of operations in one transaction
TXN_OPS = 128
#: figures' targets
RATIO_TARGET, SLOW_TARGET = 0.5, 10.0


def load() -> str:
    """The load average, printed with every figure: the machine is shared."""
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def say(text: str) -> None:
    print(text, flush=True)


def device(name: str) -> tuple[str, dict[str, Any]]:
    """(id, body) of an ese_device on the emulated switch; the id starts with ``name``, so a batch
    (names ``<tag>-<n>``) is one key prefix."""
    rid = f"{name}-{uuid.uuid5(uuid.NAMESPACE_URL, f'esiprov-bench:{name}').hex[:12]}"
    return rid, device_body(SWITCH.ip, TENANT, rid, name=name)


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


def revision(store: Store) -> int:
    return store.range(keys.SCHEMA, keys_only=True)[1]


class Arrivals:
    """When each key under ``prefix`` was first put, as etcd's watch events reach this process.

    A watch, not polling: the bench sends etcd no reads while it waits, so etcd's counters
    show esiprov's own requests.
    """

    def __init__(self, store: Store, prefix: str) -> None:
        self.first: dict[str, float] = {}
        self.changes: dict[str, Change] = {}
        self._cond = threading.Condition()
        self._cancel = store.on_changes(prefix, revision(store) + 1, self._seen)

    def _seen(self, change: Change) -> None:
        now = time.time()
        if change.entry is None:
            return
        with self._cond:
            if change.key not in self.first:
                self.first[change.key] = now
                self.changes[change.key] = change
                self._cond.notify_all()

    def wait(self, count: int, timeout: float, what: str) -> None:
        """Block until ``count`` keys have arrived."""
        with self._cond:
            wait_for(self._cond, lambda: len(self.first) >= count, timeout, f"{count} {what}")

    def close(self) -> None:
        self._cancel()

    def __enter__(self) -> Arrivals:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Batch:
    count: int
    seconds: float
    outcomes: dict[str, int]
    spent: Spent
    #: time.time() of the first put
    started: float = 0.0
    #: {label: {resource id: time.time() its key under that label's prefix was first put}}
    seen: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.count / self.seconds


def run_batch(store: Store, costs: Costs, tag: str, count: int, timeout: float,
              watch: dict[str, str] | None = None) -> Batch:
    """Put ``count`` configs at once; seconds from the first put to the last /state seen, and the costs.

    ``watch`` ({label: key prefix}) records when each resource's key under each prefix first appears.
    """
    with ExitStack() as stack:
        extra = {label: stack.enter_context(Arrivals(store, prefix)) for label, prefix in (watch or {}).items()}
        states = stack.enter_context(Arrivals(store, keys.state(RTYPE, f"{tag}-")))
        with costs.window() as spent:
            written = put_devices(store, (f"{tag}-{n:05d}" for n in range(count)))
            states.wait(count, timeout, f"/state of batch {tag}")
    spent.etcd_writes -= count  # the config puts are the API server's, not esiprov's
    spent.etcd_requests["Put"] -= count
    outcomes = Counter(change.entry.value["state"]["worker_state"] for change in states.changes.values())
    started = min(written.values())
    seen = {label: {_rid_in(key): at for key, at in arrivals.first.items()} for label, arrivals in extra.items()}
    return Batch(count, max(states.first.values()) - started, dict(outcomes), spent, started, seen)


def _rid_in(key: str) -> str:
    """The resource id in a key of a batch: ``.../<id>`` or a job id ``<action>:<handler>:<type>:<id>:...``."""
    last = key.rsplit("/", 1)[-1]
    return last.split(":")[3] if last.count(":") >= 5 else last


def pid_of(service: Service | LocalServer) -> int:
    proc = service.proc if isinstance(service, Service) else service._service.proc
    return proc.pid


# --- figure 1: the bare chain ---------------------------------------------------------------------

def default_pool() -> tuple[str, int]:
    """The pool and concurrency ``celery -A tasks worker`` runs (celeryconfig's)."""
    if "ESIPROV_BROKER_URL" not in os.environ:
        raise RuntimeError("the bench's broker is not set: celeryconfig would point at the system's Redis")
    import celeryconfig
    return celeryconfig.worker_pool, celeryconfig.worker_concurrency


def throughput(args: argparse.Namespace, env: dict[str, str], logs: Path, store: Store, costs: Costs,
               pids: dict[str, int]) -> tuple[float, float]:
    """Figures 1 and 4: esiprov's batches on the default worker (running) and the bare chain's on a worker
    with its pool and concurrency, alternated (bare, esiprov, bare, ..., bare), so that a load coming or
    going during the run weighs on both sides alike; each side's rate is its total count over its total
    time. Returns (resources/s, chains/s)."""
    from bench import barechain
    pool, concurrency = default_pool()
    per_batch, per_bare = args.resources // args.rounds, args.chains // (args.rounds + 1)
    bare_spent, esiprov_spent = Spent(), Spent()
    bare_rates: list[float] = []
    batches: list[Batch] = []
    with running(start_worker(env, logs, "bare", concurrency, app="bench.barechain", pool=pool)) as worker:
        pids["bare worker"] = pid_of(worker)
        barechain.run(20)  # warm-up
        for n in range(args.rounds + 1):
            with costs.window() as spent:
                seconds, polls = barechain.run(per_bare)
            spent.redis["get"] -= polls  # the bench's own polls of the counter
            bare_spent.add(spent)
            bare_rates.append(per_bare / seconds)
            if n < args.rounds:
                batches.append(run_batch(store, costs, f"fast{n}", per_batch, 300))
                esiprov_spent.add(batches[-1].spent)
        del pids["bare worker"]
    bare = per_bare * len(bare_rates) / sum(per_bare / rate for rate in bare_rates)
    count = per_batch * len(batches)
    rate = count / sum(batch.seconds for batch in batches)
    outcomes = sum((Counter(batch.outcomes) for batch in batches), Counter())
    ratio = rate / bare
    say(f"1. bare Celery chain (3 no-op tasks + callback; acks late, JSON, results in Redis, Celery's defaults "
        f"otherwise; -P {pool} -c {concurrency}): {bare:.1f} chains/s ({per_bare} x {len(bare_rates)}: "
        + ", ".join(f"{r:.1f}" for r in bare_rates) + f") [{load()}]")
    say(f"1. esiprov, default worker (`celery -A tasks worker`: {pool}, {concurrency}), instant stacks (heatsim): "
        f"{rate:.1f} resources/s ({per_batch} x {len(batches)} between them: "
        + ", ".join(f"{b.rate:.1f}" for b in batches) + f"; {dict(outcomes)}) [{load()}]")
    say(f"1. ratio esiprov / bare chain: {ratio:.2f} (target >= {RATIO_TARGET}: {verdict(ratio >= RATIO_TARGET)})")
    for line in cost_lines(esiprov_spent, count):
        say(f"4. {line}")
    chains = per_bare * len(bare_rates)
    say(f"4. the bare chain for comparison: Redis commands/chain {per(bare_spent.redis, chains, top=8)}; "
        f"CPU ms/chain: bare worker {bare_spent.cpu.get('bare worker', 0) * 1000 / chains:.1f}, "
        f"redis {bare_spent.cpu.get('redis', 0) * 1000 / chains:.1f}, "
        f"bench (the submitter) {bare_spent.cpu.get('bench', 0) * 1000 / chains:.1f} "
        f"(window {bare_spent.seconds:.1f} s, total {sum(bare_spent.cpu.values()) / bare_spent.seconds:.2f} cores)")
    return rate, bare


# --- figures 1, 4, 5, 6 and 2 on the default worker -------------------------------------------

def latency(store: Store, count: int, rate: float, timeout: float) -> list[float]:
    """Seconds from each config put to the worker's hold on the resource (written as the worker
    receives the heat_worker step); puts at ``rate`` per second."""
    with Arrivals(store, keys.hold(RTYPE, "lat-")) as holds, Arrivals(store, keys.state(RTYPE, "lat-")) as states:
        written = put_devices(store, (f"lat-{n:05d}" for n in range(count)), pause=1 / rate)
        states.wait(count, timeout, "/state of the latency batch")
    return [holds.first[keys.hold(RTYPE, rid)] - at for rid, at in written.items()
            if keys.hold(RTYPE, rid) in holds.first]


def profiles(worker: int, label: str, name: str, unit: str, run: Callable[[], tuple[int, float]],
             logs: Path) -> None:
    """Figure 6 for one worker: a GIL profile during one batch, then its consumer thread's wall time
    during another (raw profiles in ``logs``/``name``-*.txt); ``run`` runs a batch, returns (count, seconds)."""
    with Profile(worker, logs / f"{name}-gil.txt") as gil:
        done, seconds = run()
    say(f"6. py-spy --gil on the {label} ({done} {unit}s, {done / seconds:.1f}/s while sampled) [{load()}]:")
    for line in gil.summary(done, unit):
        say(f"   {line}")
    with Profile(worker, logs / f"{name}-consumer.txt", consumer=True) as consumer:
        done, seconds = run()
    say(f"6. the {label}'s consumer thread, wall time ({done} {unit}s, {done / seconds:.1f}/s while sampled): "
        f"{consumer.consumer_summary()}")


def bare_profiles(args: argparse.Namespace, env: dict[str, str], logs: Path) -> None:
    """Figure 6 on the bare chain's worker: Celery's own cost per task, for comparison."""
    from bench import barechain
    pool, concurrency = default_pool()
    chains = args.chains // 3
    with running(start_worker(env, logs, "bare-profiled", concurrency, app="bench.barechain", pool=pool)) as worker:
        barechain.run(20)
        profiles(pid_of(worker), "bare chain's worker", "bare", "chain",
                 lambda: (chains, barechain.run(chains)[0]), logs)


def default_worker_figures(args: argparse.Namespace, env: dict[str, str], logs: Path, store: Store,
                           costs: Costs, pids: dict[str, int], heat: HeatSim) -> float:
    """Figures 1, 4, 6, 5 (latency) and 2 on one default worker; returns the bare chain's chains/s."""
    with running(start_worker(env, logs, "worker")) as worker:
        pids["worker"] = pid_of(worker)
        run_batch(store, costs, "warm", 20, 120)
        _, bare = throughput(args, env, logs, store, costs, pids)
        if "6" not in args.skip:
            def batch(tag: Iterator[int] = itertools.count()) -> tuple[int, float]:
                found = run_batch(store, costs, f"prof{next(tag)}", args.resources // 2, 300)
                return found.count, found.seconds
            profiles(pids["worker"], "default worker", "worker", "resource", batch, logs)
            bare_profiles(args, env, logs)
        if "5" not in args.skip:
            delays = latency(store, args.latency, args.latency_rate, 300)
            say(f"5. put -> the worker's hold on the resource written (it receives the heat_worker step), "
                f"{len(delays)} puts at {args.latency_rate:g}/s: p50 {percentile(delays, .5) * 1000:.0f} ms, "
                f"p99 {percentile(delays, .99) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms "
                f"(target p99 <= 100 ms) [{load()}]")
        if "2" not in args.skip:
            slow_run(args, store, costs, heat)
        del pids["worker"]
    return bare


def slow_run(args: argparse.Namespace, store: Store, costs: Costs, heat: HeatSim) -> None:
    """Figure 2, and where its time goes: when the creates went out, how late each finished stack was seen."""
    heat.configure(build_time=args.build_time)
    watch = {"create": f"{keys.HEAT_OPS}create:heat_worker:{RTYPE}:slow-", "seen": keys.heat_stack(RTYPE, "slow-")}
    slow = run_batch(store, costs, "slow", args.slow, 300, watch)
    heat.configure(build_time=0)
    say(f"2. {args.slow} resources x {args.build_time:g} s stacks, one default worker: {slow.seconds:.1f} s "
        f"from the first put to the last /state ({slow.outcomes}; target <= {SLOW_TARGET:g} s: "
        f"{verdict(slow.seconds <= SLOW_TARGET)}) [{load()}]")
    creates, seen = slow.seen["create"], slow.seen["seen"]
    sent = sorted(at - slow.started for at in creates.values())
    late = [seen[rid] - creates[rid] - args.build_time for rid in creates if rid in seen]
    say(f"2. where the time goes: creates sent {sent[0]:.1f} to {sent[-1]:.1f} s after the first put (median "
        f"{statistics.median(sent):.1f}); each finished stack seen complete {statistics.median(late):.2f} s after "
        f"its build ended (median; p90 {percentile(late, .9):.2f}, max {max(late):.2f}); last stack seen at "
        f"{max(seen.values()) - slow.started:.1f} s, last /state at {slow.seconds:.1f} s")
    say(f"2. Heat requests/resource: {per(slow.spent.heat, args.slow)}")


def prefork_contrast(args: argparse.Namespace, env: dict[str, str], logs: Path, store: Store, costs: Costs,
                     pids: dict[str, int], bare: float) -> None:
    cores = os.cpu_count() or 1
    with running(start_worker(env, logs, "prefork", cores, pool="prefork")) as worker:
        pids["worker"] = pid_of(worker)
        run_batch(store, costs, "pwarm", 20, 120)
        batch = run_batch(store, costs, "pre", args.resources, 300)
        del pids["worker"]
    say(f"1. contrast: esiprov on prefork, `-P processes -c {cores}` (Celery's own default pool): {batch.rate:.1f} resources/s "
        f"({batch.seconds:.1f} s, {batch.outcomes}), {batch.rate / bare:.2f} of the bare chain; worker CPU "
        f"{batch.spent.cpu.get('worker', 0) * 1000 / batch.count:.1f} ms/resource [{load()}]")


# --- figure 5: resync -----------------------------------------------------------------------------

def seed_applied(store: Store, start: int, stop: int) -> None:
    """Configs with their /state and esiprov's copy at the same version: applied, nothing to do."""
    records: dict[str, Any] = {}
    for n in range(start, stop):
        rid, body = device(f"resync-{n:06d}")
        records[keys.config(RTYPE, rid)] = envelope(body, 1)
        records[keys.state(RTYPE, rid)] = {"state": {"worker_state": "CREATE_COMPLETED"}, "version": 1, "error": ""}
        records[keys.applied_config(RTYPE, rid)] = {"body": body, "version": 1, "deleted": False}
        if len(records) >= TXN_OPS - 2:
            store.commit(puts=records)
            records = {}
    if records:
        store.commit(puts=records)


def timed_cli(env: dict[str, str], log: Path, *argv: str) -> tuple[float, float, bytes]:
    """Run ``esiprov ARGV``: (seconds, the child's own peak RSS in MB from wait4, its stdout)."""
    started = time.monotonic()
    with open(log, "ab") as errors:
        proc = subprocess.Popen([sys.executable, "-m", "esiprov.cli", *argv], env={**os.environ, **env}, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=errors)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    if proc.returncode:
        raise RuntimeError(f"esiprov {' '.join(argv)} failed ({proc.returncode}); see {log}")
    return seconds, usage.ru_maxrss / 1024, out


def timed_resync(env: dict[str, str], log: Path) -> tuple[float, float, dict[str, Any]]:
    """Run ``esiprov resync --json``: (seconds, the child's own peak RSS in MB from wait4, its output)."""
    seconds, mb, out = timed_cli(env, log, "resync", "--json")
    return seconds, mb, json.loads(out)


def resync_figures(env: dict[str, str], logs: Path, sizes: list[int]) -> None:
    """esiprov resync over ``sizes`` applied configs in a fresh etcd."""
    with EtcdServer(log_dir=logs) as etcd:
        store = Store.connect(from_env({"ESIPROV_ETCD_ENDPOINTS": etcd.endpoint}))
        templates.save(store, *templates.load_dir(templates.SHIPPED))
        done = 0
        for size in sizes:
            seed_applied(store, done, size)
            done = size
            seconds, mb, output = timed_resync({**env, "ESIPROV_ETCD_ENDPOINTS": etcd.endpoint}, logs / "resync.log")
            say(f"5. esiprov resync over {size} applied configs: {seconds:.1f} s, peak RSS {mb:.0f} MB, "
                f"{output['outcomes']} (target 10,000 in <= 10 s, memory flat) [{load()}]")
        store.close()


# --- the run --------------------------------------------------------------------------------------

@contextmanager
def services(logs: Path) -> Iterator[tuple[ExitStack, dict[str, Any]]]:
    with ExitStack() as stack:
        found = {
            "etcd": stack.enter_context(EtcdServer(log_dir=logs)),
            "redis": stack.enter_context(RedisServer(log_dir=logs)),
            "heat": stack.enter_context(HeatSim(logs)),
            "switches": stack.enter_context(Switches([SWITCH, PORT_SWITCH], log_dir=logs)),
        }
        yield stack, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resources", type=int, default=300, help="resources of the throughput runs")
    parser.add_argument("--chains", type=int, default=1500, help="bare chains of the baseline")
    parser.add_argument("--rounds", type=int, default=2,
                        help="esiprov batches of the throughput figure, between rounds+1 rounds of the bare chain")
    parser.add_argument("--slow", type=int, default=200, help="resources whose stacks take --build-time")
    parser.add_argument("--build-time", type=float, default=5.0)
    parser.add_argument("--ports", type=int, default=20, help="ports of figure 3, one at a time, on real Heat")
    parser.add_argument("--latency", type=int, default=100, help="puts of the latency run")
    parser.add_argument("--latency-rate", type=float, default=5.0,
                        help="puts per second of the latency run: well below the throughput, or it measures a queue")
    parser.add_argument("--resync", type=int, default=10000, help="configs of the resync run")
    parser.add_argument("--skip", default="",
                        help="figures not to take, e.g. 35 (1: the whole simulator part: 1, 2, 4, 6 and the "
                             "latency; p: the prefork contrast)")
    parser.add_argument("--setting", action="append", default=[], metavar="ESIPROV_X=value",
                        help="an ESIPROV_* setting for every esiprov process the bench starts (default: none)")
    args = parser.parse_args()
    settings = dict(item.split("=", 1) for item in args.setting)
    if any(not name.startswith("ESIPROV_") for name in settings):
        parser.error("--setting takes ESIPROV_* variables")
    logs = Path(tempfile.mkdtemp(prefix="esiprov-bench-pipeline-"))
    started = time.monotonic()
    with services(logs) as (stack, found):
        etcd, redis, heat, switches = found["etcd"], found["redis"], found["heat"], found["switches"]
        env = {**esiprov_env(etcd, redis, heat, switches, COMMUNITY), **settings}
        os.environ.update(env)  # before celeryconfig and barechain are imported: the driver sends to this broker
        pool, concurrency = default_pool()
        say(f"pipeline benchmark: {os.cpu_count()} CPUs, {load()}; default worker `celery -A tasks worker` = "
            f"{pool}, concurrency {concurrency}; logs in {logs}")
        if settings:
            say(f"settings tried (not the defaults): {settings}")
        store = Store.connect(from_env(env))
        stack.callback(store.close)
        templates.save(store, *templates.load_dir(templates.SHIPPED))
        pids = {"etcd": pid_of(etcd), "redis": pid_of(redis), "heatsim": pid_of(heat),
                "snmpsim": pid_of(switches), "bench": os.getpid()}
        redis_client = redis.client()
        stack.callback(redis_client.close)
        costs = Costs(etcd.endpoint, redis_client, lambda: dict(pids), wire_counter(switches.port),
                      heat_counts=lambda: Counter(heat.stats()["requests"]))
        if "1" not in args.skip:
            with running(start_watcher(env, logs)) as watcher:
                pids["watcher"] = pid_of(watcher)
                bare = default_worker_figures(args, env, logs, store, costs, pids, heat)
                if "p" not in args.skip:
                    prefork_contrast(args, env, logs, store, costs, pids, bare)
                del pids["watcher"]
        if "3" not in args.skip:
            from bench.realheat import real_heat
            real_heat(args.ports, logs, switches, PORT_SWITCH, COMMUNITY, say, load, settings)
        if "5" not in args.skip:  # while Redis runs: resync checks the broker before it starts
            resync_figures(env, logs, sorted({min(1000, args.resync), args.resync}))
    say(f"done in {time.monotonic() - started:.0f} s; every service stopped [{load()}]")


if __name__ == "__main__":
    main()
