"""One monitoring poll cycle: every registered target, one SNMP walk per device, /monitoring on change.

monitoring_worker registers targets under /esi-worker/monitoring_targets/ and
finalize publishes the first /monitoring value; from then on this cycle keeps
/monitoring true. Choices, and why:

- Targets are grouped per device address (and community token), and each device
  is asked once for what its targets' kinds read (esiprov.target_kinds): a device
  with fifty monitored ports costs one bulk walk of ifName + ifOperStatus, not
  fifty, and its sysUpTime rides in the walk's first request when a ``switch``
  target needs it: a 48-port switch costs one or two requests, a dead device one
  timeout. The octet counters join the walk only when a TSDB takes them.
- Devices are polled concurrently by a bounded thread pool, so an unreachable
  switch delays only its own targets.
- A port is polled at its device's *current* management address (port /config
  ``ese_device_id`` -> device /config ``management_ip_address``), falling back
  to the address recorded in the target: a device whose address changes takes
  its ports with it without re-registering them.
- Switch: FAIL without an answer; DOWN when sysUpTime stood still since the
  previous cycle (an agent that answers but whose clock is frozen is hung); UP
  otherwise, a smaller reading included (a restart, or the 497-day wrap: the
  agent is alive). Readings are kept in one record under /esi-worker/poller/.
- /monitoring is rewritten only when its status changes, with the resource's
  current config version, and only while it exists: finalize creates it, and a
  delete removes it with the target. Every write is guarded on the target's and
  /monitoring's mod_revision, so a poll that read them before a delete never
  re-creates them; a guard that fails is simply retried by the next cycle.
- Targets of a resource whose /config is gone or marked for deletion are not
  polled: the lifecycle is removing them.
- ``guarded_poll`` runs a cycle only under an etcd lease lock, and only if no
  cycle started less than half an interval ago: two beats, or a cycle slower
  than the interval, skip instead of polling twice. The spacing compares wall
  clocks of the workers, which must agree to well under half an interval.
- The walk also reads each interface's octet counters; once the cycle's writes
  are done those of the kinds that count traffic are handed to ``on_traffic``
  (esiprov.tsdb's pusher, with ESIPROV_TSDB_URL), which sends them after the
  cycle: the TSDB never delays a cycle nor touches /monitoring.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence, cast

from esiprov import damping, keys
from esiprov.documents import BadConfig, MonitoringTarget, ResourceVersion, monitoring_document, parse_envelope
from esiprov.leader import Leadership, identity
from esiprov.snmp import SnmpProbe, SnmpUnreachable
from esiprov.store import Compare, Entry, Store
from esiprov.target_kinds import DEVICE_ADDRESS, DEVICE_TYPE, INTERFACES, UPTIME, Kind, Reading, kind_of
from esiprov.tsdb import Traffic

log = logging.getLogger(__name__)

POLLER = keys.POLLER
#: held (on a lease) while a cycle runs
LOCK = f"{POLLER}lock"
#: when the last cycle started, what it found, and the sysUpTime of every device it reached
LAST_CYCLE = keys.POLL_CYCLE
#: devices polled at once; bounds the threads (and UDP sockets) one cycle uses
WORKERS = 32
#: seconds the lock outlives a crashed holder; a running cycle refreshes it
LOCK_TTL = 30

Addressed = tuple[str, str]  # (address, community token)
#: takes a cycle's traffic readings (esiprov.tsdb.sink); must return at once
TrafficSink = Callable[[Sequence[Traffic]], None]


@dataclass(frozen=True)
class Target:
    """One registered target as stored, with the revision its writes are guarded on."""

    key: str
    revision: int
    rtype: str
    rid: str
    record: MonitoringTarget

    @property
    def kind(self) -> Kind | None:
        return kind_of(self.record)

    @property
    def field(self) -> str:
        return str(self.record.get("field", ""))


@dataclass
class Device:
    address: str
    #: the community *token*; SnmpProbe maps it to the real community, which is never logged
    community: str
    targets: list[Target] = field(default_factory=list)

    def reads(self, what: str) -> bool:
        """Whether any of its targets' kinds reads ``what`` (UPTIME, INTERFACES)."""
        return any(target.kind is not None and target.kind.reads == what for target in self.targets)


