"""The SNMP probe: port status by ifName, device liveness by sysUpTime.

SNMP v2c over easysnmp with numeric OIDs only (Debian ships no IF-MIB, so
symbolic names cannot resolve). Every request is bounded by the configured
timeout and retry count, and every easysnmp failure becomes SnmpUnreachable,
whose message names the device, never the community.
"""
from __future__ import annotations

import ctypes
from contextlib import contextmanager
from typing import Iterator

import easysnmp
import easysnmp.interface

from esiprov.settings import Settings

UP, DOWN, FAIL = "UP", "DOWN", "FAIL"

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.8"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
#: rows per GETBULK: a 48-port switch answers in 2 round trips instead of 6 per column
WALK_ROWS = 50
_OPER_UP = "1"  # ifOperStatus up(1); every other value (down, testing, dormant...) is DOWN


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


class SnmpProbe:
    """Stateless reads of one device per call; safe to share between worker threads."""

    def __init__(self, settings: Settings, retries: int = 1) -> None:
        # Settings has no retry count: one retry keeps the worst case at 2 * snmp_timeout.
        self.port = settings.snmp_port
        self.timeout = settings.snmp_timeout
        self.retries = retries
        self._settings = settings

    @property
    def max_wait(self) -> float:
        """Upper bound for one unanswered request: timeout * (retries + 1)."""
        return self.timeout * (self.retries + 1)

    def port_statuses(self, device_ip: str, community_token: str) -> dict[str, str]:
        """{ifName: UP|DOWN} for every interface, from one bulk walk of ifName and ifOperStatus."""
        with self._answer(device_ip):
            session = self._session(device_ip, community_token)
            rows = session.bulkwalk([IF_NAME, IF_OPER_STATUS], max_repetitions=WALK_ROWS)
        names: dict[str, str] = {}
        states: dict[str, str] = {}
        for var in rows:
            column = names if var.oid.lstrip(".") == IF_NAME else states
            column[var.oid_index] = var.value
        return {name: UP if states.get(index) == _OPER_UP else DOWN
                for index, name in names.items()}

    def port_status(self, device_ip: str, community_token: str, port_name: str) -> str:
        """UP or DOWN for the interface named ``port_name``; FAIL when it is unknown or unanswered."""
        try:
            return self.port_statuses(device_ip, community_token).get(port_name, FAIL)
        except SnmpUnreachable:
            return FAIL

    def uptime(self, device_ip: str, community_token: str) -> int:
        """sysUpTime in hundredths of a second; a poller can compare it across cycles."""
        with self._answer(device_ip):
            var = self._session(device_ip, community_token).get(SYS_UPTIME)
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

    def _session(self, device_ip: str, community_token: str) -> easysnmp.Session:
        return easysnmp.Session(
            hostname=device_ip, remote_port=self.port, version=2,
            community=self._settings.community(community_token),
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
