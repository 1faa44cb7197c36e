"""Scale benchmark: esiprov over 1,000, 10,000 and 100,000 settled resources, and the leader's own rate.

Real etcd and Redis on loopback, nothing else (no worker, no Heat: nothing here needs one).

1. Settled resources are written straight into etcd (config, /state and the applied config at the same
   version, in 128-op transactions; ids are UUIDs as ESI's are, or with ``--ids names`` names that
   share a long prefix) at each size; then, for each size:
   ``esiprov watch`` from start to its "watching /config" line (and the "listed N resources in X s"
   line it logs), its peak RSS, whether it kept its lease and heartbeat the whole time (the
   heartbeat's "at" advancing, seen through a watch; no "lost leadership" or "delivered nothing" in
   its log); ``esiprov resync --json``, ``esiprov state list --failed --json`` and ``esiprov jobs
   list --json``: time and peak RSS (wait4). Growth ratios 1k -> 10k -> 100k at the end.
2. The etcd budget of a settled resource (keys per family, bytes in the database) at each size.
3. The leader's own rate: with no worker at all (messages pile up in the bench's Redis), N new
   configs put at once; seconds until N workflow records exist, and a py-spy profile of the
   watcher meanwhile (where its GIL time goes).

    python -m bench.scale [--sizes 1000,10000,100000] [--ids uuid|names] [--rate 2000] [--hold 6] [--skip r]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psutil

from bench.pipeline import RTYPE, SWITCH, TENANT, TXN_OPS, Arrivals, load, say, timed_cli
from bench.running import running
from bench.spy import RATE, Profile, frame_file, frame_function
from esiprov import keys, templates
from esiprov.devenv.apiserver import envelope
from esiprov.devenv.bodies import device_body
from esiprov.devenv.etcd import EtcdServer
from esiprov.devenv.pipeline import LEADING, ROOT, _logged
from esiprov.devenv.process import Service, wait_until
from esiprov.devenv.redis import RedisServer
from esiprov.settings import from_env
from esiprov.store import Store, encode

#: the key families a resource can have, for the budget (label, prefix)
FAMILIES = [("config", keys.CONFIG), ("state", keys.STATE), ("monitoring", keys.MONITORING), ("jobs", keys.JOBS),
            ("applied configs", keys.APPLIED_CONFIG), ("workflows", keys.WORKFLOWS), ("holds", keys.HOLDS),
            ("unsent", keys.UNSENT), ("monitoring targets", keys.TARGETS),
            ("heat stacks", f"{keys.WORKER}heat_stacks/"), ("job state", f"{keys.WORKER}job_state/"),
            ("heat ops", keys.HEAT_OPS), ("failures", keys.FAILURES)]


#: id shapes of the seeded resources: UUIDs, as ESI's are; or names that all share a long prefix
#: ("settled-device-000001"...), the worst case for a key read that splits on the first characters
IDS = ("uuid", "names")


def body(tag: str, n: int, ids: str = "uuid") -> tuple[str, dict[str, Any]]:
    """(id, body) of an ese_device; the id a UUID or (``ids="names"``) ``<tag>-device-<n>``."""
    rid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"esiprov-scale:{tag}:{n}")) if ids == "uuid" else f"{tag}-device-{n:06d}"
    return rid, device_body(SWITCH.ip, TENANT, rid, name=f"{tag}-{n:06d}")


def seed(store: Store, start: int, stop: int, ids: str = "uuid") -> int:
    """Settled resources [start, stop): config, /state and the applied config at version 1; bytes written (keys + values)."""
    records: dict[str, Any] = {}
    written = 0
    for n in range(start, stop):
        rid, config = body("settled", n, ids)
        records[keys.config(RTYPE, rid)] = envelope(config, 1)
        records[keys.state(RTYPE, rid)] = {"state": {"worker_state": "CREATE_COMPLETED"}, "version": 1, "error": ""}
        records[keys.applied_config(RTYPE, rid)] = {"body": config, "version": 1, "deleted": False}
        if len(records) >= TXN_OPS - 2:
            written += sum(len(key) + len(encode(value)) for key, value in records.items())
            store.commit(puts=records)
            records = {}
    if records:
        written += sum(len(key) + len(encode(value)) for key, value in records.items())
        store.commit(puts=records)
    return written


def etcd_metrics(endpoint: str, names: tuple[str, ...]) -> dict[str, float]:
    with urllib.request.urlopen(f"http://{endpoint}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in names:
            found[name] = float(value)
    return found


class Sampler:
    """Peak RSS of a process (psutil, every 50 ms) while a ``with`` block runs."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._done.wait(0.05):
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


