"""Traffic counters: real poll cycles push every port's octets to a real TSDB, read back with InfluxQL.

The TSDB is InfluxDB 1.6 with its OpenTSDB listener (esiprov.devenv.influxdb),
the switches are the session's snmpsim ones (their ports serve ifHCInOctets and
ifHCOutOctets), and the module has an etcd of its own with SWITCH_A and SWITCH_B
registered, as in test_poller. A TSDB that is down, hung or refusing is a real
one too: a port nothing listens on, a frozen influxd, and InfluxDB's own API
(which has no /api/put).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from esiprov import keys, poller
from esiprov.devenv.apiserver import envelope
from esiprov.devenv.etcd import EtcdServer
from esiprov.devenv.fleet import port_id, register_fleet
from esiprov.devenv.influxdb import InfluxServer
from esiprov.devenv.pipeline import start_beat, start_worker
from esiprov.devenv.process import free_port, wait_until
from esiprov.devenv.redis import RedisServer
from esiprov.devenv.switches import Switch, Switches
from esiprov.snmp import DOWN, SnmpProbe
from esiprov.store import Store
from esiprov.tsdb import METRIC, REQUEST_TIMEOUT, Pusher, Traffic, TsdbClient
from tests.fixtures.polled_fleet import FLEET, etcd, etcd_of_module, module_store, probe  # noqa: F401 - fixtures
from tests.fixtures.services import COMMUNITY, COMMUNITY_TOKEN, SWITCH_A, SWITCH_B, running

A, B = SWITCH_A, SWITCH_B
PORT_A = "xe-0/0/4"
#: seconds within which points put are queryable (the listener batches for 100 ms)
STORED = 15.0
#: seconds a push to a TSDB that fails may take: one request's timeout, and some slack
GIVES_UP = REQUEST_TIMEOUT * 3 + 5

Series = dict[tuple[str, str, str], float]


@pytest.fixture(scope="module")
def influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    with running(InfluxServer(log_dir=tmp_path_factory.mktemp("influxdb-log"))) as server:
        yield server


@pytest.fixture
def tsdb(influx: InfluxServer) -> InfluxServer:
    """The module's TSDB with no traffic stored yet."""
    influx.drop(METRIC)
    return influx


def stored(influx: InfluxServer) -> Series:
    """The last value of every traffic.bytes series, by (resource_id, port_id, direction)."""
    rows = influx.query(f'SELECT last("value") FROM "{METRIC}" GROUP BY "resource_id", "port_id", "direction"')
    return {(s["tags"]["resource_id"], s["tags"]["port_id"], s["tags"]["direction"]): s["values"][0][1]
            for s in rows}


def served(switches: Switches) -> Series:
    """What the switches' ports serve, as the TSDB should hold it: the port's id as resource_id and port_id."""
    return {(port_id(s.ip, name), port_id(s.ip, name), direction): value
            for s in FLEET for name in s.ports for direction, value in switches.octets(s.ip, name).items()}


def monitoring(etcd: Store) -> dict[str, Any]:
    """Every /monitoring document of the fleet, by key."""
    return {entry.key: entry.value for entry in etcd.range(keys.MONITORING)[0]}


def pusher_to(url: str) -> Pusher:
    """A pusher of its own (not the process's shared one), so each test reads its own last report."""
    return Pusher(TsdbClient(url), deadline=30)


def test_a_poll_cycle_pushes_each_ports_in_and_out_octets_as_traffic_bytes_in_the_same_walk(
        etcd: Store, probe: SnmpProbe, switches: Switches, tsdb: InfluxServer) -> None:
    pusher = pusher_to(tsdb.opentsdb_url)
    before = int(time.time())
    summary = poller.poll(etcd, probe, on_traffic=pusher.submit)
    after = int(time.time())
    assert summary.snmp_calls == 2  # per switch: one walk (sysUpTime in its first request), as without counters
    assert summary.traffic == sum(len(s.ports) for s in FLEET)
    wait_until(lambda: stored(tsdb) == served(switches), STORED, "every port's counters in InfluxDB")
    times = tsdb.rows(f'SELECT "value" FROM "{METRIC}"')
    assert len(times) == 2 * summary.traffic  # one datapoint per port id and direction, nothing else
    assert all(before <= at <= after for at, _ in times)  # the poll time, in seconds
    assert pusher.wait_idle(GIVES_UP) and pusher.last is not None and pusher.last.error is None


