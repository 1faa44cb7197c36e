"""Logical units monitored by ifName (the snmp_ports kind) with hold-damped first statuses, on real etcd
and snmpsim: finalize's first /monitoring and the poll cycles after it, as seed-breadth §1.3–1.4 records.

The targets are written as monitoring_worker leaves them; SWITCH_B carries the logical unit.
"""
from __future__ import annotations

import time
import uuid
from typing import Any, Iterator

import pytest

from esiprov import damping, keys, poller, publish
from esiprov.devenv.apiserver import envelope
from esiprov.devenv.etcd import EtcdServer
from esiprov.devenv.switches import Switches
from esiprov.documents import workflow_record
from esiprov.settings import Settings, from_env
from esiprov.snmp import DOWN, FAIL, UP, SnmpProbe
from esiprov.store import Store
from tests.fixtures.services import COMMUNITY_TOKEN, SWITCH_B, running

RTYPE = "ese_logical_port"
UNIT = SWITCH_B.units[0]


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """An etcd of this module's own: a poll cycle sees only the targets written here."""
    with running(EtcdServer(log_dir=tmp_path_factory.mktemp("logical-port-etcd"))) as server:
        store = Store.connect(from_env({"ESIPROV_ETCD_ENDPOINTS": server.endpoint}))
        yield store
        store.close()


@pytest.fixture
def probe(snmp_settings: Settings) -> SnmpProbe:
    return SnmpProbe(snmp_settings)


@pytest.fixture
def unit_down(switches: Switches) -> Iterator[None]:
    switches.set_port(SWITCH_B.ip, UNIT, up=False)
    yield
    switches.set_port(SWITCH_B.ip, UNIT, up=True)


def register(etcd: Store, status: str, if_name: str = UNIT, hold: dict[str, Any] | None = None,
             registered_at: float | None = None, rid: str | None = None, version: int = 1) -> str:
    """A logical port's config, its in-flight workflow (a create, or a modify past version 1) and its
    target as monitoring_worker wrote it."""
    rid = rid or str(uuid.uuid4())
    target: dict[str, Any] = {
        "type": "snmp_ports", "community_name": COMMUNITY_TOKEN, "device_ip": SWITCH_B.ip, "if_name": if_name,
        "field": "logical_port", "status": status, "version": version, "resource_type": RTYPE, "resource_id": rid,
        "registered_at": time.time() if registered_at is None else registered_at}
    if hold is not None:
        target["hold_options"] = hold
    if version == 1:
        for stale in (poller.LAST_CYCLE, *[e.key for e in etcd.range(keys.TARGETS)[0]]):
            etcd.delete(stale)  # each test polls its own target only
    etcd.commit(puts={keys.config(RTYPE, rid): envelope({"id": rid, "name": if_name}, version),
                      keys.workflow(RTYPE, rid): workflow_record(version, "create" if version == 1 else "modify", []),
                      keys.target(RTYPE, rid): target})
    return rid


def shown(etcd: Store, rid: str) -> Any:
    return etcd.value(keys.monitoring(RTYPE, rid))


def test_a_logical_unit_is_polled_by_its_name_in_its_devices_one_walk(etcd: Store, probe: SnmpProbe,
                                                                      unit_down: None) -> None:
    rid = register(etcd, UP)
    assert publish.finalize(etcd, RTYPE, rid, 1).published
    assert shown(etcd, rid) == {"version": 1, "logical_port": UP}
    summary = poller.poll(etcd, probe)
    assert shown(etcd, rid) == {"version": 1, "logical_port": DOWN}
    assert summary.snmp_calls == 1


def test_a_unit_the_switch_does_not_have_is_FAIL(etcd: Store, probe: SnmpProbe) -> None:
    rid = register(etcd, UP, if_name="ge-0/0/1.4094")
    publish.finalize(etcd, RTYPE, rid, 1)
    poller.poll(etcd, probe)
    assert shown(etcd, rid) == {"version": 1, "logical_port": FAIL}


def test_a_status_the_hold_withholds_stays_out_of_monitoring_until_a_positive_one_comes(
        etcd: Store, probe: SnmpProbe, switches: Switches, unit_down: None) -> None:
    rid = register(etcd, DOWN, hold={"positive_status": [UP], "time_seconds": 3600})
    assert publish.finalize(etcd, RTYPE, rid, 1).published
    assert etcd.value(keys.state(RTYPE, rid))["state"]["worker_state"] == "CREATE_COMPLETED"
    assert shown(etcd, rid) is None and etcd.value(keys.target(RTYPE, rid))[damping.WITHHELD] is True
    poller.poll(etcd, probe)
    assert shown(etcd, rid) is None, "still DOWN inside the window: withheld"
    switches.set_port(SWITCH_B.ip, UNIT, up=True)
    poller.poll(etcd, probe)
    assert shown(etcd, rid) == {"version": 1, "logical_port": UP}
    target = etcd.value(keys.target(RTYPE, rid))
    assert target[damping.HOLD_ENDED] is True and damping.WITHHELD not in target
    switches.set_port(SWITCH_B.ip, UNIT, up=False)
    poller.poll(etcd, probe)
    assert shown(etcd, rid) == {"version": 1, "logical_port": DOWN}, "the hold ended: every change is written"


def test_a_positive_status_at_registration_is_published_by_finalize_and_ends_the_hold(etcd: Store) -> None:
    rid = register(etcd, UP, hold={"positive_status": [UP, DOWN], "time_seconds": 30})
    assert publish.finalize(etcd, RTYPE, rid, 1).published
    assert shown(etcd, rid) == {"version": 1, "logical_port": UP}
    assert etcd.value(keys.target(RTYPE, rid))[damping.HOLD_ENDED] is True


def test_once_the_window_has_passed_a_withheld_status_is_written_by_the_next_cycle(
        etcd: Store, probe: SnmpProbe) -> None:
    rid = register(etcd, FAIL, if_name="ge-0/0/1.4094", hold={"positive_status": [UP, DOWN], "time_seconds": 30},
                   registered_at=time.time() - 10)
    publish.finalize(etcd, RTYPE, rid, 1)
    assert shown(etcd, rid) is None
    target = etcd.get(keys.target(RTYPE, rid))
    etcd.put(target.key, {**target.value, "registered_at": time.time() - 31})  # the window has passed
    poller.poll(etcd, probe)
    assert shown(etcd, rid) == {"version": 1, "logical_port": FAIL}


def test_a_modify_whose_first_status_is_withheld_brings_monitoring_to_its_version_once_the_hold_allows(
        etcd: Store, probe: SnmpProbe, switches: Switches, unit_down: None) -> None:
    rid = register(etcd, UP)
    assert publish.finalize(etcd, RTYPE, rid, 1).published
    # version 2, registered while the unit is down, by a template whose hold waits for UP
    register(etcd, DOWN, hold={"positive_status": [UP], "time_seconds": 3600}, rid=rid, version=2)
    assert publish.finalize(etcd, RTYPE, rid, 2).published
    assert shown(etcd, rid) == {"version": 1, "logical_port": UP}, "withheld: the previous value stays"
    etcd.delete(poller.LAST_CYCLE)
    switches.set_port(SWITCH_B.ip, UNIT, up=True)
    poller.poll(etcd, probe)
    assert shown(etcd, rid) == {"version": 2, "logical_port": UP}
