"""Monitoring benchmark: poll cycles over 2,000 ports on 40 emulated switches (real etcd and snmpsim).

Prints the cycle time, the SNMP operations and the SNMP request PDUs per device
per cycle, and the cycle time as a share of the poll interval; then the same
with ports flipped, with one more switch registered where no agent answers, and
one cycle through the real Celery task. One cycle also pushes every port's traffic
counters to a real TSDB (InfluxDB 1.6's OpenTSDB listener): its line gives the
cycle time, and the push's own time after the cycle. Request PDUs are counted on the wire (a packet socket on
loopback filtered on the switches' UDP port, so other traffic is not counted);
that needs root (CAP_NET_RAW), otherwise they are reported as not measured.

    python -m bench.monitoring [--switches 40] [--ports 50] [--cycles 5] [--interval 60] [--start-timeout S]

Peak memory: the bench polls in its own process, so its peak RSS (VmHWM) is printed after setup
and after the cycles; what the cycles add is the poller's own.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench.wire import WireCounter, wire_counter
from esiprov import poller, tsdb
from esiprov.devenv.etcd import EtcdServer
from esiprov.devenv.fleet import register_fleet, register_units
from esiprov.devenv.influxdb import InfluxServer
from esiprov.devenv.process import wait_until
from esiprov.devenv.local import COMMUNITY_TOKEN as TOKEN
from esiprov.devenv.switches import Switch, Switches
from esiprov.settings import Settings, from_env
from esiprov.snmp import SnmpProbe
from esiprov.store import Store

COMMUNITY = "bench-community"


def build_switches(count: int, ports: int) -> list[Switch]:
    return [Switch(f"127.0.{200 + n // 250}.{1 + n % 250}", COMMUNITY,
                   tuple(f"xe-{p // 48}/0/{p % 48}" for p in range(ports))) for n in range(count)]


def run_cycles(store: Store, probe: SnmpProbe, wire: WireCounter | None, count: int,
               interval: float, on_traffic: poller.TrafficSink | None = None) -> list[poller.Summary]:
    summaries = []
    for _ in range(count):
        if wire:
            wire.take()
        summary = poller.poll(store, probe, on_traffic=on_traffic)
        pdus = wire.take() if wire else None
        report(summary, pdus, interval)
        summaries.append(summary)
    return summaries


def emulator_baseline(probe: SnmpProbe, fleet: list[Switch]) -> float:
    """Seconds for one walk of every switch in turn: what the emulator needs whatever the poller does."""
    started = time.monotonic()
    for switch in fleet:
        probe.port_statuses(switch.ip, TOKEN)
    return time.monotonic() - started


def peak_rss_mb() -> float:
    """This process's peak RSS so far (the kernel's high-water mark), MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(summary: poller.Summary, pdus: int | None, interval: float, label: str = "cycle") -> None:
    devices = max(summary.devices, 1)
    wire = f"{pdus / devices:5.1f} request PDUs/device" if pdus is not None else "PDUs not measured (needs root)"
    print(f"  {label}: {summary.seconds:6.3f} s ({summary.seconds / interval:6.2%} of {interval:g} s; etcd reads "
          f"{summary.snapshot_seconds:.3f} s) | "
          f"{summary.devices} devices, {summary.targets} targets | {summary.snmp_calls / devices:.1f} SNMP "
          f"operations/device, {wire} | {summary.changes} changes, {summary.unreachable} unreachable, "
          f"{summary.conflicts} conflicts", flush=True)


