"""The SNMP probe: port status by ifName, device liveness by sysUpTime.

SNMP v2c over easysnmp with numeric OIDs only (Debian ships no IF-MIB, so
symbolic names cannot resolve). Every request is bounded by the configured
timeout and retry count, and every easysnmp failure becomes SnmpUnreachable,
whose message names the device, never the community.

One port's status (a registration) costs one GET once the device's ifName ->
ifIndex map is known (esiprov.ifindex): sysUpTime.0, ifName.<i> and
ifOperStatus.<i> in one request. The device is walked again only when the map
has no such name, the GET's ifName differs (interfaces renumbered) or sysUpTime
went backwards (a restart). Every walk, the poller's included, refreshes the map.
"""
from __future__ import annotations

import ctypes
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import easysnmp
import easysnmp.interface

from esiprov.ifindex import PROCESS_INDEX, DeviceKey, InterfaceIndex, restarted
from esiprov.settings import Settings

UP, DOWN, FAIL = "UP", "DOWN", "FAIL"

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.8"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
#: rows per GETBULK, both columns in each: a switch of up to 63 ports answers a poll (sysUpTime, every
#: ifName and ifOperStatus) in one request, about 3.3 KB; an agent that cannot send that much sends
#: fewer rows, and the walk goes on from there
WALK_ROWS = 64
_OPER_UP = "1"  # ifOperStatus up(1); every other value (down, testing, dormant...) is DOWN
_TICKS_PER_SECOND = 100


_NETSNMP = ctypes.CDLL(easysnmp.interface.__file__)
_DS_LIBRARY_ID, _DS_LIB_OID_OUTPUT_FORMAT, _OID_OUTPUT_NUMERIC = 0, 4, 4


def _numeric_oids_everywhere() -> None:
    """Make numeric OID output net-snmp's process-wide default, so concurrent walks cannot crash.

    easysnmp sets this library-global format for each call and restores the
    previous value when the call ends, with the GIL released in between (while
    it waits for the agent). With two walks at once, one thread's restore lands
    in the middle of the other's parse, which then reads a NULL label and
    segfaults. When numeric already is the default, every restore is a no-op.
    """
    _NETSNMP.netsnmp_ds_set_int(_DS_LIBRARY_ID, _DS_LIB_OID_OUTPUT_FORMAT, _OID_OUTPUT_NUMERIC)


_numeric_oids_everywhere()


class SnmpUnreachable(Exception):
    """The device gave no usable SNMP answer (timeout, refused, or an error PDU)."""


@dataclass(frozen=True)
class Row:
    """One interface as a single GET answers it; None where the agent has no such instance."""

    uptime: int | None
    name: str | None
    status: str


