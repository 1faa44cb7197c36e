"""What the poller sends the TSDB: the reference's datapoint shape, bounded batches, which ports count."""
from __future__ import annotations

import json

from esiprov.poller import Device, Target, port_ids, traffic_of
from esiprov.target_kinds import Reading
from esiprov.tsdb import BATCH_BYTES, BATCH_POINTS, METRIC, Traffic, batches, datapoints
from tests.unit.test_poller import port_target, switch_target

AT = 1548981200


def test_each_port_id_and_direction_is_one_traffic_bytes_datapoint_of_the_raw_counter_at_poll_time() -> None:
    reading = Traffic("lp-1", ("port-a", "port-b"), {"in": 2 ** 40, "out": 7}, AT)
    assert datapoints([reading]) == [
        {"metric": METRIC, "timestamp": AT, "value": 2 ** 40,
         "tags": {"resource_id": "lp-1", "port_id": "port-a", "direction": "in"}},
        {"metric": METRIC, "timestamp": AT, "value": 7,
         "tags": {"resource_id": "lp-1", "port_id": "port-a", "direction": "out"}},
        {"metric": METRIC, "timestamp": AT, "value": 2 ** 40,
         "tags": {"resource_id": "lp-1", "port_id": "port-b", "direction": "in"}},
        {"metric": METRIC, "timestamp": AT, "value": 7,
         "tags": {"resource_id": "lp-1", "port_id": "port-b", "direction": "out"}},
    ]


def test_batches_hold_every_datapoint_once_within_the_point_and_byte_limits() -> None:
    readings = [Traffic(f"{n:036d}", (f"{n:036d}",), {"in": 2 ** 63, "out": 2 ** 63}, AT) for n in range(1000)]
    points = datapoints(readings)
    sent = list(batches(points))
    assert [point for _, body in sent for point in json.loads(body)] == points
    assert all(count == len(json.loads(body)) <= BATCH_POINTS and len(body) <= BATCH_BYTES for count, body in sent)


def test_a_datapoint_larger_than_the_byte_limit_still_goes_alone() -> None:
    points = datapoints([Traffic("x" * 100, ("p",), {"in": 1}, AT)] * 3)
    assert [count for count, _ in batches(points, max_bytes=50)] == [1, 1, 1]


def test_a_port_counts_for_its_own_id_unless_its_target_lists_port_ids() -> None:
    assert port_ids(port_target("p1")) == ("p1",)
    assert port_ids(port_target("lp1", port_ids=["t1", "t2"])) == ("t1", "t2")
    assert port_ids(port_target("p1", port_ids=[])) == ("p1",)


def test_only_port_targets_the_walk_read_counters_for_are_sent() -> None:
    device = Device("10.0.0.1", "TOKEN", [switch_target(), port_target("p1", "xe-0/0/1"),
                                          port_target("p2", "xe-0/0/2"), port_target("p3", "xe-9/9/9")])
    reading = Reading(uptime=5, ports={"xe-0/0/1": "UP", "xe-0/0/2": "DOWN"}, calls=2,
                      octets={"xe-0/0/1": {"in": 1, "out": 2}, "xe-0/0/2": {"in": 3, "out": 4}}, read_at=AT)
    assert traffic_of(device, reading) == [Traffic("p1", ("p1",), {"in": 1, "out": 2}, AT),
                                           Traffic("p2", ("p2",), {"in": 3, "out": 4}, AT)]
    assert traffic_of(device, Reading(uptime=None, ports=None, calls=2)) == []


def test_a_logical_units_target_counts_its_traffic_for_each_tenant_port_it_lists() -> None:
    record = {"type": "snmp_ports", "community_name": "TOKEN", "device_ip": "10.0.0.1", "if_name": "xe-0/0/1.1003",
              "port_ids": ["t1", "t2"], "field": "logical_port", "status": "UP", "version": 1}
    unit = Target("/t/lp1", 7, "ese_logical_port", "lp1", record)
    reading = Reading(ports={"xe-0/0/1.1003": "UP"}, calls=1, octets={"xe-0/0/1.1003": {"in": 5, "out": 6}},
                      read_at=AT)
    assert traffic_of(Device("10.0.0.1", "TOKEN", [unit]), reading) == [
        Traffic("lp1", ("t1", "t2"), {"in": 5, "out": 6}, AT)]
