"""One monitoring poll cycle: every registered target, one SNMP walk per device, /monitoring on change.

monitoring_worker registers targets under /esi-worker/monitoring_targets/ and
finalize publishes the first /monitoring value; from then on this cycle keeps
/monitoring true. Choices, and why:

- Targets are grouped per device address (and community token): a device with
  fifty monitored ports costs one bulk walk of ifName + ifOperStatus, not fifty,
  and a device with a ``switch`` target too is asked sysUpTime in the walk's
  first request: a 48-port switch costs one SNMP request a cycle, and a dead
  device one timeout.
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
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from esiprov import keys
from esiprov.leader import Leadership, identity
from esiprov.model import BadConfig, ResourceVersion, parse_envelope
from esiprov.snmp import DOWN, FAIL, UP, SnmpProbe, SnmpUnreachable
from esiprov.store import Compare, Entry, Store

log = logging.getLogger(__name__)

SWITCH, PORT = "switch", "physical_port"
#: the target field holding the address it is polled at, per target type
ADDRESS_FIELD = {SWITCH: "ip", PORT: "device_ip"}
DEVICE_TYPE = "ese_device"
#: port body -> its device; device body -> its SNMP address (as the shipped monitoring templates map them)
DEVICE_REF, DEVICE_ADDRESS = "ese_device_id", "management_ip_address"

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


@dataclass(frozen=True)
class Target:
    """One registered target as stored, with the revision its writes are guarded on."""

    key: str
    revision: int
    rtype: str
    rid: str
    record: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.record.get("type", ""))

    @property
    def field(self) -> str:
        return str(self.record.get("field", ""))


@dataclass
class Device:
    address: str
    #: the community *token*; SnmpProbe maps it to the real community, which is never logged
    community: str
    targets: list[Target] = field(default_factory=list)

    def has(self, kind: str) -> bool:
        return any(target.kind == kind for target in self.targets)


@dataclass(frozen=True)
class Snapshot:
    """What one cycle reads from etcd before it polls."""

    targets: list[Target]
    configs: dict[tuple[str, str], ResourceVersion]
    monitoring: dict[str, Entry]
    uptimes: dict[str, int]


@dataclass(frozen=True)
class Reading:
    """A device's answers: None where it was not asked or did not answer."""

    uptime: int | None = None
    ports: Mapping[str, str] | None = None
    calls: int = 0

    @property
    def answered(self) -> bool:
        return self.uptime is not None or self.ports is not None


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
    seconds: float = 0.0
    #: of which reading the snapshot from etcd (targets, configs, /monitoring)
    snapshot_seconds: float = 0.0


# --- pure decisions -------------------------------------------------------------------------------

def port_status(ports: Mapping[str, str] | None, name: str) -> str:
    """UP/DOWN as walked; FAIL when the device did not answer or has no interface of that name."""
    return FAIL if ports is None else ports.get(name, FAIL)


def switch_status(uptime: int | None, previous: int | None) -> str:
    """FAIL without an answer, DOWN when sysUpTime stood still since the last cycle, else UP."""
    if uptime is None:
        return FAIL
    return DOWN if uptime == previous else UP


def status_of(target: Target, reading: Reading, previous_uptime: int | None) -> str:
    if target.kind == SWITCH:
        return switch_status(reading.uptime, previous_uptime)
    return port_status(reading.ports, str(target.record.get("name", "")))


def device_address(target: Target, configs: Mapping[tuple[str, str], ResourceVersion]) -> str:
    """Where to poll ``target`` now: its device's current management address, else the recorded one."""
    if target.kind == SWITCH:
        device = configs.get((target.rtype, target.rid))
    else:
        own = configs.get((target.rtype, target.rid))
        device_id = target.record.get("device_id") or (own.body.get(DEVICE_REF) if own else None)
        device = configs.get((DEVICE_TYPE, str(device_id))) if device_id else None
    current = device.body.get(DEVICE_ADDRESS) if device else None
    return str(current or target.record.get(ADDRESS_FIELD.get(target.kind, ""), "") or "")


def group(targets: list[Target], configs: Mapping[tuple[str, str], ResourceVersion]) -> tuple[list[Device], int]:
    """Targets per (address, community); also how many were skipped (see Summary.skipped)."""
    devices: dict[Addressed, Device] = {}
    skipped = 0
    for target in targets:
        config = configs.get((target.rtype, target.rid))
        address = device_address(target, configs)
        if target.kind not in ADDRESS_FIELD or config is None or config.marked_for_deletion or not address:
            skipped += 1
            continue
        community = str(target.record.get("community_name", ""))
        devices.setdefault((address, community), Device(address, community)).targets.append(target)
    return list(devices.values()), skipped