def test_a_logical_ports_unit_counts_for_each_tenant_port_its_target_lists(
        etcd: Store, probe: SnmpProbe, switches: Switches, tsdb: InfluxServer) -> None:
    """The reference's snmp_ports target: one datapoint per listed port id and direction, tagged with the
    logical port's id, from the unit's counters in the device's one walk."""
    unit, logical_port, tenant_ports = B.units[0], "lp-7452", ["port-3a04", "port-5b19"]
    etcd.commit(puts={keys.config("ese_logical_port", logical_port): envelope({"id": logical_port, "name": unit}, 1),
                      keys.target("ese_logical_port", logical_port): {
                          "type": "snmp_ports", "community_name": COMMUNITY_TOKEN, "device_ip": B.ip, "if_name": unit,
                          "port_ids": tenant_ports, "field": "logical_port", "status": "UP", "version": 1,
                          "resource_type": "ese_logical_port", "resource_id": logical_port}})
    pusher = pusher_to(tsdb.opentsdb_url)
    try:
        summary = poller.poll(etcd, probe, on_traffic=pusher.submit)
    finally:
        etcd.commit(deletes=[keys.config("ese_logical_port", logical_port),
                             keys.target("ese_logical_port", logical_port)])
    assert summary.snmp_calls == 2  # the unit is read by the walk its switch's ports already cost
    expected = {(logical_port, port, direction): value for port in tenant_ports
                for direction, value in switches.octets(B.ip, unit).items()}
    wait_until(lambda: stored(tsdb) == {**served(switches), **expected}, STORED,
               "the unit's counters once per tenant port, beside every port's")


def test_counters_that_moved_are_in_the_tsdb_after_the_next_cycle(
        etcd: Store, probe: SnmpProbe, switches: Switches, tsdb: InfluxServer) -> None:
    pusher = pusher_to(tsdb.opentsdb_url)
    poller.poll(etcd, probe, on_traffic=pusher.submit)
    moved = (2 ** 40 + 17, 2 ** 41 + 29)
    key = port_id(A.ip, PORT_A)
    initial = switches.octets(A.ip, PORT_A)
    try:
        switches.set_octets(A.ip, PORT_A, *moved)
        assert pusher.wait_idle(GIVES_UP)
        poller.poll(etcd, probe, on_traffic=pusher.submit)
        wait_until(lambda: (stored(tsdb).get((key, key, "in")), stored(tsdb).get((key, key, "out"))) == moved,
                   STORED, "the moved counters in InfluxDB")
    finally:
        switches.set_octets(A.ip, PORT_A, initial["in"], initial["out"])


def test_a_tsdb_that_is_down_leaves_monitoring_exactly_as_without_one_and_the_cycle_completes(
        etcd: Store, probe: SnmpProbe, switches: Switches, caplog: pytest.LogCaptureFixture) -> None:
    try:
        switches.set_port(A.ip, PORT_A, up=False)
        without = poller.poll(etcd, probe)
        expected = monitoring(etcd)
        register_fleet(etcd, FLEET, COMMUNITY_TOKEN)  # every port UP again, as before the first cycle
        etcd.delete(poller.LAST_CYCLE)
        down = f"127.0.0.1:{free_port()}"  # nothing listens there
        pusher = pusher_to(f"http://{down}")
        with caplog.at_level(logging.INFO, logger="esiprov.tsdb"):
            summary = poller.poll(etcd, probe, on_traffic=pusher.submit)
            assert pusher.wait_idle(GIVES_UP)
    finally:
        switches.set_port(A.ip, PORT_A, up=True)
    assert monitoring(etcd) == expected
    assert expected[keys.monitoring("ese_physical_port", port_id(A.ip, PORT_A))]["port"] == DOWN
    ignored = {"seconds", "snapshot_seconds", "traffic"}
    assert {k: v for k, v in vars(summary).items() if k not in ignored} == \
        {k: v for k, v in vars(without).items() if k not in ignored}
    assert pusher.last is not None and pusher.last.points == 0
    assert f"no answer from {down} (ConnectionRefusedError" in str(pusher.last.error)
    assert f"TSDB {down}: traffic counters not stored" in caplog.text


def test_a_hung_tsdb_does_not_hold_up_the_cycle_and_the_push_gives_up_after_its_timeout(
        etcd: Store, probe: SnmpProbe, tsdb: InfluxServer) -> None:
    pusher = pusher_to(tsdb.opentsdb_url)
    tsdb.freeze()
    try:
        summary = poller.poll(etcd, probe, on_traffic=pusher.submit)
        assert (summary.unreachable, summary.conflicts, summary.traffic) == (0, 0, 5)
        assert pusher.wait_idle(GIVES_UP)
    finally:
        tsdb.freeze(False)
    assert pusher.last is not None and pusher.last.requests == 1  # gave up at the first unanswered request
    assert "(TimeoutError: timed out)" in str(pusher.last.error)
    assert all(value["version"] == 1 for value in monitoring(etcd).values())