def with_counters_pushed(store: Store, probe: SnmpProbe, influx: InfluxServer, interval: float) -> None:
    """One cycle that hands its counters to a TSDB pusher; the push runs after it, timed on its own."""
    influx.drop(tsdb.METRIC)
    pusher = tsdb.Pusher(tsdb.TsdbClient(influx.opentsdb_url), deadline=interval / 2)
    summary = poller.poll(store, probe, on_traffic=pusher.submit)
    pusher.wait_idle(interval)
    push = pusher.last or tsdb.PushReport(0, 0, 0.0, "no push")

    def count() -> int:
        rows = influx.rows(f'SELECT count("value") FROM "{tsdb.METRIC}"')
        return int(rows[0][1]) if rows else 0
    try:
        wait_until(lambda: count() >= push.points, 30, "the datapoints in InfluxDB")
    except TimeoutError:
        pass  # the line below says how many arrived
    print(f"  cycle with counters pushed to a TSDB (InfluxDB 1.6, OpenTSDB /api/put): {summary.seconds:.3f} s "
          f"({summary.traffic} ports); the push after it: {push.points} datapoints in {push.requests} requests, "
          f"{push.seconds:.3f} s, {count()} stored{'' if push.error is None else ', ' + push.error}", flush=True)


def start_emulators(stack: ExitStack, fleet: list[Switch], args: argparse.Namespace, logs: Path) -> dict[str, Switches]:
    """The fleet split over ``args.emulators`` snmpsim processes sharing one UDP port: {switch ip: its emulator}."""
    start_timeout = args.start_timeout or max(30.0, float(len(fleet)) / args.emulators)
    groups = [fleet[n::args.emulators] for n in range(args.emulators)]
    first = stack.enter_context(Switches(groups[0], log_dir=logs).start(start_timeout))
    others = [stack.enter_context(Switches(group, log_dir=logs, port=first.port).start(start_timeout))
              for group in groups[1:]]
    return {ip: emulator for emulator in (first, *others) for ip in emulator.switches}


def with_logical_ports(args: argparse.Namespace, logs: Path) -> None:
    """The same fleet again (own etcd, snmpsim and TSDB) with a logical port on a unit of every port, every
    cycle pushing the counters: the walk per device covers both, so a cycle still costs one walk per device."""
    fleet = [Switch(s.ip, s.community, s.ports, units=tuple(f"{p}.1003" for p in s.ports))
             for s in build_switches(args.switches, args.ports)]
    with EtcdServer(log_dir=logs) as etcd, ExitStack() as emulators, InfluxServer(log_dir=logs) as influx:
        switches = start_emulators(emulators, fleet, args, logs)[fleet[0].ip]
        store = Store.connect(from_env({"ESIPROV_ETCD_ENDPOINTS": etcd.endpoint}))
        register_fleet(store, fleet)
        register_units(store, fleet)
        probe = SnmpProbe(Settings(snmp_port=switches.port, snmp_communities={TOKEN: COMMUNITY},
                                   snmp_timeout=args.snmp_timeout))
        wire = wire_counter(switches.port)
        units = sum(len(s.units) for s in fleet)
        pusher = tsdb.Pusher(tsdb.TsdbClient(influx.opentsdb_url), deadline=args.interval / 2)
        print(f"with {units} logical ports (snmp_ports, one unit per port) beside the {units} physical ports, "
              f"every cycle's counters pushed to the TSDB:", flush=True)
        summaries = run_cycles(store, probe, wire, args.cycles, args.interval, pusher.submit)
        pusher.wait_idle(args.interval)
        times = [s.seconds for s in summaries]
        push = pusher.last or tsdb.PushReport(0, 0, 0.0, "no push")
        print(f"  cycle time with logical ports and counters: median {statistics.median(times):.3f} s, max "
              f"{max(times):.3f} s; the last push: {push.points} datapoints in {push.requests} requests, "
              f"{push.seconds:.3f} s", flush=True)
        store.close()


