"""Emulated switches: one snmpsim process, one SNMP engine per switch on its own 127.0.x.y.

Every switch listens on the same UDP port at its own loopback address and is
read with its community, as real switches would be. Choices, and why:

- One ``--v3-engine-id`` group per switch (its own ``--data-dir`` and
  ``--agent-udpv4-endpoint``). snmpsim's documented per-address layout
  (``<community>/<transport-id>.snmprec``) is dead in snmpsim 1.2.2 with
  pysnmp 7: its ``handleMgmtOperation`` overrides are never called (pysnmp
  renamed the hook), so switches sharing a community could not differ.
- Port flips rewrite the switch's .snmprec instead of using the writecache
  variation: writecache keys its values by OID alone, process-wide, so two
  switches with the same ifIndex would flip together. snmpsim re-reads a data
  file when its mtime changes, in whole seconds, so each write moves the mtime
  to a new second.
- ``stop_answering`` removes the data file: snmpsim then fails inside the
  request (a traceback in its log) and sends nothing, like a dead agent,
  while the other switches keep answering. ``resume`` writes it back. Limit: snmpsim keeps
  at most 32 data files open; with more than 32 switches a removed file upsets its
  open-file queue and switches past it stop answering, so a test that silences a switch
  keeps to 32 (the monitoring bench registers an address with no agent instead).
- sysUpTime uses the numeric variation (100 ticks/s since the simulator
  started), so it advances like a real agent's. ``set_uptime`` pins it to a
  fixed value instead (a restart, as a reader sees one: the clock went back);
  the variation's clock cannot be reset, its settings are read once per file.
- ``renumber`` moves a switch's interfaces to other ifIndex values, as a
  reboot or a line-card change may, with the same names.
- Every interface (port or unit) has 64-bit octet counters (ifHCInOctets,
  ifHCOutOctets), fixed values above 2^32 (a 32-bit reading would be wrong) that
  differ per switch, interface and direction, so a test can tell exactly which
  reading landed where; ``set_octets`` moves them, as traffic would.
"""
from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from esiprov.devenv.process import LocalServer, ServiceError, free_port, wait_until
from esiprov.settings import Settings
from esiprov.snmp import (DOWN, FAIL, IF_HC_IN_OCTETS, IF_HC_OUT_OCTETS, IF_NAME, IF_OPER_STATUS, SYS_UPTIME, UP,
                          SnmpProbe)

FIRST_IF_INDEX = 501
SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
IF_NUMBER = "1.3.6.1.2.1.2.1.0"
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
#: the first interface's ifHCInOctets; past 2^32, as a busy 10G port's counter soon is
FIRST_OCTETS = 2 ** 32 + 1
#: the snmprec tag of a Counter64 value
COUNTER64 = "70"


@dataclass(frozen=True)
class Switch:
    """One emulated switch: loopback address, read community, interface names (ifName).

    ``ports`` are its physical ports; ``units`` logical units on them (``xe-0/0/1.1003``, a
    VLAN unit of a logical port), which the agent lists as interfaces of their own.
    """

    ip: str
    community: str
    ports: tuple[str, ...]
    name: str = ""
    units: tuple[str, ...] = ()

    @property
    def interfaces(self) -> tuple[str, ...]:
        return self.ports + self.units

    @property
    def sys_name(self) -> str:
        return self.name or f"sw-{self.ip}"


