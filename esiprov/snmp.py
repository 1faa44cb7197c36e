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

A walk reads ifName, ifOperStatus and the 64-bit octet counters (ifHCInOctets,
ifHCOutOctets) side by side: every GETBULK asks each column for its next rows
(``walk_columns``), so the four columns cost the requests one would, and the
poller gets traffic for the TSDB at no extra request per port or device.
(easysnmp's bulkwalk walks its columns one after another: a request per column.)
"""
from __future__ import annotations

import ctypes
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import easysnmp
import easysnmp.interface

from esiprov.ifindex import PROCESS_INDEX, DeviceKey, InterfaceIndex, restarted
from esiprov.settings import Settings

UP, DOWN, FAIL = "UP", "DOWN", "FAIL"

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
#: what a GETNEXT asks to be answered sysUpTime.0
SYS_UPTIME_COLUMN = SYS_UPTIME.removesuffix(".0")
IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.8"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
IF_HC_IN_OCTETS = "1.3.6.1.2.1.31.1.1.1.6"
IF_HC_OUT_OCTETS = "1.3.6.1.2.1.31.1.1.1.10"
#: the counter columns a walk reads, by traffic direction (the TSDB's ``direction`` tag)
OCTET_COLUMNS = {IF_HC_IN_OCTETS: "in", IF_HC_OUT_OCTETS: "out"}
#: the columns every port walk reads (the counters join them when a TSDB takes them), side by side
STATUS_COLUMNS = [IF_NAME, IF_OPER_STATUS]
#: rows per GETBULK: a 48-port switch answers every column in 2 round trips (the rows, then their end)
WALK_ROWS = 50
#: the varbind types that say a column has no further instance
_END_TYPES = frozenset({"ENDOFMIBVIEW", "NOSUCHOBJECT", "NOSUCHINSTANCE"})
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


@dataclass(frozen=True)
class PortWalk:
    """What one walk of a device's interface table found, by ifName.

    ``octets`` holds, per interface, the counters the agent answered as Counter64
    (``{"in": n, "out": n}``); an agent without the ifHC columns leaves it empty.
    """

    statuses: Mapping[str, str]
    octets: Mapping[str, Mapping[str, int]]
    #: sysUpTime, when the walk was asked for it (None: not asked, or not answered)
    uptime: int | None = None


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

    def port_statuses(self, device_ip: str, community_token: str) -> Mapping[str, str]:
        """{ifName: UP|DOWN} for every interface, from one bulk walk of ifName and ifOperStatus."""
        return self.port_walk(device_ip, community_token, counters=False).statuses

    def port_walk(self, device_ip: str, community_token: str, counters: bool = True,
                  uptime: bool = False) -> PortWalk:
        """Every interface's status, and its octet counters unless told not to, from one bulk walk; with
        ``uptime``, sysUpTime rides in the walk's first request (a non-repeater), costing no request of
        its own. Counters double the varbinds: a poll asks them only when a TSDB takes them."""
        return self._walk(self._device(device_ip, community_token), counters, uptime)

    def port_status(self, device_ip: str, community_token: str, port_name: str) -> str:
        """UP or DOWN for the interface named ``port_name``; FAIL when it is unknown or unanswered.

        One GET when the device's map knows the name and the answer confirms it, else one walk.
        """
        device = self._device(device_ip, community_token)
        try:
            status = self._cached_status(device, port_name)
            return status if status is not None else self._walk(device, counters=False).statuses.get(port_name, FAIL)
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

    def _walk(self, device: DeviceKey, counters: bool = True, uptime: bool = False) -> PortWalk:
        """The status columns (and the counters) from one bulk walk, whose ifName -> ifIndex map is remembered."""
        columns_asked = STATUS_COLUMNS + (list(OCTET_COLUMNS) if counters else [])
        with self._answer(device.ip):
            walked, first = walk_columns(self._session(device), columns_asked, WALK_ROWS,
                                         [SYS_UPTIME_COLUMN] if uptime else [])
        # a counter is kept only as the agent types it: a Counter32 or an opaque value is no reading
        columns = {column: {index: var.value for index, var in rows.items()
                            if column not in OCTET_COLUMNS or var.snmp_type == "COUNTER64"}
                   for column, rows in walked.items()}
        names, states = columns[IF_NAME], columns[IF_OPER_STATUS]
        # All built in ifIndex order: with a repeated ifName, the map and the statuses pick the same row.
        self.interfaces.remember(device, {name: index for index, name in names.items()})
        octets = {name: found for index, name in names.items() if (found := _octets(columns, index))}
        ticks = next((int(var.value) for var in first if _is(var, SYS_UPTIME) and var.snmp_type == "TICKS"), None)
        return PortWalk({name: UP if states.get(index) == _OPER_UP else DOWN for index, name in names.items()},
                        octets, ticks)

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


def walk_columns(session: easysnmp.Session, columns: Sequence[str], rows: int,
                 first: Sequence[str] = ()) -> tuple[dict[str, dict[str, Any]], list[Any]]:
    """Walk table columns side by side: ({column: {index: varbind}}, each in the agent's order; the
    answers to ``first``, GETNEXTs that ride in the first request as its non-repeaters).

    Every GETBULK asks each column not yet ended for its next ``rows`` rows. The
    answer is row-major (repetition r, column i at position r * n + i), possibly
    cut short by the agent; a column ends at its first varbind outside it, at
    endOfMibView, or at an index it already has (an agent that does not advance).
    An answer that moves no column on ends the walk rather than asking forever.
    """
    found: dict[str, dict[str, Any]] = {column: {} for column in columns}
    after = {column: column for column in columns}
    going = list(columns)
    asked, nexts = list(first), []
    while going:
        answer = session.get_bulk(asked + [after[column] for column in going], non_repeaters=len(asked),
                                  max_repetitions=rows)
        nexts += answer[:len(asked)]
        answer, asked = answer[len(asked):], []
        ended: set[str] = set()
        moved = False
        for position, var in enumerate(answer):
            column = going[position % len(going)]
            if column in ended:
                continue
            if var.oid.lstrip(".") != column or var.snmp_type in _END_TYPES or var.oid_index in found[column]:
                ended.add(column)
                continue
            found[column][var.oid_index] = var
            after[column] = f"{column}.{var.oid_index}"
            moved = True
        if not moved and not ended:
            break
        going = [column for column in going if column not in ended]
    return found, nexts


def _is(var: Any, oid: str) -> bool:
    """Whether a varbind is the instance ``oid``."""
    return f"{var.oid.lstrip('.')}.{var.oid_index}" == oid


def _octets(columns: Mapping[str, Mapping[str, str]], index: str) -> dict[str, int]:
    """The counters the walk found for interface ``index``, by direction."""
    return {direction: int(columns[oid][index]) for oid, direction in OCTET_COLUMNS.items()
            if index in columns.get(oid, {})}
