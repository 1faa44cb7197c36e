"""Prometheus metrics and a health check, served by every ``esiprov watch`` on ESIPROV_METRICS_ADDRESS.

``GET /metrics`` (Prometheus text format) and ``GET /healthz``. Why it is built this way:

- The fleet's numbers (resources per worker_state, failed jobs, workflows in flight,
  monitoring statuses, holds, the last poll cycle) are read from etcd, the source of
  truth, when Prometheus scrapes, not counted from events: they are right after a
  restart, and every watcher, leader or standby, reports the same fleet, so any of
  them can be scraped. A read pages through etcd in short key ranges
  (``Store.scan_resources``, ``Store.scan``, ``Store.count``), never one unbounded
  range: memory stays flat, and at 100,000 resources a read costs about 2.5 s of CPU
  (7-10 s in all, measured on two cores busy with other work), half of what one paged
  range costs. Its result is kept CACHE_SECONDS and shared by concurrent scrapes; ages
  are computed at each scrape from the cached timestamps.
- What only this process knows (leader or not, what its loop did since it started)
  comes from its Watcher, through the small ``WatcherView`` interface.
- When etcd does not answer, /metrics still answers: ``esiprov_etcd_up`` is 0, the
  watcher's own series stay, and the fleet's series are left out rather than shown stale.
- ``/healthz`` never asks etcd itself: it answers 200 while the watcher's etcd
  session is alive (it leads, or stands by ready to), 503 otherwise, at once.

Names and labels are fixed: dashboards and deploy/prometheus/alerts.yml depend on them.
Nothing here logs a secret: the fleet's records hold none, and requests are logged at
debug level by their request line only.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from esiprov.fleet import Fleet, read_fleet
from esiprov.settings import ConfigError, Endpoint
from esiprov.store import Store, StoreError

if TYPE_CHECKING:
    from esiprov.watcher import Activity

log = logging.getLogger(__name__)

#: seconds a fleet read from etcd is reused by later scrapes
CACHE_SECONDS = 5.0
#: the text format generate_latest writes (named here: older prometheus_client has no constant for it)
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"


class WatcherView(Protocol):
    """What the metrics need from the Watcher (esiprov.watcher.Watcher is one)."""

    @property
    def leading(self) -> bool: ...

    @property
    def activity(self) -> Activity: ...

    def session_alive(self) -> bool: ...


# --- the Prometheus collector --------------------------------------------------------------------

def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _labelled(name: str, documentation: str, labels: list[str],
              counts: Iterable[tuple[Any, int]]) -> GaugeMetricFamily:
    """A gauge with one sample per key of ``counts`` (a tuple of label values, or one value)."""
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for key, count in sorted(counts):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], count)
    return family


def fleet_metrics(fleet: Fleet, now: float) -> Iterator[Metric]:
    """The fleet's series; ages are measured to ``now`` (epoch seconds)."""
    yield _labelled("esiprov_resources", "Resources per worker_state of their /state.",
                    ["resource_type", "worker_state"], fleet.resources.items())
    yield _labelled("esiprov_failed_jobs", "Jobs with a failure record (esiprov jobs list --failed).",
                    ["handler"], fleet.failed_jobs.items())
    yield _gauge("esiprov_workflows_in_flight", "Workflows claimed and not yet finalized or failed.", fleet.workflows)
    oldest = 0.0 if fleet.oldest_sent_at is None else max(0.0, now - fleet.oldest_sent_at)
    yield _gauge("esiprov_oldest_workflow_age_seconds",
                 "Seconds since the workflow in flight longest was (last) sent; 0 when none is.", oldest)
    yield _labelled("esiprov_monitoring_status", "Current /monitoring statuses (UP, DOWN, FAIL) per resource type.",
                    ["resource_type", "status"], fleet.monitoring.items())
    yield _labelled("esiprov_workflows_held", "Workflows whose message a live worker has received (holds).",
                    ["worker"], fleet.held.items())
    yield _gauge("esiprov_unsent_workflows", "Workflows claimed whose messages the broker has not taken yet.",
                 fleet.unsent)
    if fleet.poll_finished_at is not None and fleet.poll_seconds is not None:
        yield _gauge("esiprov_poll_cycle_seconds", "Duration of the last SNMP poll cycle.", fleet.poll_seconds)
        yield _gauge("esiprov_poll_cycle_age_seconds", "Seconds since the last SNMP poll cycle finished.",
                     max(0.0, now - fleet.poll_finished_at))
    yield _gauge("esiprov_metrics_read_seconds", "Seconds the last read of these numbers from etcd took.",
                 fleet.read_seconds)


