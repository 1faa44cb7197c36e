"""What this process remembers of each device's interface numbering: ifName -> ifIndex.

Why: a port registration reads one port's status. Without its ifIndex that
takes a bulk walk of ifName and ifOperStatus over every interface of the switch
(a hundred varbinds the agent must assemble, per port); with the ifIndex known,
one GET of ``ifName.<i>`` and ``ifOperStatus.<i>`` answers, and the ifName in
that answer proves the index still names the port. SnmpProbe decides when to
walk; this module only keeps what the walks found. Choices, and why:

- Per process and bounded: an LRU of at most ``DEVICES`` devices. An evicted
  device costs one walk again, nothing worse.
- Keyed by address, SNMP port and community (the real one: two tokens naming one
  community share an entry, a changed community starts afresh), so devices,
  ports and communities (which may see different views) never mix. The
  community is left out of the key's repr, so a logged key cannot leak it.
- Safe for a thread pool: one lock around the LRU, and each entry is an
  immutable snapshot replaced whole, so a reader never sees half a map.
  Concurrent first reads of one device may each walk it (at most one walk per
  thread); a single-flight walk would make a dead device's callers time out one
  after another instead of together.
- sysUpTime seen by the last GET is kept per device, so a restart (the clock
  went backwards) can force a fresh walk. Only GETs set it and only walks set
  the map; a walk keeps the uptime it finds.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Mapping

#: devices remembered per process; a 48-port map is a few kB
DEVICES = 1024


@dataclass(frozen=True)
class DeviceKey:
    """One device as SnmpProbe reaches it: address, UDP port, community."""

    ip: str
    port: int
    community: str = field(repr=False)


@dataclass(frozen=True)
class Interfaces:
    """A device's ifName -> ifIndex from its last walk, and its sysUpTime at the last GET."""

    indexes: Mapping[str, str]
    uptime: int | None = None


def restarted(previous: int | None, now: int | None, slack: int) -> bool:
    """True when sysUpTime went back by more than ``slack`` ticks since the last reading.

    The slack absorbs GETs answered out of order by concurrent threads (they
    differ by at most the time a request can be in flight). A counter wrap
    (after 497 days) also counts: it costs one walk.
    """
    return previous is not None and now is not None and now < previous - slack


class InterfaceIndex:
    """A thread-safe LRU of DeviceKey -> Interfaces."""

    def __init__(self, capacity: int = DEVICES) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._devices: OrderedDict[DeviceKey, Interfaces] = OrderedDict()

    def get(self, key: DeviceKey) -> Interfaces | None:
        """What is known of ``key`` (and mark it recently used)."""
        with self._lock:
            found = self._devices.get(key)
            if found is not None:
                self._devices.move_to_end(key)
            return found

    def remember(self, key: DeviceKey, indexes: Mapping[str, str]) -> None:
        """Store a fresh walk's map, keeping the device's last uptime; evict the least used beyond capacity."""
        with self._lock:
            known = self._devices.get(key)
            self._devices[key] = Interfaces(dict(indexes), known.uptime if known else None)
            self._devices.move_to_end(key)
            while len(self._devices) > self.capacity:
                self._devices.popitem(last=False)

    def note_uptime(self, key: DeviceKey, uptime: int | None) -> None:
        """Keep the sysUpTime a GET just read (a device not remembered stays unremembered)."""
        with self._lock:
            known = self._devices.get(key)
            if known is not None and uptime is not None:
                self._devices[key] = replace(known, uptime=uptime)

    def __len__(self) -> int:
        with self._lock:
            return len(self._devices)


#: the one index of this process: every SnmpProbe uses it unless given another (tests)
PROCESS_INDEX = InterfaceIndex()
