"""Traffic counters to a TSDB over the OpenTSDB HTTP API, off the poll cycle's critical path.

The poll cycle reads every port's ifHCInOctets and ifHCOutOctets in the walk it
already makes (esiprov.snmp) and hands them here once its /monitoring writes are
done; with ``ESIPROV_TSDB_URL`` set they are sent to ``<url>/api/put``. Choices,
and why:

- Datapoints as the reference system's tsdb syncer put them: metric
  ``traffic.bytes``, the raw octet counter as value (the TSDB derives rates),
  the poll time in seconds as timestamp, tags ``resource_id``, ``port_id`` and
  ``direction`` (``in``/``out``): one datapoint per port id and direction.
- ``port_id``: the ids a target lists in ``port_ids`` (a logical port counts the
  traffic of the tenant ports it serves, as the reference's ``jinja_port_ids``),
  else the monitored port's own resource id.
- At most BATCH_POINTS datapoints and BATCH_BYTES bytes per request, over one
  keep-alive connection: OpenTSDB advises 50 points a request and refuses a body
  its server splits into HTTP chunks unless chunked requests are enabled.
- Never on the cycle's critical path: a Pusher (one thread per process) sends
  after the cycle has returned. At most one cycle's readings wait: a newer
  cycle's replace them (a counter is cumulative, so the newest reading loses no
  bytes, only one point of resolution) and a warning says so.
- Bounded: every request times out after REQUEST_TIMEOUT seconds and a push
  gives up at its deadline (half the poll interval from the task), so a slow
  TSDB never makes pushes pile up or hold a worker.
- A TSDB that is down, slow or rejects points costs one warning per push naming
  the TSDB's host and what went wrong (the HTTP status and the start of its
  answer, or the error's type). The URL carries no credentials (settings
  refuses them) and what is sent holds no secret. /monitoring never depends on it.
"""
from __future__ import annotations

import http.client
import json
import logging
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from esiprov.settings import Settings

log = logging.getLogger(__name__)

METRIC = "traffic.bytes"
#: datapoints per request: OpenTSDB's advice for /api/put
BATCH_POINTS = 50
#: bytes per request body, under the 8 KiB a default OpenTSDB takes without chunked requests
BATCH_BYTES = 7900
#: seconds each request (connect, send, answer) may take
REQUEST_TIMEOUT = 2.0
#: longest push, whatever the poll interval: requests past it are not sent
PUSH_DEADLINE_MAX = 30.0
#: characters of a refusing TSDB's answer kept in the log line
ANSWER_EXCERPT = 200


@dataclass(frozen=True)
class Traffic:
    """One port's counters as one walk read them."""

    resource_id: str
    #: the ``port_id`` tags: one datapoint per id and direction
    port_ids: tuple[str, ...]
    #: octets by direction (``in``, ``out``), as the device counts them
    octets: Mapping[str, int]
    #: when the walk read them, in seconds since the epoch
    at: int


@dataclass(frozen=True)
class PushReport:
    """What one push did: for the log line, the benchmark and tests."""

    points: int
    requests: int
    seconds: float
    #: None when every request was answered 2xx, else what went wrong (no secrets)
    error: str | None = None


class TsdbError(Exception):
    """The TSDB did not take a batch: unreachable, too slow or refused. The message is safe to log."""


# --- what is sent ---------------------------------------------------------------------------------

def datapoints(readings: Iterable[Traffic]) -> list[dict[str, Any]]:
    """OpenTSDB datapoints: one per port id and direction of every reading."""
    return [{"metric": METRIC, "timestamp": reading.at, "value": value,
             "tags": {"resource_id": reading.resource_id, "port_id": port_id, "direction": direction}}
            for reading in readings for port_id in reading.port_ids
            for direction, value in sorted(reading.octets.items())]


def batches(points: Sequence[Mapping[str, Any]], max_points: int = BATCH_POINTS,
            max_bytes: int = BATCH_BYTES) -> Iterator[tuple[int, bytes]]:
    """JSON array bodies of at most ``max_points`` datapoints and ``max_bytes`` bytes (a single larger
    datapoint goes alone); each with how many datapoints it holds."""
    batch: list[bytes] = []
    size = 2  # the brackets
    for point in points:
        encoded = json.dumps(point, separators=(",", ":")).encode()
        if batch and (len(batch) >= max_points or size + len(encoded) + 1 > max_bytes):
            yield len(batch), b"[" + b",".join(batch) + b"]"
            batch, size = [], 2
        batch.append(encoded)
        size += len(encoded) + 1
    if batch:
        yield len(batch), b"[" + b",".join(batch) + b"]"


# --- how it is sent -------------------------------------------------------------------------------