def through_the_task(etcd: EtcdServer, switches: Switches) -> None:
    """One cycle through the real Celery task (run in this process: no broker needed)."""
    os.environ.update({"ESIPROV_ETCD_ENDPOINTS": etcd.endpoint, "ESIPROV_SNMP_PORT": str(switches.port),
                       "ESIPROV_SNMP_COMMUNITIES": f"{TOKEN}={COMMUNITY}",
                       # below the spacing of the cycles just run, so this one does not skip
                       "ESIPROV_MONITOR_INTERVAL": "1"})
    from tasks.poller import poll_targets
    time.sleep(0.6)
    started = time.monotonic()
    result = poll_targets.apply().get()
    print(f"  through the Celery task esiprov.poll_targets: {time.monotonic() - started:.3f} s, {result}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--switches", type=int, default=40)
    parser.add_argument("--ports", type=int, default=50, help="ports per switch")
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--interval", type=float, default=60.0, help="poll interval the cycle time is compared to")
    parser.add_argument("--snmp-timeout", type=float, default=2.0)
    parser.add_argument("--emulators", type=int, default=1,
                        help="snmpsim processes the switches are split over (one answers one request at a time)")
    parser.add_argument("--start-timeout", type=float, default=0.0,
                        help="seconds snmpsim may take until every agent answers (default: 30, or 1 per switch)")
    args = parser.parse_args()
    fleet = build_switches(args.switches, args.ports)
    logs = Path(tempfile.mkdtemp(prefix="esiprov-bench-monitoring-"))
    print(f"monitoring: {args.switches} switches x {args.ports} ports = {args.switches * args.ports} ports, "
          f"{poller.WORKERS} devices at once, SNMP timeout {args.snmp_timeout:g} s (logs: {logs})", flush=True)
    started = time.monotonic()
    with EtcdServer(log_dir=logs) as etcd, ExitStack() as emulators, InfluxServer(log_dir=logs) as influx:
        owner = start_emulators(emulators, fleet, args, logs)
        switches = owner[fleet[0].ip]
        print(f"  etcd, InfluxDB and {args.emulators} snmpsim process(es) with {len(fleet)} agents up in "
              f"{time.monotonic() - started:.1f} s", flush=True)
        store = Store.connect(from_env({"ESIPROV_ETCD_ENDPOINTS": etcd.endpoint}))
        register_fleet(store, fleet)
        setup_mb = peak_rss_mb()
        probe = SnmpProbe(Settings(snmp_port=switches.port, snmp_communities={TOKEN: COMMUNITY},
                                   snmp_timeout=args.snmp_timeout))
        wire = wire_counter(switches.port)
        print("steady state (the first cycle has no previous sysUpTime):")
        summaries = run_cycles(store, probe, wire, args.cycles, args.interval)
        times = [s.seconds for s in summaries]
        print(f"  cycle time: median {statistics.median(times):.3f} s, max {max(times):.3f} s "
              f"= {max(times) / args.interval:.2%} of the interval; the bench's peak RSS {setup_mb:.0f} MB after "
              f"setup, {peak_rss_mb():.0f} MB after the cycles")
        print(f"  the emulator alone (each snmpsim process answers one request at a time): "
              f"the same walks one after another take {emulator_baseline(probe, fleet):.3f} s")
        with_counters_pushed(store, probe, influx, args.interval)
        flipped = [(switch, switch.ports[n % args.ports]) for n, switch in enumerate(fleet[:20])]
        for switch, name in flipped:
            owner[switch.ip].set_port(switch.ip, name, up=False)
        print(f"{len(flipped)} ports flipped down:")
        run_cycles(store, probe, wire, 1, args.interval)
        for switch, name in flipped:
            owner[switch.ip].set_port(switch.ip, name, up=True)
        dead = Switch("127.0.199.1", COMMUNITY, fleet[0].ports)
        register_fleet(store, [dead])
        print(f"ports back up, plus a registered switch {dead.ip} with no agent (its device and "
              f"{len(dead.ports)} ports FAIL; one unanswered device costs {probe.max_wait:g} s):")
        run_cycles(store, probe, wire, 1, args.interval)
        through_the_task(etcd, switches)
        store.close()
    with_logical_ports(args, logs)


if __name__ == "__main__":
    main()
