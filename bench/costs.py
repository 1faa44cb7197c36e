"""What a stretch of a benchmark cost each service: etcd, Redis, Heat, SNMP requests and CPU time.

``Costs.window()`` snapshots every counter before and after a block; the deltas, divided by the
resources the block handled, are the per-resource figures. Where the counters come from:

- etcd: its Prometheus endpoint (``http://<client URL>/metrics``, plain HTTP on the client port, so
  reading it is no gRPC request of its own): ``etcd_debugging_mvcc_current_revision`` (writes: one
  revision per put, delete or writing transaction), ``etcd_mvcc_range_total`` (key reads: each range,
  in or out of a transaction), and ``grpc_server_handled_total`` per method (the requests clients sent:
  Range, Txn, Put, LeaseGrant, ...; streams counted when they end).
- Redis: ``INFO commandstats`` (calls per command).
- Heat: bench.heatsim's own counters, or requests counted on the wire (bench.wire) for real Heat.
- SNMP: request datagrams on the wire to the switches' port (bench.wire).
- CPU: user + system seconds of each process (a prefork worker's pool children included), psutil.
"""
from __future__ import annotations

import re
import time
import urllib.request
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import psutil
import redis

from bench.wire import WireCounter

_GRPC = re.compile(r'grpc_server_handled_total\{grpc_code="(\w+)",grpc_method="(\w+)",grpc_service="[\w.]+",'
                   r'grpc_type="\w+"\} (\S+)')
#: gRPC methods that are long-lived streams (counted only when they end): not per-request figures
STREAMS = {"Watch"}


def etcd_metrics(endpoint: str) -> tuple[int, int, Counter[str]]:
    """(current revision, key reads so far, handled gRPC requests by method) of the etcd at ``endpoint``."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy
    with opener.open(f"http://{endpoint}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("etcd_debugging_mvcc_current_revision", "etcd_mvcc_range_total"):
            values[name] = int(float(value))
    methods: Counter[str] = Counter()
    for _, method, value in _GRPC.findall(text):
        if method not in STREAMS:
            methods[method] += int(float(value))
    return values["etcd_debugging_mvcc_current_revision"], values["etcd_mvcc_range_total"], methods


def redis_commands(client: redis.Redis) -> Counter[str]:
    """Calls per command since the server started (``INFO commandstats``)."""
    return Counter({name.removeprefix("cmdstat_"): stats["calls"]
                    for name, stats in client.info("commandstats").items()})


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU seconds of ``pid``, with ``children`` those of its live children too (a prefork pool)."""
    try:
        process = psutil.Process(pid)
        total = sum(process.cpu_times()[:2])
        for child in process.children(recursive=True) if children else ():
            try:
                total += sum(child.cpu_times()[:2])
            except psutil.NoSuchProcess:
                pass
        return total
    except psutil.NoSuchProcess:
        return 0.0


@dataclass
class Spent:
    """The deltas of one window."""

    seconds: float = 0.0
    etcd_writes: int = 0
    etcd_reads: int = 0
    etcd_requests: Counter[str] = field(default_factory=Counter)
    redis: Counter[str] = field(default_factory=Counter)
    heat: Counter[str] = field(default_factory=Counter)
    snmp: int | None = None
    cpu: dict[str, float] = field(default_factory=dict)

    def add(self, other: Spent) -> None:
        """Add another window's deltas to these."""
        self.seconds += other.seconds
        self.etcd_writes += other.etcd_writes
        self.etcd_reads += other.etcd_reads
        self.etcd_requests.update(other.etcd_requests)
        self.redis.update(other.redis)
        self.heat.update(other.heat)
        if other.snmp is not None:
            self.snmp = (self.snmp or 0) + other.snmp
        for name, seconds in other.cpu.items():
            self.cpu[name] = self.cpu.get(name, 0.0) + seconds