class TsdbClient:
    """POSTs datapoints to ``<url>/api/put``; one connection per push, kept alive across its batches."""

    def __init__(self, url: str, timeout: float = REQUEST_TIMEOUT) -> None:
        parts = urllib.parse.urlsplit(url)
        self.secure = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.secure else 80)
        self.path = parts.path.rstrip("/") + "/api/put"
        self.timeout = timeout

    @property
    def where(self) -> str:
        """The TSDB as log lines name it: host and port (the URL has no credentials to hide)."""
        return f"{self.host}:{self.port}"

    def put(self, points: Sequence[Mapping[str, Any]], deadline: float) -> PushReport:
        """Send every datapoint, or stop at the first failure or when ``deadline`` seconds are spent."""
        started = time.monotonic()
        sent = requests = 0
        connection = self._connect()
        try:
            for count, body in batches(points):
                left = deadline - (time.monotonic() - started)
                if left <= 0:
                    raise TsdbError(f"{len(points) - sent} of {len(points)} datapoints not sent: "
                                    f"the push's {deadline:g} s were spent")
                requests += 1
                self._post(connection, body, min(self.timeout, left))
                sent += count
        except TsdbError as exc:
            return PushReport(sent, requests, time.monotonic() - started, str(exc))
        finally:
            connection.close()
        return PushReport(sent, requests, time.monotonic() - started)

    def _connect(self) -> http.client.HTTPConnection:
        if self.secure:
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def _post(self, connection: http.client.HTTPConnection, body: bytes, timeout: float) -> None:
        """One request; TsdbError unless the answer is 2xx (OpenTSDB and InfluxDB answer 204)."""
        try:
            if connection.sock is not None:
                connection.sock.settimeout(timeout)
            else:
                connection.timeout = timeout
            connection.request("POST", self.path, body, {"Content-Type": "application/json"})
            answer = connection.getresponse()
            text = answer.read(ANSWER_EXCERPT * 4).decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise TsdbError(f"no answer from {self.where} ({type(exc).__name__}: {exc})") from None
        if not 200 <= answer.status < 300:
            excerpt = " ".join(text.split())[:ANSWER_EXCERPT]
            raise TsdbError(f"{self.where} refused the datapoints: HTTP {answer.status} {answer.reason}"
                            + (f" ({excerpt})" if excerpt else ""))
        if answer.will_close or not answer.isclosed():
            connection.close()  # closed by the server, or an answer longer than read: the next request reconnects


class Pusher:
    """Sends the readings each cycle hands over on a thread of its own; at most one hand-over waits.

    ``submit`` returns at once. A push that fails is logged and dropped: the next
    cycle's readings carry the counters on (they are cumulative).
    """

    def __init__(self, client: TsdbClient, deadline: float = PUSH_DEADLINE_MAX) -> None:
        self.client = client
        self.deadline = deadline
        self._changed = threading.Condition()
        self._pending: list[Traffic] | None = None
        self._busy = False
        self._thread: threading.Thread | None = None
        #: the last push's report, and how many hand-overs were replaced before they were sent
        self.last: PushReport | None = None
        self.replaced = 0

    def submit(self, readings: Sequence[Traffic]) -> None:
        """Queue one cycle's readings, replacing those of an earlier cycle still waiting."""
        with self._changed:
            if self._pending is not None:
                self.replaced += 1
                log.warning("TSDB %s: the previous cycle's traffic counters (%d ports) were still waiting to "
                            "be sent and are replaced by this cycle's (the push before is slow)",
                            self.client.where, len(self._pending))
            self._pending = list(readings)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="tsdb-push", daemon=True)
                self._thread.start()
            self._changed.notify_all()

    @property
    def sending(self) -> bool:
        """Whether a push is under way now."""
        with self._changed:
            return self._busy

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued or being sent; False if ``timeout`` seconds passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: self._pending is None and not self._busy, timeout)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._pending is not None)
                readings, self._pending = self._pending or [], None
                self._busy = True
            report = self.push(readings)
            with self._changed:
                self.last, self._busy = report, False
                self._changed.notify_all()

    def push(self, readings: Sequence[Traffic]) -> PushReport:
        """Send ``readings`` now, in this thread, and log the outcome."""
        points = datapoints(readings)
        try:
            report = self.client.put(points, self.deadline)
        except Exception as exc:  # noqa: BLE001 - whatever breaks here must not end the pushing thread
            report = PushReport(0, 0, 0.0, f"{type(exc).__name__} while sending to {self.client.where}")
        if report.error is None:
            log.info("TSDB %s: %d datapoints of %d ports in %d requests, %.3f s", self.client.where,
                     report.points, len(readings), report.requests, report.seconds)
        else:
            log.warning("TSDB %s: traffic counters not stored (%d of %d datapoints sent, %.3f s): %s",
                        self.client.where, report.points, len(points), report.seconds, report.error)
        return report


_PUSHERS: dict[tuple[str, float], Pusher] = {}
_PUSHERS_LOCK = threading.Lock()


def pusher(url: str, deadline: float = PUSH_DEADLINE_MAX) -> Pusher:
    """The process's Pusher to ``url``: one thread and one queue per TSDB, whichever task hands over."""
    key = (url, min(deadline, PUSH_DEADLINE_MAX))
    with _PUSHERS_LOCK:
        if key not in _PUSHERS:
            _PUSHERS[key] = Pusher(TsdbClient(url), key[1])
        return _PUSHERS[key]


def sink(settings: Settings) -> Callable[[Sequence[Traffic]], None] | None:
    """Where a poll cycle hands its readings: the TSDB's Pusher, or None without ESIPROV_TSDB_URL.

    A push may take at most half the poll interval, so it ends before the next cycle hands over.
    """
    if settings.tsdb_url is None:
        return None
    return pusher(settings.tsdb_url, settings.monitor_interval / 2).submit
