"""A fleet of emulated switches registered for monitoring, as the create workflows leave it (logical
ports on their units included, when asked).

For the poller's tests and benchmark: configs, monitoring targets and first
/monitoring values of every switch and port, written straight to etcd so that
thousands of ports need no Heat stacks.
"""
from __future__ import annotations

import uuid
from typing import Any, Iterable

from esiprov import keys
from esiprov.devenv.apiserver import envelope
from esiprov.devenv.local import COMMUNITY_TOKEN
from esiprov.devenv.switches import Switch
from esiprov.snmp import DOWN, UP
from esiprov.store import Store

#: etcd's default limit of operations in one transaction
TXN_OPS = 128


def device_id(ip: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"esiprov-bench:{ip}"))


def port_id(ip: str, name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"esiprov-bench:{ip}:{name}"))


def fleet_records(switch: Switch, token: str, version: int = 1) -> dict[str, Any]:
    """The configs, targets and first /monitoring of a switch and its ports, as the API server,
    monitoring_worker and finalize leave them after the create workflows."""
    dev = device_id(switch.ip)
    records = {
        keys.config("ese_device", dev): envelope({"id": dev, "management_ip_address": switch.ip}, version),
        keys.target("ese_device", dev): {
            "type": "switch", "community_name": token, "ip": switch.ip, "mibs": [], "field": "switch",
            "status": UP, "version": version, "resource_type": "ese_device", "resource_id": dev},
        keys.monitoring("ese_device", dev): {"version": version, "switch": UP},
    }
    for name in switch.ports:
        pid = port_id(switch.ip, name)
        records[keys.config("ese_physical_port", pid)] = envelope(
            {"id": pid, "name": name, "ese_device_id": dev}, version)
        records[keys.target("ese_physical_port", pid)] = {
            "type": "physical_port", "community_name": token, "device_ip": switch.ip, "name": name,
            "field": "port", "status": UP, "version": version, "resource_type": "ese_physical_port",
            "resource_id": pid}
        records[keys.monitoring("ese_physical_port", pid)] = {"version": version, "port": UP}
    return records


def unit_records(switch: Switch, token: str, version: int = 1) -> dict[str, Any]:
    """The config, snmp_ports target (hold ended) and first /monitoring of a logical port per unit of the
    switch, as the shipped ese_logical_port templates leave them."""
    records: dict[str, Any] = {}
    for name in switch.units:
        lid = port_id(switch.ip, name)
        records[keys.config("ese_logical_port", lid)] = envelope({"id": lid, "name": name}, version)
        records[keys.target("ese_logical_port", lid)] = {
            "type": "snmp_ports", "community_name": token, "device_ip": switch.ip, "if_name": name,
            "port_ids": [port_id(switch.ip, f"tenant:{name}")], "field": "logical_port", "status": UP,
            "version": version, "hold_options": {"positive_status": [UP, DOWN], "time_seconds": 30},
            "hold_ended": True, "resource_type": "ese_logical_port", "resource_id": lid}
        records[keys.monitoring("ese_logical_port", lid)] = {"version": version, "logical_port": UP}
    return records


def register_fleet(store: Store, switches: Iterable[Switch], token: str = COMMUNITY_TOKEN) -> None:
    """Write fleet_records of every switch, in transactions of at most TXN_OPS puts."""
    _write(store, (item for switch in switches for item in fleet_records(switch, token).items()))


def register_units(store: Store, switches: Iterable[Switch], token: str = COMMUNITY_TOKEN) -> None:
    """Write unit_records of every switch, in transactions of at most TXN_OPS puts."""
    _write(store, (item for switch in switches for item in unit_records(switch, token).items()))


def _write(store: Store, records: Iterable[tuple[str, Any]]) -> None:
    found = list(records)
    for start in range(0, len(found), TXN_OPS):
        store.commit(puts=dict(found[start:start + TXN_OPS]))
