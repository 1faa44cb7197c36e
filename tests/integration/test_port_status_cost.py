"""What one port status read costs the switch, counted on the wire (snmpsim behind a counting UDP relay).

The probe reads the relay's address as if it were the switch, so every request
the agent receives (retries included) is counted; see tests/fixtures/relay.py.
"""
from __future__ import annotations

import itertools
import math
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Callable, Iterator

import pytest

from esiprov.devenv.switches import FIRST_IF_INDEX, Switch, Switches
from esiprov.ifindex import InterfaceIndex
from esiprov.settings import Settings
from esiprov.snmp import DOWN, FAIL, UP, WALK_ROWS, SnmpProbe
from tests.fixtures.relay import CountingRelay, Traffic
from tests.fixtures.services import COMMUNITY, COMMUNITY_TOKEN, SNMP_TIMEOUT, SWITCH_A, SWITCH_B, running

A, B = SWITCH_A.ip, SWITCH_B.ip
PORT, NEIGHBOUR = "xe-0/0/4", "xe-0/0/5"

Relay = Callable[[str], CountingRelay]
#: the most varbinds snmpsim puts in one answer (its --max-var-binds default)
SNMPSIM_VARBINDS = 64


@pytest.fixture
def probe(snmp_settings: Settings) -> SnmpProbe:
    """A probe with its own interface index, so no other test warms or reads it."""
    return SnmpProbe(snmp_settings, interfaces=InterfaceIndex())


@pytest.fixture
def relay_to(switches: Switches) -> Iterator[Relay]:
    """relay_to(agent_ip): a counting relay to that switch at a fresh address on the switches' port."""
    addresses = (f"127.0.162.{n}" for n in itertools.count(1))
    with ExitStack() as stack:
        yield lambda agent_ip: stack.enter_context(
            CountingRelay(next(addresses), switches.port, (agent_ip, switches.port)))


def read(probe: SnmpProbe, relay: CountingRelay, port: str = PORT) -> tuple[str, Traffic]:
    """The port's status through ``relay`` and what that read cost the agent."""
    relay.take()
    status = probe.port_status(relay.ip, COMMUNITY_TOKEN, port)
    return status, relay.take()


def test_a_second_status_read_of_the_same_port_costs_one_GET_not_a_walk(
        probe: SnmpProbe, relay_to: Relay) -> None:
    relay = relay_to(A)
    first_status, first = read(probe, relay)
    second_status, second = read(probe, relay)
    assert first_status == second_status == UP
    assert first.requests == 1  # a walk: one GETBULK answers the four columns of three ports
    assert second.requests == 1
    assert second.answer_bytes * 10 < first.answer_bytes


def test_every_other_port_of_a_walked_switch_costs_one_GET(probe: SnmpProbe, relay_to: Relay) -> None:
    relay = relay_to(A)
    read(probe, relay, SWITCH_A.ports[0])
    for port in SWITCH_A.ports[1:]:
        status, cost = read(probe, relay, port)
        assert (status, cost.requests) == (UP, 1)


def test_a_flipped_port_reads_DOWN_on_the_cached_path(
        probe: SnmpProbe, relay_to: Relay, switches: Switches) -> None:
    relay = relay_to(A)
    read(probe, relay)
    try:
        switches.set_port(A, PORT, up=False)
        status, cost = read(probe, relay)
        assert (status, cost.requests) == (DOWN, 1)
    finally:
        switches.set_port(A, PORT, up=True)
    status, cost = read(probe, relay)
    assert (status, cost.requests) == (UP, 1)


def test_a_renumbered_interface_is_found_again_by_a_fresh_walk(
        probe: SnmpProbe, relay_to: Relay, switches: Switches) -> None:
    relay = relay_to(A)
    _, walk = read(probe, relay)
    try:
        # Shift by one, so the remembered ifIndex of PORT now names NEIGHBOUR, which is down.
        switches.set_port(A, NEIGHBOUR, up=False)
        switches.renumber(A, FIRST_IF_INDEX - 1)
        status, cost = read(probe, relay)
        assert (status, cost.requests) == (UP, 1 + walk.requests)  # the GET that saw another ifName, the walk
        status, cost = read(probe, relay)
        assert (status, cost.requests) == (UP, 1)
        assert read(probe, relay, NEIGHBOUR)[0] == DOWN
    finally:
        switches.renumber(A, FIRST_IF_INDEX)
        switches.set_port(A, NEIGHBOUR, up=True)


def test_a_restarted_switch_is_walked_again(probe: SnmpProbe, relay_to: Relay, switches: Switches) -> None:
    relay = relay_to(A)
    try:
        switches.set_uptime(A, 4_000_000)
        _, walk = read(probe, relay)
        assert read(probe, relay)[1].requests == 1  # this GET's sysUpTime is the one compared next
        switches.set_uptime(A, 100)
        status, cost = read(probe, relay)
        assert (status, cost.requests) == (UP, 1 + walk.requests)
        status, cost = read(probe, relay)
        assert (status, cost.requests) == (UP, 1)
    finally:
        switches.set_uptime(A, None)