class SnmpProbe:
    """Reads of one device per call; safe to share between worker threads.

    Interface maps go to ``interfaces`` (the process-wide index unless a test gives its own).
    """

    def __init__(self, settings: Settings, retries: int = 1, interfaces: InterfaceIndex | None = None) -> None:
        # Settings has no retry count: one retry keeps the worst case at 2 * snmp_timeout.
        self.port = settings.snmp_port
        self.timeout = settings.snmp_timeout
        self.retries = retries
        self.interfaces = PROCESS_INDEX if interfaces is None else interfaces
        self._settings = settings

    @property
    def max_wait(self) -> float:
        """Upper bound for one unanswered request: timeout * (retries + 1)."""
        return self.timeout * (self.retries + 1)

    def port_statuses(self, device_ip: str, community_token: str) -> dict[str, str]:
        """{ifName: UP|DOWN} for every interface, from one bulk walk of ifName and ifOperStatus."""
        return self._walk(self._device(device_ip, community_token))

    def uptime_and_ports(self, device_ip: str, community_token: str) -> tuple[int, dict[str, str]]:
        """sysUpTime and {ifName: UP|DOWN}, from one walk whose first request asks sysUpTime too: a
        poll of a switch of up to 63 ports is one request, where a GET and a walk took two or more."""
        device = self._device(device_ip, community_token)
        uptime, names, states = self._columns(device, with_uptime=True)
        if uptime is None:
            raise SnmpUnreachable(f"{device_ip}:{self.port} has no sysUpTime")
        return uptime, self._statuses(device, names, states)

    def port_status(self, device_ip: str, community_token: str, port_name: str) -> str:
        """UP or DOWN for the interface named ``port_name``; FAIL when it is unknown or unanswered.

        One GET when the device's map knows the name and the answer confirms it, else one walk.
        """
        device = self._device(device_ip, community_token)
        try:
            status = self._cached_status(device, port_name)
            return status if status is not None else self._walk(device).get(port_name, FAIL)
        except SnmpUnreachable:
            return FAIL

    def interface_row(self, device_ip: str, community_token: str, if_index: str) -> Row:
        """sysUpTime.0, ifName.<if_index> and ifOperStatus.<if_index> in one GET."""
        return self._row(self._device(device_ip, community_token), if_index)

    def uptime(self, device_ip: str, community_token: str) -> int:
        """sysUpTime in hundredths of a second; a poller can compare it across cycles."""
        with self._answer(device_ip):
            var = self._session(self._device(device_ip, community_token)).get(SYS_UPTIME)
        if var.snmp_type != "TICKS":
            raise SnmpUnreachable(f"{device_ip}:{self.port} has no sysUpTime ({var.snmp_type})")
        return int(var.value)

    def device_status(self, device_ip: str, community_token: str) -> str:
        """UP when sysUpTime answers, else FAIL.

        One read, no in-call advance check: sleeping ~1 s per device would hold a
        worker slot; a caller that keeps the previous uptime() can detect a stuck
        or rebooted agent between poll cycles instead.
        """
        try:
            self.uptime(device_ip, community_token)
        except SnmpUnreachable:
            return FAIL
        return UP

    def _cached_status(self, device: DeviceKey, port_name: str) -> str | None:
        """The port's status from one GET at its remembered ifIndex; None when only a walk can tell."""
        known = self.interfaces.get(device)
        if known is None or (index := known.indexes.get(port_name)) is None:
            return None
        row = self._row(device, index)
        self.interfaces.note_uptime(device, row.uptime)
        slack = int(self.max_wait * _TICKS_PER_SECOND)
        if row.name != port_name or restarted(known.uptime, row.uptime, slack):
            return None
        return row.status

    def _row(self, device: DeviceKey, if_index: str) -> Row:
        """One request for the three varbinds: the agent looks up three instances instead of walking."""
        with self._answer(device.ip):
            uptime, name, oper = self._session(device).get(
                [SYS_UPTIME, f"{IF_NAME}.{if_index}", f"{IF_OPER_STATUS}.{if_index}"])
        return Row(int(uptime.value) if uptime.snmp_type == "TICKS" else None,
                   name.value if name.snmp_type == "OCTETSTR" else None,
                   UP if oper.value == _OPER_UP else DOWN)

    def _walk(self, device: DeviceKey) -> dict[str, str]:
        """{ifName: UP|DOWN} from one bulk walk, whose ifName -> ifIndex map is remembered."""
        _, names, states = self._columns(device, with_uptime=False)
        return self._statuses(device, names, states)

    def _statuses(self, device: DeviceKey, names: dict[str, str], states: dict[str, str]) -> dict[str, str]:
        """{ifName: UP|DOWN} of walked columns ({ifIndex: value}); the ifName -> ifIndex map is remembered."""
        # Both built in ifIndex order: with a repeated ifName, the map and the statuses pick the same row.
        self.interfaces.remember(device, {name: index for index, name in names.items()})
        return {name: UP if states.get(index) == _OPER_UP else DOWN for index, name in names.items()}

    def _columns(self, device: DeviceKey, with_uptime: bool) -> tuple[int | None, dict[str, str], dict[str, str]]:
        """(sysUpTime if asked, {ifIndex: ifName}, {ifIndex: ifOperStatus}) from GETBULKs that walk both
        columns side by side, WALK_ROWS rows a request, sysUpTime a non-repeater of the first."""
        columns: dict[str, dict[str, str]] = {IF_NAME: {}, IF_OPER_STATUS: {}}
        after = {column: column for column in columns}  # the OID each unfinished column goes on after
        first = [SYS_UPTIME.removesuffix(".0")] if with_uptime else []  # a non-repeater is a GETNEXT
        uptime = None
        session = self._session(device)
        with self._answer(device.ip):
            while after:
                walking = list(after)
                answer = session.get_bulk(first + [after[column] for column in walking],
                                          non_repeaters=len(first), max_repetitions=WALK_ROWS)
                if first:
                    found = answer[0]
                    at = f"{found.oid.lstrip('.')}.{found.oid_index}"
                    uptime = int(found.value) if found.snmp_type == "TICKS" and at == SYS_UPTIME else None
                    answer, first = answer[1:], []
                if not answer:
                    break
                for n, var in enumerate(answer):  # row after row, one varbind per column walked
                    column = walking[n % len(walking)]
                    if column in after and not _next_row(columns[column], column, var):
                        del after[column]
                    elif column in after:
                        after[column] = f"{column}.{var.oid_index}"
        return uptime, columns[IF_NAME], columns[IF_OPER_STATUS]

    def _device(self, device_ip: str, community_token: str) -> DeviceKey:
        return DeviceKey(device_ip, self.port, self._settings.community(community_token))

    def _session(self, device: DeviceKey) -> easysnmp.Session:
        return easysnmp.Session(
            hostname=device.ip, remote_port=device.port, version=2, community=device.community,
            timeout=self.timeout, retries=self.retries, use_numeric=True)

    @contextmanager
    def _answer(self, device_ip: str) -> Iterator[None]:
        """Map every easysnmp failure to SnmpUnreachable."""
        try:
            yield
        except easysnmp.EasySNMPError as exc:
            # str(exc) is net-snmp's text; keep only the type so no session detail leaks.
            raise SnmpUnreachable(
                f"no SNMP answer from {device_ip}:{self.port} ({type(exc).__name__})") from None


def _next_row(found: dict[str, str], column: str, var: easysnmp.SNMPVariable) -> bool:
    """Add a walked varbind to its column's rows; False when the column has ended (the agent went past
    it, or has nothing more) or repeats itself (an agent that does not move on must not loop the walk)."""
    if var.oid.lstrip(".") != column or var.snmp_type in ("ENDOFMIBVIEW", "NOSUCHOBJECT", "NOSUCHINSTANCE") \
            or var.oid_index in found:
        return False
    found[var.oid_index] = var.value
    return True