@dataclass
class Costs:
    """The counters of one set of services; ``pids`` names the processes whose CPU is counted
    (a callable, so processes started later are included); a process named in ``with_children``
    counts with its children (a prefork worker's pool)."""

    etcd_endpoint: str
    redis: redis.Redis
    pids: Callable[[], dict[str, int]]
    snmp_wire: WireCounter | None = None
    #: Heat's request counters: a callable giving the counts so far (heatsim) ...
    heat_counts: Callable[[], Counter[str]] | None = None
    #: ... or a wire counter of HTTP requests to Heat's port (real Heat)
    heat_wire: WireCounter | None = None
    with_children: frozenset[str] = frozenset({"worker"})

    def _cpu(self, pids: dict[str, int]) -> dict[str, float]:
        return {name: cpu_seconds(pid, name in self.with_children) for name, pid in pids.items()}

    @contextmanager
    def window(self, settle: float = 0.3) -> Iterator[Spent]:
        """Fill the yielded Spent with what the block cost; ``settle`` seconds after the block let
        the last acks and result writes land before the counters are read again."""
        spent = Spent()
        pids = self.pids()
        for wire in (self.snmp_wire, self.heat_wire):
            if wire is not None:
                wire.take_requests()  # forget what came before
        heat_before = self.heat_counts() if self.heat_counts else Counter()
        cpu_before = self._cpu(pids)
        redis_before = redis_commands(self.redis)
        revision, reads, requests = etcd_metrics(self.etcd_endpoint)
        started = time.monotonic()
        yield spent
        time.sleep(settle)
        spent.seconds = time.monotonic() - started
        revision_after, reads_after, requests_after = etcd_metrics(self.etcd_endpoint)
        spent.etcd_writes, spent.etcd_reads = revision_after - revision, reads_after - reads
        spent.etcd_requests = requests_after - requests
        spent.redis = redis_commands(self.redis) - redis_before
        spent.redis["info"] -= 1  # the read of the counters before the block
        spent.cpu = {name: seconds - cpu_before.get(name, 0.0) for name, seconds in self._cpu(self.pids()).items()}
        if self.heat_counts:
            spent.heat = self.heat_counts() - heat_before
        elif self.heat_wire is not None:
            spent.heat = self.heat_wire.take_requests()
        if self.snmp_wire is not None:
            spent.snmp = self.snmp_wire.take()


def per(counter: Counter[str], count: int, top: int = 0) -> str:
    """``total (name share, ...)`` per resource, largest first; ``top`` limits the names shown."""
    total = sum(counter.values())
    items = [(name, value) for name, value in counter.most_common() if value > 0]
    shown = items[:top] if top else items
    detail = ", ".join(f"{name} {value / count:.2f}" for name, value in shown)
    rest = sum(value for _, value in items[len(shown):])
    if rest:
        detail += f", others {rest / count:.2f}"
    return f"{total / count:.2f} ({detail})"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def cost_lines(spent: Spent, count: int, unit: str = "resource") -> list[str]:
    """Figure 4's lines for one window: every counter per ``unit``."""
    lines = []
    if spent.heat:
        lines.append(f"Heat requests/{unit}: {per(spent.heat, count)}")
    lines.append(f"etcd writes (revisions)/{unit}: {spent.etcd_writes / count:.2f}; key reads (ranges, in and out "
                 f"of transactions)/{unit}: {spent.etcd_reads / count:.2f}; etcd requests/{unit}: "
                 f"{per(spent.etcd_requests, count)}")
    snmp = "not counted (needs root for a packet socket)" if spent.snmp is None else f"{spent.snmp / count:.2f}"
    lines.append(f"SNMP request datagrams/{unit}: {snmp}")
    lines.append(f"Redis commands/{unit}: {per(spent.redis, count, top=8)}")
    cpu = sorted(spent.cpu.items(), key=lambda item: -item[1])
    lines.append(f"CPU ms/{unit}: " + ", ".join(f"{name} {seconds * 1000 / count:.1f}" for name, seconds in cpu)
                 + f" (window {spent.seconds:.1f} s, total {sum(spent.cpu.values()) / spent.seconds:.2f} cores)")
    return lines
