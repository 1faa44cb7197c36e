"""Monitoring target kinds: what each kind of target asks its device, and how its status follows.

A monitoring template renders a target whose ``type`` names its kind (``switch``,
``physical_port``, ``snmp_ports``), with the kind's address field and, for an interface, its
name field. monitoring_worker probes a new target once (``Kind.register``); the
poller groups targets per device, asks each device once for what its targets'
kinds read (``reads``: sysUpTime, or the interface walk) and derives every
target's status from that one reading (``Kind.status``). A new kind is one
entry in ``KINDS``; the /monitoring field it feeds (``switch``, ``port``,
``router`` ...) comes from its template, not from here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from esiprov.snmp import DOWN, FAIL, UP, SnmpProbe

#: what a kind reads on its device: sysUpTime (one GET), or ifName + ifOperStatus (one walk)
UPTIME, INTERFACES = "uptime", "interfaces"
#: the resource type of devices and their address field, as the shipped templates map them: a
#: target's device is found through these, so a device whose address changes takes its targets along
DEVICE_TYPE, DEVICE_ADDRESS = "ese_device", "management_ip_address"


@dataclass(frozen=True)
class Reading:
    """A device's answers in one poll cycle: None where it was not asked or did not answer."""

    uptime: int | None = None
    ports: Mapping[str, str] | None = None
    calls: int = 0
    #: octet counters by ifName and direction (``in``, ``out``), from the same walk as ``ports``
    octets: Mapping[str, Mapping[str, int]] | None = None
    #: when the walk answered, in seconds since the epoch
    read_at: int = 0

    @property
    def answered(self) -> bool:
        return self.uptime is not None or self.ports is not None


def port_status(ports: Mapping[str, str] | None, name: str) -> str:
    """UP/DOWN as walked; FAIL when the device did not answer or has no interface of that name."""
    return FAIL if ports is None else ports.get(name, FAIL)


def switch_status(uptime: int | None, previous: int | None) -> str:
    """FAIL without an answer, DOWN when sysUpTime stood still since the last cycle (a hung agent), else UP."""
    if uptime is None:
        return FAIL
    return DOWN if uptime == previous else UP


@dataclass(frozen=True)
class Kind:
    """One kind of monitoring target."""

    #: the target's ``type``
    name: str
    #: the target field holding the address its device is polled at
    address_field: str
    #: UPTIME or INTERFACES
    reads: str
    #: the target field naming the interface (INTERFACES kinds)
    interface_field: str = ""
    #: the config field of the target's resource naming its device (a DEVICE_TYPE resource); empty
    #: when the resource is the device itself
    device_ref: str = ""
    #: whether the poller follows the device's current address; if not, it polls the address the
    #: template recorded (a resource several hops from its device: its next version re-registers it)
    follows_device: bool = True
    #: whether the interface's octet counters, read by the same walk, go to the TSDB (esiprov.tsdb)
    traffic: bool = False

    def address(self, target: Mapping[str, Any]) -> str:
        return str(target.get(self.address_field, "") or "")

    def interface(self, target: Mapping[str, Any]) -> str:
        return str(target.get(self.interface_field, "")) if self.interface_field else ""

    def register(self, probe: SnmpProbe, target: Mapping[str, Any]) -> str:
        """The first status of a new target, from one probe: UP, DOWN or FAIL."""
        community = str(target.get("community_name", ""))
        if self.reads == UPTIME:
            return probe.device_status(self.address(target), community)
        return probe.port_status(self.address(target), community, self.interface(target))

    def status(self, target: Mapping[str, Any], reading: Reading, previous_uptime: int | None) -> str:
        """The target's status from its device's reading in this cycle (and the uptime of the last)."""
        if self.reads == UPTIME:
            return switch_status(reading.uptime, previous_uptime)
        return port_status(reading.ports, self.interface(target))


SWITCH = Kind("switch", address_field="ip", reads=UPTIME)
PHYSICAL_PORT = Kind("physical_port", address_field="device_ip", reads=INTERFACES, interface_field="name",
                     device_ref="ese_device_id", traffic=True)
#: the reference's snmp_ports: any interface by its ifName, a logical unit (``xe-0/0/1.1003``) included;
#: its traffic goes to the TSDB tagged with the tenant ports its target lists (``port_ids``)
SNMP_PORTS = Kind("snmp_ports", address_field="device_ip", reads=INTERFACES, interface_field="if_name",
                  follows_device=False, traffic=True)
#: every kind, by the ``type`` its targets carry
KINDS = {kind.name: kind for kind in (SWITCH, PHYSICAL_PORT, SNMP_PORTS)}


def kind_of(target: Mapping[str, Any]) -> Kind | None:
    """The kind a target's ``type`` names; None for a type esiprov does not know."""
    return KINDS.get(str(target.get("type", "")))