class Switches(LocalServer):
    """Run the switches in one snmpsim process; flip ports and silence agents at runtime."""

    def __init__(self, switches: Iterable[Switch], log_dir: Path | None = None, port: int = 0) -> None:
        """``port``: the UDP port every switch listens on (0: a free one), so that switches split over
        several snmpsim processes (at their own addresses) can share it, as real switches do."""
        super().__init__(log_dir)
        self.switches = {switch.ip: switch for switch in switches}
        self.port = port
        self._up = {(s.ip, name): True for s in self.switches.values() for name in s.interfaces}
        self._octets = {(s.ip, name): _initial_octets(n, p) for n, s in enumerate(self.switches.values())
                        for p, name in enumerate(s.interfaces)}
        self._first_index = {ip: FIRST_IF_INDEX for ip in self.switches}
        self._pinned_uptime: dict[str, int] = {}
        self._silent: set[str] = set()
        self._mtimes: dict[str, int] = {}

    def start(self, timeout: float = 30.0) -> "Switches":
        """Write the data files, start snmpsim, wait until every switch answers sysUpTime."""
        responder = Path(sys.executable).with_name("snmpsim-command-responder")
        if not responder.exists():
            raise ServiceError(f"{responder} not found: install the test extra (pip install -e '.[test]')")
        self.workdir = Path(tempfile.mkdtemp(prefix="esiprov-switches-"))
        self.port = self.port or free_port("127.0.0.1", socket.SOCK_DGRAM)
        argv = [str(responder), f"--cache-dir={self.workdir / 'cache'}", "--log-level=error"]
        for ip in self.switches:
            self._write(ip)
            argv += ["--v3-engine-id=auto", f"--data-dir={self.workdir / ip}",
                     f"--agent-udpv4-endpoint={ip}:{self.port}"]
        self._launch("snmpsim", argv, lambda: all(self._answers(ip) for ip in self.switches),
                     timeout, env={"SNMPSIM_ALLOW_ROOT": "true"})
        return self

    def set_port(self, ip: str, name: str, up: bool) -> None:
        """Set ifOperStatus of interface ``name`` (a port or a unit) and wait until a GET returns the new value."""
        if (ip, name) not in self._up:
            raise KeyError(f"switch {ip} has no interface {name!r}")
        self._up[ip, name] = up
        expected = UP if up else DOWN
        self._rewrite(ip, lambda: self._probe().port_status(ip, self.switches[ip].community, name) == expected,
                      f"port {name} of {ip} {expected}")

    def octets(self, ip: str, name: str) -> dict[str, int]:
        """What interface ``name`` (a port or a unit) counts now: ``{"in": ifHCInOctets, "out": ifHCOutOctets}``."""
        received, sent = self._octets[ip, name]
        return {"in": received, "out": sent}

    def set_octets(self, ip: str, name: str, received: int, sent: int) -> None:
        """Serve ``received`` and ``sent`` as the interface's ifHCIn/OutOctets; wait until a walk reads them."""
        if (ip, name) not in self._octets:
            raise KeyError(f"switch {ip} has no interface {name!r}")
        self._octets[ip, name] = (received, sent)
        self._rewrite(ip, lambda: self._probe().port_walk(ip, self.switches[ip].community).octets.get(name)
                      == self.octets(ip, name), f"octets of {name} of {ip}")

    def renumber(self, ip: str, first_index: int) -> None:
        """Give the switch's interfaces the ifIndex values ``first_index``, ``first_index + 1``, ..."""
        self._first_index[ip] = first_index
        switch = self.switches[ip]
        self._rewrite(ip, lambda: self._probe().interface_row(ip, switch.community, str(first_index)).name
                      == switch.ports[0], f"{ip} renumbered from {first_index}")

    def set_uptime(self, ip: str, ticks: int | None) -> None:
        """Serve sysUpTime as the fixed ``ticks`` from now on, or (None) the running clock again."""
        pinned = self._pinned_uptime.pop(ip, None)
        if ticks is not None:
            self._pinned_uptime[ip] = ticks
        community = self.switches[ip].community

        def served() -> bool:
            now = self._probe().uptime(ip, community)
            return now == ticks if ticks is not None else now != pinned
        self._rewrite(ip, served, f"{ip} sysUpTime {ticks}")

    def stop_answering(self, ip: str) -> None:
        """Make the switch at ``ip`` send no replies at all until resume()."""
        self._silent.add(ip)
        self._data_file(ip).unlink(missing_ok=True)
        wait_until(lambda: not self._answers(ip), 5.0, f"{ip} silent")

    def resume(self, ip: str) -> None:
        """Let the switch at ``ip`` answer again, with its current port states."""
        self._silent.discard(ip)
        self._write(ip)
        wait_until(lambda: self._answers(ip), 5.0, f"{ip} answering")

    def _rewrite(self, ip: str, ready: Callable[[], bool], what: str) -> None:
        """Write the switch's data file anew and wait until ``ready()`` sees the change; a silenced
        switch keeps no file (resume() writes the current state)."""
        if ip in self._silent:
            return
        self._write(ip)
        wait_until(ready, 5.0, what)

    def _answers(self, ip: str) -> bool:
        return self._probe().device_status(ip, self.switches[ip].community) != FAIL

    def _probe(self) -> SnmpProbe:
        return SnmpProbe(Settings(snmp_port=self.port, snmp_timeout=0.3), retries=0)

    def _data_file(self, ip: str) -> Path:
        if self.workdir is None:
            raise ServiceError("the switches are not started")
        return self.workdir / ip / f"{self.switches[ip].community}.snmprec"

    def _write(self, ip: str) -> None:
        """Replace the switch's .snmprec atomically, with an mtime in a new second."""
        path = self._data_file(ip)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self._records(self.switches[ip]))
        mtime = max(int(time.time()), self._mtimes.get(ip, 0) + 1)
        os.utime(tmp, (mtime, mtime))
        os.replace(tmp, path)
        self._mtimes[ip] = mtime

    def _records(self, switch: Switch) -> str:
        """snmprec lines (OID|tag|value), sorted numerically by OID as snmpsim requires."""
        pinned = self._pinned_uptime.get(switch.ip)
        uptime = ("67", str(pinned)) if pinned is not None else ("67:numeric", "rate=100")
        rows = [(SYS_DESCR, "4", "esiprov emulated switch (snmpsim)"),
                (SYS_UPTIME, *uptime),
                (SYS_NAME, "4", switch.sys_name),
                (IF_NUMBER, "2", str(len(switch.interfaces)))]
        for index, name in enumerate(switch.interfaces, self._first_index[switch.ip]):
            received, sent = self._octets[switch.ip, name]
            rows += [(f"{IF_INDEX}.{index}", "2", str(index)),
                     (f"{IF_DESCR}.{index}", "4", name),
                     (f"{IF_OPER_STATUS}.{index}", "2", "1" if self._up[switch.ip, name] else "2"),
                     (f"{IF_NAME}.{index}", "4", name),
                     (f"{IF_HC_IN_OCTETS}.{index}", COUNTER64, str(received)),
                     (f"{IF_HC_OUT_OCTETS}.{index}", COUNTER64, str(sent))]
        rows.sort(key=lambda row: tuple(int(part) for part in row[0].split(".")))
        return "".join(f"{oid}|{tag}|{value}\n" for oid, tag, value in rows)


def _initial_octets(switch: int, port: int) -> tuple[int, int]:
    """(ifHCInOctets, ifHCOutOctets) a port starts with: distinct per switch, port and direction."""
    received = FIRST_OCTETS + switch * 1_000_000 + port * 1_000
    return received, received + 500