def _counter(name: str, documentation: str, value: int) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def watcher_metrics(watcher: WatcherView) -> Iterator[Metric]:
    """This process's own series: they need no etcd."""
    activity = watcher.activity
    yield _gauge("esiprov_watcher_leader", "1 on the leading watcher, 0 on a standby.", int(watcher.leading))
    yield _counter("esiprov_watcher_events_total", "/config keys handled: watch events and listed keys.",
                   activity.events)
    yield _counter("esiprov_dispatches_total", "Workflows this watcher claimed and sent.", activity.dispatches)
    yield _counter("esiprov_reconcile_errors_total", "Reconciles that raised (the resource is retried later).",
                   activity.reconcile_errors)
    yield _counter("esiprov_watcher_restarts_total",
                   "Times the watch loop started over (broken or silent watch, lost leadership, etcd down).",
                   activity.restarts)


class FleetCollector:
    """A prometheus_client collector: the watcher's series, and the fleet's read from etcd (cached)."""

    def __init__(self, store: Store, watcher: WatcherView, cache_seconds: float = CACHE_SECONDS) -> None:
        self.store = store
        self.watcher = watcher
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()  # one etcd read at a time; concurrent scrapes wait and share it
        self._read_at = float("-inf")
        self._fleet: Fleet | None = None

    def fleet(self) -> Fleet | None:
        """The fleet as read within cache_seconds (read now if older); None when etcd did not answer."""
        with self._lock:
            if time.monotonic() - self._read_at >= self.cache_seconds:
                try:
                    self._fleet = read_fleet(self.store)
                except StoreError as exc:
                    log.warning("metrics: cannot read the fleet from etcd: %s", exc)
                    self._fleet = None
                self._read_at = time.monotonic()
            return self._fleet

    def collect(self) -> Iterator[Metric]:
        yield from watcher_metrics(self.watcher)
        fleet = self.fleet()
        yield _gauge("esiprov_etcd_up", "1 when the fleet's numbers could be read from etcd.", int(fleet is not None))
        if fleet is not None:
            yield from fleet_metrics(fleet, time.time())


# --- the HTTP server -----------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    server: "MetricsServer"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._answer(200, generate_latest(self.server.registry), TEXT_FORMAT)
        elif path == "/healthz":
            alive = self.server.watcher.session_alive()
            role = "leading" if self.server.watcher.leading else "standing by"
            text = f"ok: {role}\n" if alive else "unavailable: the watcher's etcd session is not alive\n"
            self._answer(200 if alive else 503, text.encode(), "text/plain; charset=utf-8")
        else:
            self._answer(404, b"not found: try /metrics or /healthz\n", "text/plain; charset=utf-8")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        log.debug("metrics: %s %s", self.address_string(), format % args)


class MetricsServer(ThreadingHTTPServer):
    """/metrics and /healthz on ``address``, each request in a thread of its own."""

    daemon_threads = True

    def __init__(self, address: Endpoint, registry: CollectorRegistry, watcher: WatcherView) -> None:
        self.address_family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        self.registry = registry
        self.watcher = watcher
        super().__init__((address.host, address.port), _Handler)
        self._thread = threading.Thread(target=self.serve_forever, name="esiprov-metrics", daemon=True)

    def start(self) -> "MetricsServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def serve(address: Endpoint, store: Store, watcher: WatcherView) -> MetricsServer:
    """Listen on ``address`` and serve in a thread; ConfigError (naming the variable) when it cannot listen."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(store, watcher))
    shown = f"[{address.host}]:{address.port}" if ":" in address.host else str(address)
    try:
        server = MetricsServer(address, registry, watcher)
    except OSError as exc:
        raise ConfigError(f"ESIPROV_METRICS_ADDRESS: cannot listen on {shown}: {exc.strerror or exc}") from None
    log.info("serving /metrics and /healthz on http://%s", shown)
    return server.start()