def test_a_cycle_whose_readings_wait_behind_a_slow_push_is_replaced_by_the_next_and_only_that_one_goes(
        tsdb: InfluxServer, caplog: pytest.LogCaptureFixture) -> None:
    pusher = pusher_to(tsdb.opentsdb_url)
    at = int(time.time())
    cycle = {name: [Traffic(f"{name}-port", (f"{name}-port",), {"in": n, "out": n + 1}, at)]
             for n, name in enumerate(("first", "second", "third"))}
    tsdb.freeze()
    try:
        pusher.submit(cycle["first"])
        wait_until(lambda: pusher.sending, 10, "the first push under way")
        with caplog.at_level(logging.WARNING, logger="esiprov.tsdb"):
            pusher.submit(cycle["second"])
            pusher.submit(cycle["third"])
    finally:
        tsdb.freeze(False)
    assert pusher.replaced == 1
    assert "the previous cycle's traffic counters (1 ports) were still waiting" in caplog.text
    assert pusher.wait_idle(GIVES_UP)
    wait_until(lambda: ("third-port", "third-port", "out") in stored(tsdb), STORED, "the third cycle's points")
    assert not any(key[0] == "second-port" for key in stored(tsdb))


def test_a_tsdb_that_refuses_the_points_is_logged_with_its_answer_and_nothing_else_changes(
        etcd: Store, probe: SnmpProbe, influx: InfluxServer, caplog: pytest.LogCaptureFixture) -> None:
    before = monitoring(etcd)
    refusing = pusher_to(influx.url)  # InfluxDB's own API: no /api/put there
    with caplog.at_level(logging.WARNING, logger="esiprov.tsdb"):
        summary = poller.poll(etcd, probe, on_traffic=refusing.submit)
        assert refusing.wait_idle(GIVES_UP)
    assert summary.changes == 0 and monitoring(etcd) == before
    assert f"127.0.0.1:{influx.http_port} refused the datapoints: HTTP 404 Not Found (404 page not found)" in \
        caplog.text


def test_celery_beat_and_a_worker_push_counters_to_ESIPROV_TSDB_URL_every_cycle(
        etcd: Store, etcd_of_module: EtcdServer, redis_server: RedisServer, switches: Switches,
        tsdb: InfluxServer, tmp_path: Path) -> None:
    env = {"ESIPROV_ETCD_ENDPOINTS": etcd_of_module.endpoint,
           "ESIPROV_BROKER_URL": redis_server.url.rsplit("/", 1)[0] + "/5",
           "ESIPROV_SNMP_PORT": str(switches.port), "ESIPROV_SNMP_COMMUNITIES": f"{COMMUNITY_TOKEN}={COMMUNITY}",
           "ESIPROV_SNMP_TIMEOUT": "0.5", "ESIPROV_MONITOR_INTERVAL": "1", "ESIPROV_TSDB_URL": tsdb.opentsdb_url}
    with start_beat(env, tmp_path), start_worker(env, tmp_path, name="traffic-worker", concurrency=2,
                                                 queues="poller") as worker:
        wait_until(lambda: stored(tsdb) == served(switches), 30, "every port's counters in InfluxDB "
                   "(see traffic-worker.log)")
        # and again with the next cycles: several poll times per series
        ports = len(served(switches)) // 2
        wait_until(lambda: len(tsdb.rows(f'SELECT "value" FROM "{METRIC}" WHERE "direction" = \'in\'')) > ports,
                   30, "a second cycle's datapoints")
    assert "TSDB 127.0.0.1" in worker.log_path.read_text(errors="replace")


def test_a_port_missing_on_its_switch_sends_no_counters_and_the_others_still_go(
        etcd: Store, probe: SnmpProbe, switches: Switches, tsdb: InfluxServer) -> None:
    register_fleet(etcd, [Switch(A.ip, COMMUNITY, ("xe-9/9/9",))], COMMUNITY_TOKEN)
    pusher = pusher_to(tsdb.opentsdb_url)
    summary = poller.poll(etcd, probe, on_traffic=pusher.submit)
    assert summary.traffic == sum(len(s.ports) for s in FLEET)
    wait_until(lambda: stored(tsdb) == served(switches), STORED, "the known ports' counters in InfluxDB")