def high_water_mb(pid: int) -> float:
    """The kernel's own peak RSS of a running process (VmHWM), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Heartbeats:
    """Every heartbeat put, as a watch delivers it: (monotonic time seen, its "at", its holder)."""

    def __init__(self, store: Store) -> None:
        self.seen: list[tuple[float, float, str]] = []
        self._cancel = store.on_changes(keys.WATCHER_HEARTBEAT, store.revision() + 1, self._beat)

    def _beat(self, change: Any) -> None:
        if change.entry is not None:
            self.seen.append((time.monotonic(), change.entry.value.get("at", 0.0), change.entry.value.get("holder", "")))

    def close(self) -> None:
        self._cancel()


def watcher_start(env: dict[str, str], logs: Path, store: Store, size: int, hold: float) -> dict[str, Any]:
    """Start ``esiprov watch``; until it logs "watching /config", then ``hold`` s more: its figures."""
    wait_until(lambda: store.get(keys.WATCHER_LEADER) is None, 30, "the previous leader's key gone")
    beats = Heartbeats(store)
    service = Service(f"watcher-{size}", [sys.executable, "-m", "esiprov.cli", "watch"], logs, dict(env), cwd=ROOT)
    started = time.monotonic()
    try:
        with running(service.start(lambda: service.proc is not None and service.proc.pid > 0, timeout=10)):
            with Sampler(service.proc.pid) as sampler:
                wait_until(lambda: _logged(service, LEADING), 600, "the watcher's 'watching /config' line", 0.02)
                ready = time.monotonic() - started
                time.sleep(hold)
                leader = store.value(keys.WATCHER_LEADER)
                hwm = high_water_mb(service.proc.pid)
            ended = time.monotonic()
    finally:
        beats.close()
    text = service.log_path.read_text(errors="replace")
    listed = re.search(r"listed (\d+) resources in ([\d.]+) s: ([^\n]*)", text)
    times = [seen for seen, _, _ in beats.seen]
    ats = [at for _, at, _ in beats.seen]
    gaps = [b - a for a, b in zip([started, *times], [*times, ended])]
    return {
        "ready": ready, "listed": listed.group(0) if listed else "no 'listed' line",
        "list_seconds": float(listed.group(2)) if listed else None,
        "peak_mb": sampler.peak / 2**20, "hwm_mb": hwm, "beats": len(beats.seen),
        "first_beat": times[0] - started if times else None,
        "max_gap": max(gaps[1:]) if len(gaps) > 1 else None,
        "advancing": all(b > a for a, b in zip(ats, ats[1:])),
        "holders": sorted({holder for _, _, holder in beats.seen}), "leader": (leader or {}).get("holder"),
        "lost": text.count("lost leadership"), "silent": text.count("delivered nothing"),
        "relists": text.count("relisting in"), "lines": text.count("\n"),
    }


def budget(store: Store, endpoint: str, size: int, written: int) -> dict[str, Any]:
    counts = {label: store.count(prefix) for label, prefix in FAMILIES}
    counts["heat templates"] = store.count(keys.TEMPLATES)
    counts["config"] -= counts["heat templates"]
    sizes = etcd_metrics(endpoint, ("etcd_mvcc_db_total_size_in_bytes", "etcd_mvcc_db_total_size_in_use_in_bytes",
                                    "etcd_debugging_mvcc_keys_total", "etcd_debugging_mvcc_current_revision"))
    return {"size": size, "counts": {k: v for k, v in counts.items() if v}, "written": written, **sizes}


def size_figures(args: argparse.Namespace, env: dict[str, str], logs: Path, store: Store,
                 endpoint: str) -> list[dict[str, Any]]:
    rows = []
    done = written = 0
    for size in args.sizes:
        started = time.monotonic()
        written += seed(store, done, size, args.ids)
        say(f"seeded {size - done} settled resources ({args.ids} ids) in {time.monotonic() - started:.1f} s "
            f"(now {size}) [{load()}]")
        done = size
        row: dict[str, Any] = {"size": size, "budget": budget(store, endpoint, size, written)}
        b = row["budget"]
        say(f"  etcd at {size}: keys {b['counts']}; revision {b.get('etcd_debugging_mvcc_current_revision', 0):.0f}; "
            f"db {b['etcd_mvcc_db_total_size_in_bytes'] / 2**20:.1f} MB "
            f"(in use {b['etcd_mvcc_db_total_size_in_use_in_bytes'] / 2**20:.1f} MB); "
            f"keys+values written {written / 2**20:.1f} MB = {written / size:.0f} bytes/resource")
        w = row["watch"] = watcher_start(env, logs, store, size, args.hold)
        kept = not w["lost"] and not w["silent"] and not w["relists"] and w["advancing"] and w["leader"] is not None
        say(f"  watch at {size}: start -> 'watching /config' {w['ready']:.1f} s; {w['listed']}; peak RSS "
            f"{w['peak_mb']:.0f} MB (VmHWM {w['hwm_mb']:.0f} MB); {w['beats']} heartbeats, first "
            f"{w['first_beat'] or 0:.1f} s after start, longest gap {w['max_gap'] or 0:.1f} s (to {args.hold:g} s "
            f"after ready), 'at' advancing {w['advancing']}; lost leadership {w['lost']}, silent-watch "
            f"{w['silent']}, relists {w['relists']}; log {w['lines']} lines; lease and heartbeat kept: "
            f"{'yes' if kept else 'NO'} [{load()}]")
        for name, argv in (("resync", ("resync", "--json")), ("state", ("state", "list", "--failed", "--json")),
                           ("jobs", ("jobs", "list", "--json"))):
            seconds, mb, out = timed_cli(env, logs / f"{name}.log", *argv)
            row[name] = (seconds, mb)
            shown = json.loads(out).get("outcomes") if name == "resync" else f"{len(out)} bytes out"
            say(f"  esiprov {' '.join(argv)} at {size}: {seconds:.2f} s, peak RSS {mb:.0f} MB ({shown}) [{load()}]")
        rows.append(row)
    return rows


def growth(rows: list[dict[str, Any]]) -> None:
    if len(rows) < 2:
        return
    sizes = " -> ".join(f"{row['size']:,}" for row in rows)

    def line(label: str, values: list[float], unit: str) -> None:
        ratios = " -> ".join(f"x{b / a:.2f}" if a else "-" for a, b in zip(values, values[1:]))
        say(f"  {label}: " + " / ".join(f"{v:.2f}{unit}" for v in values) + f"  (growth {ratios})")

    say(f"growth over {sizes} resources (each step x{rows[1]['size'] / rows[0]['size']:.0f} resources):")
    line("watch start -> 'watching /config'", [r["watch"]["ready"] for r in rows], " s")
    line("watch 'listed' (its own figure)", [r["watch"]["list_seconds"] or 0 for r in rows], " s")
    line("watch peak RSS", [r["watch"]["peak_mb"] for r in rows], " MB")
    for name, label in (("resync", "resync --json"), ("state", "state list --failed --json"),
                        ("jobs", "jobs list --json")):
        line(f"{label} time", [r[name][0] for r in rows], " s")
        line(f"{label} peak RSS", [r[name][1] for r in rows], " MB")
    line("etcd db size", [r["budget"]["etcd_mvcc_db_total_size_in_bytes"] / 2**20 for r in rows], " MB")


# --- the leader's own rate ----------------------------------------------------------------------

def watcher_area(frames: list[str]) -> tuple[str, str]:
    """(esiprov function, what it waits on) of one watcher sample; ``frames`` outermost first."""
    files = [frame_file(frame) for frame in frames]
    functions = [frame_function(frame) for frame in frames]
    own = [f"{Path(f).stem}.{fn}" for f, fn in zip(files, functions) if f.startswith("esiprov/") or "/esiprov/" in f]
    where = " > ".join(own[-2:]) if own else "outside esiprov"
    kinds = [("etcd (gRPC)", ("/grpc/", "/pyetcd/", "/google/protobuf/", "esiprov/store.py")),
             ("publish (Celery, kombu, Redis)", ("kombu/", "redis/", "celery/")), ("JSON", ("/json/",)),
             ("templates (Jinja, YAML)", ("/jinja2/", "/yaml/")), ("logging", ("/logging/",))]
    for path in reversed(files):
        for kind, fragments in kinds:
            if any(fragment in path for fragment in fragments):
                return where, kind
    return where, "own code"


def spy_lines(profile: Profile, count: int) -> list[str]:
    if profile.error or not profile.out.exists():
        return [f"profile not taken: {profile.error or 'no output'}"]
    found: Counter[tuple[str, str]] = Counter()
    for line in profile.out.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            found[watcher_area([f for f in stack.split(";") if not f.startswith(("process ", "thread "))])] += int(n)
    total = sum(found.values())
    if not total:
        return ["profile: no samples"]
    lines = [f"GIL held {total / (profile.seconds * RATE):.0%} of {profile.seconds:.1f} s = "
             f"{total * 1000 / RATE / count:.2f} ms per resource; by (innermost esiprov functions, what it waits on):"]
    by_kind: Counter[str] = Counter()
    for (_, kind), n in found.items():
        by_kind[kind] += n
    lines.append("by kind: " + "; ".join(f"{kind} {n / total:.0%}" for kind, n in by_kind.most_common()))
    for (where, kind), n in found.most_common(12):
        lines.append(f"{n / total:5.1%}  {where}  [{kind}]")
    return lines


def etcd_and_redis(stack: ExitStack, logs: Path) -> tuple[EtcdServer, RedisServer, dict[str, str], Store]:
    """A fresh etcd (with the shipped templates) and Redis on ``stack``; esiprov's environment for them, a store."""
    etcd = stack.enter_context(EtcdServer(log_dir=logs))
    redis = stack.enter_context(RedisServer(log_dir=logs))
    env = {"ESIPROV_ETCD_ENDPOINTS": etcd.endpoint, "ESIPROV_BROKER_URL": redis.url}
    store = Store.connect(from_env(env))
    stack.callback(store.close)
    templates.save(store, *templates.load_dir(templates.SHIPPED))
    return etcd, redis, env, store