@dataclass(frozen=True)
class Snapshot:
    """What one cycle reads from etcd before it polls."""

    targets: list[Target]
    configs: dict[tuple[str, str], ResourceVersion]
    monitoring: dict[str, Entry]
    uptimes: dict[str, int]


@dataclass
class Summary:
    """For logs, Flower and the benchmark."""

    devices: int = 0
    targets: int = 0
    #: targets not polled: resource gone or being deleted, unknown type, no address
    skipped: int = 0
    unreachable: int = 0
    #: SNMP operations: one per device (a sysUpTime GET, a walk, or a walk that asks sysUpTime too)
    snmp_calls: int = 0
    #: /monitoring values rewritten
    changes: int = 0
    #: writes whose guard failed (the target or /monitoring changed meanwhile); the next cycle retries
    conflicts: int = 0
    #: ports whose traffic counters were handed to the TSDB (0 without one)
    traffic: int = 0
    seconds: float = 0.0
    #: of which reading the snapshot from etcd (targets, configs, /monitoring)
    snapshot_seconds: float = 0.0


# --- pure decisions -------------------------------------------------------------------------------

def status_of(target: Target, reading: Reading, previous_uptime: int | None) -> str:
    """The target's status by its kind; only targets of a known kind are polled (``group``)."""
    assert target.kind is not None
    return target.kind.status(target.record, reading, previous_uptime)


def device_address(target: Target, configs: Mapping[tuple[str, str], ResourceVersion]) -> str:
    """Where to poll ``target`` now: its device's current management address, else the recorded one."""
    kind = target.kind
    if kind is None or not kind.follows_device:
        return "" if kind is None else kind.address(target.record)
    own = configs.get((target.rtype, target.rid))
    if not kind.device_ref:
        device = own
    else:
        device_id = own.body.get(kind.device_ref) if own else None
        device = configs.get((DEVICE_TYPE, str(device_id))) if device_id else None
    current = device.body.get(DEVICE_ADDRESS) if device else None
    return str(current or kind.address(target.record))


def group(targets: list[Target], configs: Mapping[tuple[str, str], ResourceVersion]) -> tuple[list[Device], int]:
    """Targets per (address, community); also how many were skipped (see Summary.skipped)."""
    devices: dict[Addressed, Device] = {}
    skipped = 0
    for target in targets:
        config = configs.get((target.rtype, target.rid))
        address = device_address(target, configs)
        if target.kind is None or config is None or config.marked_for_deletion or not address:
            skipped += 1
            continue
        community = str(target.record.get("community_name", ""))
        devices.setdefault((address, community), Device(address, community)).targets.append(target)
    return list(devices.values()), skipped


def planned_writes(target: Target, status: str, address: str, monitoring: Any, version: int,
                   now: float) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(new target record, new /monitoring document), each None when it must not be written.

    /monitoring only changes with its status, and only as the target's hold allows
    (esiprov.damping). It is created here only for a target whose status finalize withheld;
    otherwise finalize creates it, and a delete removes it with the target.
    """
    assert target.kind is not None
    record, shown = damping.decide({**target.record, "status": status, target.kind.address_field: address},
                                   status, now)
    new_record = record if record != target.record else None
    exists, withheld = isinstance(monitoring, dict), bool(target.record.get(damping.WITHHELD))
    # a status finalize withheld is written once the hold lets it through: /monitoring is created, or
    # (a modify) brought to the target's version even if the status is the same
    current = exists and monitoring.get(target.field) == status and not withheld
    if not shown or current or (not exists and not withheld):
        return new_record, None
    return new_record, monitoring_document(version, target.field, status)


def port_ids(target: Target) -> tuple[str, ...]:
    """The ``port_id`` tags of a port's traffic: the ids its target lists in ``port_ids``, else its own id."""
    listed = cast(Mapping[str, Any], target.record).get("port_ids")
    if isinstance(listed, list) and listed:
        return tuple(str(item) for item in listed)
    return (target.rid,)