def test_an_unknown_port_is_FAIL_after_a_fresh_walk(probe: SnmpProbe, relay_to: Relay) -> None:
    relay = relay_to(A)
    _, walk = read(probe, relay)
    status, cost = read(probe, relay, "xe-9/9/9")
    assert (status, cost.requests) == (FAIL, walk.requests)


def test_a_switch_that_stops_answering_reads_FAIL_within_its_timeout_without_a_walk(
        probe: SnmpProbe, relay_to: Relay, switches: Switches) -> None:
    relay = relay_to(B)
    read(probe, relay, "ge-0/0/0")
    try:
        switches.stop_answering(B)
        started = time.monotonic()
        status, cost = read(probe, relay, "ge-0/0/0")
        assert (status, cost.requests) == (FAIL, probe.retries + 1)  # the GET and its retry, nothing more
        assert time.monotonic() - started < probe.max_wait + 0.5
    finally:
        switches.resume(B)
    status, cost = read(probe, relay, "ge-0/0/0")
    assert (status, cost.requests) == (UP, 1)


def test_a_poll_of_sysUpTime_and_every_port_of_a_small_switch_costs_one_request(
        probe: SnmpProbe, relay_to: Relay) -> None:
    relay = relay_to(A)
    walk = probe.port_walk(relay.ip, COMMUNITY_TOKEN, counters=False, uptime=True)
    assert relay.take().requests == 1
    assert walk.uptime is not None and walk.uptime > 0
    assert walk.statuses == {name: UP for name in SWITCH_A.ports}


@pytest.fixture(scope="module")
def wide_switch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Switches, Switch]]:
    """A switch of its own with 150 ports (more than one GETBULK's rows), on an address no other test uses."""
    wide = Switch("127.0.163.1", COMMUNITY, tuple(f"xe-{n // 48}/0/{n % 48}" for n in range(150)))
    with running(Switches([wide], log_dir=tmp_path_factory.mktemp("wide-switch"))) as switches:
        yield switches, wide


def test_a_switch_with_more_ports_than_one_request_carries_is_walked_whole_in_a_few_requests(
        wide_switch: tuple[Switches, Switch]) -> None:
    switches, wide = wide_switch
    probe = SnmpProbe(Settings(snmp_port=switches.port, snmp_communities={COMMUNITY_TOKEN: COMMUNITY},
                               snmp_timeout=SNMP_TIMEOUT), interfaces=InterfaceIndex())
    with CountingRelay("127.0.163.2", switches.port, (wide.ip, switches.port)) as relay:
        switches.set_port(wide.ip, wide.ports[100], up=False)
        relay.take()
        walk = probe.port_walk(relay.ip, COMMUNITY_TOKEN, counters=False, uptime=True)
        uptime, ports = walk.uptime, walk.statuses
        # snmpsim answers at most SNMPSIM_VARBINDS varbinds a request (fewer rows than asked)
        assert relay.take().requests == math.ceil((len(wide.ports) + 1) / min(WALK_ROWS, SNMPSIM_VARBINDS // 2))
        assert probe.port_statuses(relay.ip, COMMUNITY_TOKEN) == ports
    assert uptime is not None and uptime > 0
    assert ports == {name: DOWN if name == wide.ports[100] else UP for name in wide.ports}


def test_a_poller_walk_makes_the_next_registration_read_one_GET(probe: SnmpProbe, relay_to: Relay) -> None:
    relay = relay_to(A)
    assert probe.port_statuses(relay.ip, COMMUNITY_TOKEN) == {name: UP for name in SWITCH_A.ports}
    assert read(probe, relay)[1].requests == 1


def test_concurrent_reads_on_a_thread_pool_all_answer_and_then_cost_one_GET_each(
        probe: SnmpProbe, relay_to: Relay) -> None:
    relay = relay_to(A)
    ports = list(SWITCH_A.ports) * 8

    def read_all() -> list[str]:
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(lambda port: probe.port_status(relay.ip, COMMUNITY_TOKEN, port), ports))

    assert read_all() == [UP] * len(ports)
    relay.take()
    assert read_all() == [UP] * len(ports)
    assert relay.take().requests == len(ports)


def test_the_same_port_name_on_two_switches_keeps_its_own_answer(probe: SnmpProbe, relay_to: Relay) -> None:
    to_a, to_b = relay_to(A), relay_to(B)
    read(probe, to_a)
    assert read(probe, to_b)[0] == FAIL  # B has no xe-0/0/4: A's map is not B's
    assert read(probe, to_a)[1].requests == 1