def planned_writes(target: Target, status: str, address: str, monitoring: Any,
                   version: int) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(new target record, new /monitoring document), each None when it must not be written.

    /monitoring only changes with its status, and is never created here.
    """
    record = {**target.record, "status": status, ADDRESS_FIELD[target.kind]: address}
    new_record = record if record != target.record else None
    if not isinstance(monitoring, dict) or monitoring.get(target.field) == status:
        return new_record, None
    return new_record, {"version": version, target.field: status}


# --- etcd and SNMP --------------------------------------------------------------------------------

def read_snapshot(store: Store) -> Snapshot:
    """Targets, the configs they depend on, their /monitoring entries and the last uptimes."""
    targets = []
    for entry in store.range(keys.TARGETS)[0]:
        found = keys.resource_of(entry.key, keys.TARGETS)
        if found and isinstance(entry.value, dict):
            targets.append(Target(entry.key, entry.mod_revision, *found, entry.value))
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


def read_device(probe: SnmpProbe, device: Device) -> Reading:
    """sysUpTime if the device has a switch target, every port's status if it has port targets: one
    walk that asks sysUpTime in its first request when it has both (a 48-port switch: one request)."""
    uptime, ports = None, None
    try:
        if device.has(SWITCH) and device.has(PORT):
            uptime, ports = probe.uptime_and_ports(device.address, device.community)
        elif device.has(SWITCH):
            uptime = probe.uptime(device.address, device.community)
        elif device.has(PORT):
            ports = probe.port_statuses(device.address, device.community)
    except SnmpUnreachable:
        pass  # what was not read stays None: FAIL
    return Reading(uptime, ports, int(device.has(SWITCH) or device.has(PORT)))


class Conflict(Exception):
    """A guarded write found its target or /monitoring changed since it was read."""


def publish(store: Store, target: Target, status: str, address: str, snapshot: Snapshot) -> str | None:
    """Write what changed for one target; the old /monitoring status if it changed, None otherwise.

    Raises Conflict when the target or /monitoring changed since the snapshot.
    """
    monitoring_key = keys.monitoring(target.rtype, target.rid)
    current = snapshot.monitoring.get(monitoring_key)
    version = snapshot.configs[target.rtype, target.rid].version
    record, document = planned_writes(target, status, address, current and current.value, version)
    guards = [Compare.unchanged(target.key, target.revision)]
    puts = {target.key: record} if record else {}
    old = None
    if document and current is not None:  # a /monitoring document is only planned over an existing one
        guards.append(Compare.unchanged(monitoring_key, current.mod_revision))
        puts[monitoring_key] = document
        old = str(current.value.get(target.field))
    if puts and not store.commit(guards, puts):
        raise Conflict(target.key)
    return old


def poll_device(store: Store, probe: SnmpProbe, device: Device, snapshot: Snapshot) -> tuple[Reading, int, int]:
    """Read one device and publish its targets: (reading, changes, conflicts)."""
    reading = read_device(probe, device)
    changes = conflicts = 0
    for target in device.targets:
        status = status_of(target, reading, snapshot.uptimes.get(device.address))
        try:
            old = publish(store, target, status, device.address, snapshot)
        except Conflict:
            conflicts += 1
            continue
        if old is not None:
            changes += 1
            log.info("%s %s at %s: %s -> %s", target.rtype, target.rid, device.address, old, status)
    return reading, changes, conflicts


def poll(store: Store, probe: SnmpProbe, workers: int = WORKERS,
         keep_alive: Callable[[], None] = lambda: None) -> Summary:
    """One cycle over every target; ``keep_alive`` is called as devices finish (the lock's refresh)."""
    started, clock = time.time(), time.monotonic()
    snapshot = read_snapshot(store)
    devices, skipped = group(snapshot.targets, snapshot.configs)
    summary = Summary(devices=len(devices), targets=len(snapshot.targets) - skipped, skipped=skipped,
                      snapshot_seconds=round(time.monotonic() - clock, 3))
    uptimes: dict[str, int] = {}
    with ThreadPoolExecutor(max(1, min(workers, len(devices))), thread_name_prefix="poll") as pool:
        futures = {pool.submit(poll_device, store, probe, device, snapshot): device for device in devices}
        for future in as_completed(futures):
            reading, changes, conflicts = future.result()
            summary.snmp_calls += reading.calls
            summary.changes += changes
            summary.conflicts += conflicts
            summary.unreachable += not reading.answered
            if reading.uptime is not None:
                uptimes[futures[future].address] = reading.uptime
            keep_alive()
    summary.seconds = round(time.monotonic() - clock, 3)
    store.put(LAST_CYCLE, {"started": started, "by": identity(), "summary": vars(summary), "uptimes": uptimes})
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


def guarded_poll(store: Store, probe: SnmpProbe, interval: float, workers: int = WORKERS) -> Summary | None:
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
        return poll(store, probe, workers, keep_alive)