def traffic_of(device: Device, reading: Reading) -> list[Traffic]:
    """The counters the walk read for each of the device's targets whose kind counts traffic."""
    found = []
    for target in device.targets:
        kind = target.kind
        octets = (reading.octets or {}).get(kind.interface(target.record)) if kind and kind.traffic else None
        if octets:
            found.append(Traffic(target.rid, port_ids(target), octets, reading.read_at))
    return found


# --- etcd and SNMP --------------------------------------------------------------------------------

def read_snapshot(store: Store) -> Snapshot:
    """Targets, the configs they depend on, their /monitoring entries and the last uptimes."""
    targets = []
    for entry in store.range(keys.TARGETS)[0]:
        found = keys.resource_of(entry.key, keys.TARGETS)
        if found and isinstance(entry.value, dict):
            targets.append(Target(entry.key, entry.mod_revision, *found, cast(MonitoringTarget, entry.value)))
    configs: dict[tuple[str, str], ResourceVersion] = {}
    monitoring: dict[str, Entry] = {}
    for rtype in {target.rtype for target in targets} | {DEVICE_TYPE}:
        for entry in store.range(keys.config(rtype, ""))[0]:
            found = keys.resource_of(entry.key)
            if found is None:
                continue
            try:
                configs[found] = parse_envelope(*found, entry.value)
            except BadConfig:
                pass  # the planner reports it; without a version there is nothing to publish
        monitoring.update((entry.key, entry) for entry in store.range(keys.monitoring(rtype, ""))[0])
    last = store.value(LAST_CYCLE)
    uptimes = last.get("uptimes", {}) if isinstance(last, dict) else {}
    return Snapshot(targets, configs, monitoring, uptimes)


def read_device(probe: SnmpProbe, device: Device, counters: bool = False) -> Reading:
    """What the targets' kinds read, in one SNMP operation: the interface walk, with sysUpTime in its
    first request when a kind reads that too (and the octet counters when ``counters``), or sysUpTime
    alone. A 48-port switch costs one request or two on snmpsim without counters (four columns: about
    four); a dead device one timeout."""
    uptime, ports, octets = None, None, None
    try:
        if device.reads(INTERFACES):
            walk = probe.port_walk(device.address, device.community, counters=counters,
                                   uptime=device.reads(UPTIME))
            uptime, ports, octets = walk.uptime, walk.statuses, walk.octets if counters else None
        elif device.reads(UPTIME):
            uptime = probe.uptime(device.address, device.community)
    except SnmpUnreachable:
        pass  # what was not read stays None: FAIL
    return Reading(uptime, ports, 1, octets, int(time.time()))


class Conflict(Exception):
    """A guarded write found its target or /monitoring changed since it was read."""


def write_status(store: Store, target: Target, status: str, address: str, snapshot: Snapshot) -> str | None:
    """Write what changed for one target; the old /monitoring status if it changed, None otherwise.

    Raises Conflict when the target or /monitoring changed since the snapshot.
    """
    monitoring_key = keys.monitoring(target.rtype, target.rid)
    current = snapshot.monitoring.get(monitoring_key)
    version = snapshot.configs[target.rtype, target.rid].version
    record, document = planned_writes(target, status, address, current and current.value, version, time.time())
    guards = [Compare.unchanged(target.key, target.revision)]
    puts = {target.key: record} if record else {}
    old = None
    if document:
        guards.append(Compare.as_read(monitoring_key, current))
        puts[monitoring_key] = document
        old = str(current.value.get(target.field)) if current else "absent (withheld)"
    if puts and not store.commit(guards, puts):
        raise Conflict(target.key)
    return old


def poll_device(store: Store, probe: SnmpProbe, device: Device, snapshot: Snapshot,
                counters: bool = False) -> tuple[Reading, int, int]:
    """Read one device and publish its targets: (reading, changes, conflicts)."""
    reading = read_device(probe, device, counters)
    changes = conflicts = 0
    for target in device.targets:
        status = status_of(target, reading, snapshot.uptimes.get(device.address))
        try:
            old = write_status(store, target, status, device.address, snapshot)
        except Conflict:
            conflicts += 1
            continue
        if old is not None:
            changes += 1
            log.info("%s %s at %s: %s -> %s", target.rtype, target.rid, device.address, old, status)
    return reading, changes, conflicts


