"""SnmpProbe against real snmpsim switches on 127.0.161.x (see tests/fixtures/services.py)."""
from __future__ import annotations

import time
from pathlib import Path

import easysnmp
import pytest

from esiprov.devenv.switches import Switch, Switches
from esiprov.settings import Settings
from esiprov.snmp import DOWN, FAIL, UP, SnmpProbe, SnmpUnreachable
from tests.fixtures.services import COMMUNITY, COMMUNITY_TOKEN, NO_AGENT_IP, SWITCH_A, SWITCH_B, running

A, B = SWITCH_A.ip, SWITCH_B.ip


@pytest.fixture
def probe(snmp_settings: Settings) -> SnmpProbe:
    return SnmpProbe(snmp_settings)


def test_an_up_port_reads_UP(probe: SnmpProbe) -> None:
    assert probe.port_status(A, COMMUNITY_TOKEN, "xe-0/0/4") == UP


def test_a_port_set_down_reads_DOWN_and_UP_again_after_flipping_back(
        probe: SnmpProbe, switches: Switches) -> None:
    try:
        switches.set_port(A, "xe-0/0/4", up=False)
        assert probe.port_status(A, COMMUNITY_TOKEN, "xe-0/0/4") == DOWN
        assert probe.port_status(A, COMMUNITY_TOKEN, "xe-0/0/3") == UP
    finally:
        switches.set_port(A, "xe-0/0/4", up=True)
    assert probe.port_status(A, COMMUNITY_TOKEN, "xe-0/0/4") == UP


def test_an_unknown_port_name_reads_FAIL(probe: SnmpProbe) -> None:
    assert probe.port_status(A, COMMUNITY_TOKEN, "xe-9/9/9") == FAIL


def test_a_switch_that_answers_sysUpTime_is_UP(probe: SnmpProbe) -> None:
    assert probe.device_status(A, COMMUNITY_TOKEN) == UP


def test_sysUpTime_advances_like_a_real_agent(probe: SnmpProbe) -> None:
    first = probe.uptime(A, COMMUNITY_TOKEN)
    time.sleep(0.2)
    assert probe.uptime(A, COMMUNITY_TOKEN) >= first + 10  # TimeTicks are 1/100 s


def test_port_statuses_returns_every_port_of_a_switch_from_one_walk(
        probe: SnmpProbe, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def counted(name: str):
        real = getattr(easysnmp.Session, name)

        def call(self, *args, **kwargs):
            calls.append(name)
            return real(self, *args, **kwargs)
        return call

    for name in ("get", "get_next", "get_bulk", "walk", "bulkwalk"):
        monkeypatch.setattr(easysnmp.Session, name, counted(name))
    assert probe.port_statuses(A, COMMUNITY_TOKEN) == {name: UP for name in SWITCH_A.ports}
    assert calls == ["get_bulk"]  # three ports, four columns: one GETBULK answers them all


def test_switches_sharing_a_community_each_answer_with_their_own_ports(probe: SnmpProbe) -> None:
    assert set(probe.port_statuses(B, COMMUNITY_TOKEN)) == set(SWITCH_B.interfaces)
    assert probe.port_status(B, COMMUNITY_TOKEN, "xe-0/0/4") == FAIL


def test_a_port_flip_on_one_switch_leaves_the_other_switch_alone(
        probe: SnmpProbe, switches: Switches) -> None:
    try:
        switches.set_port(B, "ge-0/0/1", up=False)
        assert probe.port_statuses(A, COMMUNITY_TOKEN) == {name: UP for name in SWITCH_A.ports}
    finally:
        switches.set_port(B, "ge-0/0/1", up=True)


def test_an_address_without_agent_gives_FAIL_within_the_timeout(probe: SnmpProbe) -> None:
    for check in (lambda: probe.device_status(NO_AGENT_IP, COMMUNITY_TOKEN),
                  lambda: probe.port_status(NO_AGENT_IP, COMMUNITY_TOKEN, "xe-0/0/4")):
        started = time.monotonic()
        assert check() == FAIL
        assert time.monotonic() - started < probe.max_wait + 0.5


def test_an_address_without_agent_raises_SnmpUnreachable_from_port_statuses(probe: SnmpProbe) -> None:
    started = time.monotonic()
    with pytest.raises(SnmpUnreachable, match=NO_AGENT_IP):
        probe.port_statuses(NO_AGENT_IP, COMMUNITY_TOKEN)
    assert time.monotonic() - started < probe.max_wait + 0.5


def test_a_wrong_community_gets_no_answer_like_a_real_agent(probe: SnmpProbe) -> None:
    assert probe.device_status(A, "not-the-community") == FAIL


def test_the_community_never_appears_in_SnmpUnreachable(probe: SnmpProbe) -> None:
    with pytest.raises(SnmpUnreachable) as caught:
        probe.uptime(NO_AGENT_IP, COMMUNITY_TOKEN)
    text = f"{caught.value!s} {caught.value!r} {caught.value.__cause__!r} {caught.value.__context__!r}"
    assert COMMUNITY not in text and COMMUNITY_TOKEN not in text


def test_a_silenced_switch_reads_FAIL_until_it_resumes(probe: SnmpProbe, switches: Switches) -> None:
    try:
        switches.stop_answering(B)
        assert probe.device_status(B, COMMUNITY_TOKEN) == FAIL
        assert probe.port_status(B, COMMUNITY_TOKEN, "ge-0/0/0") == FAIL
        assert probe.device_status(A, COMMUNITY_TOKEN) == UP
    finally:
        switches.resume(B)
    assert probe.port_status(B, COMMUNITY_TOKEN, "ge-0/0/0") == UP


def test_a_walk_reads_each_ports_status_and_64_bit_octets_as_the_switch_serves_them(
        probe: SnmpProbe, switches: Switches) -> None:
    walk = probe.port_walk(A, COMMUNITY_TOKEN)
    assert walk.statuses == {name: UP for name in SWITCH_A.ports}
    assert walk.octets == {name: switches.octets(A, name) for name in SWITCH_A.ports}
    assert min(value for octets in walk.octets.values() for value in octets.values()) > 2 ** 32


def test_a_walk_of_a_switch_whose_answers_are_cut_short_still_reads_every_column_of_every_port(
        tmp_path: Path) -> None:
    """snmpsim answers at most ~1.5 kB per message: 60 rows of four columns take several GETBULKs, each cut
    short mid-row, and each column must go on from where its own last answer stopped."""
    big = Switch("127.0.161.60", COMMUNITY, tuple(f"xe-{n // 48}/0/{n % 48}" for n in range(60)))
    with running(Switches([big], log_dir=tmp_path)) as own:
        own.set_port(big.ip, big.ports[47], up=False)
        probe = SnmpProbe(Settings(snmp_port=own.port, snmp_communities={COMMUNITY_TOKEN: COMMUNITY}))
        walk = probe.port_walk(big.ip, COMMUNITY_TOKEN)
        assert walk.statuses == {name: DOWN if name == big.ports[47] else UP for name in big.ports}
        assert walk.octets == {name: own.octets(big.ip, name) for name in big.ports}