def leader_rate(args: argparse.Namespace, logs: Path) -> None:
    """N new configs put at once, no worker: seconds until N workflow records exist, with a py-spy profile."""
    with ExitStack() as stack:
        etcd, redis, env, store = etcd_and_redis(stack, logs)
        service = Service("watcher-rate", [sys.executable, "-m", "esiprov.cli", "watch"], logs, env, cwd=ROOT)
        watcher = stack.enter_context(running(service.start(lambda: _logged(service, LEADING), timeout=60)))
        rows = [body("new", n) for n in range(args.rate)]
        with Arrivals(store, f"{keys.WORKFLOWS}{RTYPE}s/") as flows, \
                Profile(watcher.proc.pid, logs / "watcher-gil.txt") as profile:
            cpu0 = sum(psutil.Process(watcher.proc.pid).cpu_times()[:2])
            started = time.time()
            for chunk in range(0, len(rows), TXN_OPS):
                store.commit(puts={keys.config(RTYPE, rid): envelope(config, 1) for rid, config in rows[chunk:chunk + TXN_OPS]})
            put = time.time() - started
            flows.wait(args.rate, 600, "workflow records")
            seconds = max(flows.first.values()) - started
            arrived = sorted(flows.first.values())
            tenth = arrived[len(arrived) // 10]
            steady = (len(arrived) - len(arrived) // 10 - 1) / (arrived[-1] - tenth)
            cpu = sum(psutil.Process(watcher.proc.pid).cpu_times()[:2]) - cpu0
        client = redis.client()
        queued = {key.decode(): client.llen(key) for key in client.keys("*") if client.type(key) == b"list"}
        client.close()
        say(f"3. leader's own rate, no worker: {args.rate} configs put in {put:.1f} s (transactions of {TXN_OPS}); "
            f"{args.rate} workflow records after {seconds:.1f} s = {args.rate / seconds:.0f} resources/s "
            f"planned and dispatched (first record after {arrived[0] - started:.2f} s; {steady:.0f}/s over the last 90 %); watcher CPU {cpu * 1000 / args.rate:.1f} ms/resource "
            f"({cpu / seconds:.2f} cores); messages waiting in Redis {queued} [{load()}]")
        found = budget(store, etcd.endpoint, args.rate, 0)["counts"]
        say(f"3. keys after dispatch, before any worker ran (per family, {args.rate} resources): {found}")
        for line in spy_lines(profile, args.rate):
            say(f"   {line}")


def provisioned_budget(args: argparse.Namespace, logs: Path) -> None:
    """The keys and bytes a resource leaves once provisioned end to end (heatsim, one default worker, the
    watcher): per family, and etcd's revisions (writes) per resource."""
    from bench.pipeline import COMMUNITY, run_batch, services
    from bench.costs import Costs
    from esiprov.devenv.local import esiprov_env
    from esiprov.devenv.pipeline import start_watcher, start_worker
    with services(logs) as (stack, found):
        env = esiprov_env(found["etcd"], found["redis"], found["heat"], found["switches"], COMMUNITY)
        store = Store.connect(from_env(env))
        stack.callback(store.close)
        templates.save(store, *templates.load_dir(templates.SHIPPED))
        redis_client = found["redis"].client()
        stack.callback(redis_client.close)
        costs = Costs(found["etcd"].endpoint, redis_client, lambda: {}, None)
        with running(start_watcher(env, logs, "watcher-budget")), running(start_worker(env, logs, "worker-budget")):
            before = budget(store, found["etcd"].endpoint, 0, 0)
            batch = run_batch(store, costs, "budget", args.provisioned, 300)
            time.sleep(3)  # the monitoring step's and finalize's last writes
            after = budget(store, found["etcd"].endpoint, args.provisioned, 0)
        n = args.provisioned
        counts = {k: (v - before["counts"].get(k, 0)) / n for k, v in after["counts"].items()
                  if v - before["counts"].get(k, 0)}
        live = sum(len(e.key) + len(encode(e.value)) for prefix in (keys.CONFIG, keys.STATE, keys.MONITORING,
                   keys.JOBS, keys.WORKER) for e in store.scan(prefix) if not e.key.startswith(keys.TEMPLATES))
        revisions = after["etcd_debugging_mvcc_current_revision"] - before["etcd_debugging_mvcc_current_revision"]
        grown = after["etcd_mvcc_db_total_size_in_bytes"] - before["etcd_mvcc_db_total_size_in_bytes"]
        say(f"2. a provisioned resource ({n} ese_devices end to end on heatsim, {batch.outcomes}): keys per family "
            + ", ".join(f"{k} {v:g}" for k, v in counts.items()) + f" = {sum(counts.values()):g} keys; "
            f"live keys+values {live / n:.0f} bytes; {revisions / n:.2f} revisions (writes) per resource, the "
            f"config put included; etcd db grew {grown / n:.0f} bytes per resource (uncompacted history) [{load()}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="settled resources, ascending, comma-separated")
    parser.add_argument("--rate", type=int, default=2000, help="new configs of the leader's rate figure")
    parser.add_argument("--hold", type=float, default=6.0, help="seconds the watcher runs after 'watching /config'")
    parser.add_argument("--provisioned", type=int, default=200, help="resources of the provisioned-resource budget")
    parser.add_argument("--ids", choices=IDS, default="uuid", help="id shape of the settled resources")
    parser.add_argument("--skip", default="", help="s: the sizes; r: the leader's rate; b: the provisioned budget")
    args = parser.parse_args()
    args.sizes = sorted(int(size) for size in args.sizes.split(","))
    logs = Path(tempfile.mkdtemp(prefix="esiprov-bench-scale-"))
    started = time.monotonic()
    say(f"scale benchmark: {os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GB, {load()}; "
        f"logs in {logs}")
    if "r" not in args.skip:
        leader_rate(args, logs)
    if "b" not in args.skip:
        provisioned_budget(args, logs)
    if "s" not in args.skip:
        with ExitStack() as stack:
            etcd, _, env, store = etcd_and_redis(stack, logs)
            growth(size_figures(args, env, logs, store, etcd.endpoint))
    say(f"done in {time.monotonic() - started:.0f} s; every service stopped [{load()}]")


if __name__ == "__main__":
    main()