def hand_over(on_traffic: TrafficSink | None, traffic: Sequence[Traffic]) -> None:
    """Give the cycle's counters to the TSDB's sink; whatever happens there, the cycle goes on."""
    if on_traffic is None or not traffic:
        return
    try:
        on_traffic(traffic)
    except Exception:  # noqa: BLE001 - counters are a side channel: never fail the cycle for them
        log.exception("traffic counters of %d ports not handed to the TSDB", len(traffic))


def poll(store: Store, probe: SnmpProbe, workers: int = WORKERS,
         keep_alive: Callable[[], None] = lambda: None, on_traffic: TrafficSink | None = None) -> Summary:
    """One cycle over every target; ``keep_alive`` is called as devices finish (the lock's refresh).

    With ``on_traffic``, the ports' counters are handed to it after the cycle's writes.
    """
    started, clock = time.time(), time.monotonic()
    snapshot = read_snapshot(store)
    devices, skipped = group(snapshot.targets, snapshot.configs)
    summary = Summary(devices=len(devices), targets=len(snapshot.targets) - skipped, skipped=skipped,
                      snapshot_seconds=round(time.monotonic() - clock, 3))
    uptimes: dict[str, int] = {}
    traffic: list[Traffic] = []
    with ThreadPoolExecutor(max(1, min(workers, len(devices))), thread_name_prefix="poll") as pool:
        futures = {pool.submit(poll_device, store, probe, device, snapshot, on_traffic is not None): device
                   for device in devices}
        for future in as_completed(futures):
            reading, changes, conflicts = future.result()
            summary.snmp_calls += reading.calls
            summary.changes += changes
            summary.conflicts += conflicts
            summary.unreachable += not reading.answered
            if reading.uptime is not None:
                uptimes[futures[future].address] = reading.uptime
            if on_traffic is not None:
                traffic += traffic_of(futures[future], reading)
            keep_alive()
    summary.traffic = len(traffic) if on_traffic is not None else 0
    summary.seconds = round(time.monotonic() - clock, 3)
    store.put(LAST_CYCLE, {"started": started, "by": identity(), "summary": vars(summary), "uptimes": uptimes})
    hand_over(on_traffic, traffic)
    return summary


@contextmanager
def cycle_lock(store: Store, ttl: int = LOCK_TTL) -> Iterator[Callable[[], None] | None]:
    """Hold LOCK on a lease for the ``with`` block: yields a keep-alive, or None if another holds it.

    A crashed holder's lease expires within ``ttl`` seconds.
    """
    lock = Leadership(store, LOCK, ttl)
    if not lock.try_acquire():
        yield None
        return
    refreshed = time.monotonic()

    def keep_alive() -> None:
        nonlocal refreshed
        if time.monotonic() - refreshed > ttl / 3:
            lock.keep()
            refreshed = time.monotonic()
    try:
        yield keep_alive
    finally:
        lock.resign()


def guarded_poll(store: Store, probe: SnmpProbe, interval: float, workers: int = WORKERS,
                 on_traffic: TrafficSink | None = None) -> Summary | None:
    """A cycle, unless one is running or one started less than ``interval / 2`` ago (then None)."""
    with cycle_lock(store) as keep_alive:
        if keep_alive is None:
            log.info("poll cycle skipped: another cycle holds %s (%s)", LOCK, store.value(LOCK))
            return None
        last = store.value(LAST_CYCLE)
        ago = time.time() - (last.get("started", 0) if isinstance(last, dict) else 0)
        if ago < interval / 2:
            # info, not a warning: two beats are how periodic work survives a host (README)
            log.info("poll cycle skipped: the last one started %.1f s ago, by %s, with an interval of %g s "
                     "(a second celery beat sent this one, or it came late)", ago, last.get("by"), interval)
            return None
        return poll(store, probe, workers, keep_alive, on_traffic)
