"""The poller's pure decisions: statuses, where a target is polled, grouping, what gets written."""
from __future__ import annotations

from typing import Any

from esiprov.documents import ResourceVersion
from esiprov.poller import Target, device_address, group, planned_writes
from esiprov.snmp import DOWN, FAIL, UP
from esiprov.target_kinds import port_status, switch_status

OLD_IP, NEW_IP = "10.0.0.1", "10.0.0.2"
NOW = 1_700_000_000.0


def port_target(rid: str = "p1", name: str = "xe-0/0/1", address: str = OLD_IP, **extra: Any) -> Target:
    record = {"type": "physical_port", "community_name": "TOKEN", "device_ip": address, "name": name,
              "field": "port", "status": UP, "version": 1, **extra}
    return Target(f"/t/{rid}", 7, "ese_physical_port", rid, record)


def switch_target(rid: str = "d1", address: str = OLD_IP) -> Target:
    record = {"type": "switch", "community_name": "TOKEN", "ip": address, "mibs": [], "field": "switch",
              "status": UP, "version": 1}
    return Target(f"/t/{rid}", 7, "ese_device", rid, record)


def configs(*resources: ResourceVersion) -> dict[tuple[str, str], ResourceVersion]:
    return {(r.rtype, r.rid): r for r in resources}


def device(rid: str = "d1", address: str = OLD_IP, version: int = 1) -> ResourceVersion:
    return ResourceVersion("ese_device", rid, version, {"id": rid, "management_ip_address": address})


def port(rid: str = "p1", device_id: str = "d1", version: int = 1, deleted: bool = False) -> ResourceVersion:
    return ResourceVersion("ese_physical_port", rid, version, {"id": rid, "ese_device_id": device_id}, deleted)


def test_a_port_reads_as_walked_and_FAIL_when_unknown_or_unanswered() -> None:
    walked = {"xe-0/0/1": UP, "xe-0/0/2": DOWN}
    assert port_status(walked, "xe-0/0/1") == UP
    assert port_status(walked, "xe-0/0/2") == DOWN
    assert port_status(walked, "xe-9/9/9") == FAIL
    assert port_status(None, "xe-0/0/1") == FAIL


def test_a_switch_is_UP_when_sysUpTime_advances_or_restarts_DOWN_when_frozen_FAIL_unanswered() -> None:
    assert switch_status(1000, None) == UP
    assert switch_status(7000, 1000) == UP
    assert switch_status(50, 1000) == UP  # restarted (or wrapped): alive
    assert switch_status(1000, 1000) == DOWN
    assert switch_status(None, 1000) == FAIL


def test_a_port_is_polled_at_its_devices_current_address_not_the_recorded_one() -> None:
    assert device_address(port_target(), configs(port(), device(address=NEW_IP))) == NEW_IP


def test_the_recorded_address_is_used_when_the_device_config_is_missing() -> None:
    assert device_address(port_target(), configs(port())) == OLD_IP


def test_a_switch_is_polled_at_its_own_current_management_address() -> None:
    assert device_address(switch_target(), configs(device(address=NEW_IP))) == NEW_IP


def test_targets_of_one_device_form_one_group_and_gone_or_deleted_resources_are_skipped() -> None:
    targets = [switch_target(), port_target("p1"), port_target("p2", "xe-0/0/2"),
               port_target("gone"), port_target("deleting"), port_target("elsewhere", address=NEW_IP)]
    known = configs(device(), port("p1"), port("p2"), port("deleting", deleted=True),
                    port("elsewhere", device_id="nowhere"))
    devices, skipped = group(targets, known)
    assert skipped == 2
    assert {(d.address, tuple(t.rid for t in d.targets)) for d in devices} == {
        (OLD_IP, ("d1", "p1", "p2")), (NEW_IP, ("elsewhere",))}


def test_monitoring_is_rewritten_only_when_its_status_changes_with_the_current_config_version() -> None:
    target = port_target()
    assert planned_writes(target, UP, OLD_IP, {"version": 1, "port": UP}, 3, NOW) == (None, None)
    record, document = planned_writes(target, DOWN, OLD_IP, {"version": 1, "port": UP}, 3, NOW)
    assert document == {"version": 3, "port": DOWN}
    assert record == {**target.record, "status": DOWN}


def test_monitoring_is_never_created_by_the_poller() -> None:
    record, document = planned_writes(port_target(), DOWN, OLD_IP, None, 1, NOW)
    assert document is None and record["status"] == DOWN


def test_a_moved_device_address_is_recorded_in_the_target() -> None:
    record, document = planned_writes(port_target(), UP, NEW_IP, {"version": 1, "port": UP}, 1, NOW)
    assert document is None and record["device_ip"] == NEW_IP
