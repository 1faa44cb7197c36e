"""What is up and what is down, on one screen: the read model of ``esiprov status``.

Every part is asked on its own and a part that does not answer becomes a
problem, never an exception: an operator runs ``status`` precisely when
something is broken, and must see everything else that is known. etcd is
pinged endpoint by endpoint (a cluster with one node down still answers, but
the operator must know); the broker is asked for its queues' depths, and the
workers, through Celery's broadcast, which queues they consume. The fleet's
counts come from paged scans (esiprov.store.Store.scan), so they cost the same
memory on a hundred resources as on a hundred thousand.
"""
from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Mapping

from celery import Celery
from kombu.utils.url import maybe_sanitize_url

from esiprov import keys
from esiprov.broker import BROKER_ERRORS, queue_depths
from esiprov.fleet import Fleet, read_holds, read_workflows
from esiprov.settings import Endpoint, Settings
from esiprov.store import Store, StoreError

#: seconds the workers have to answer Celery's broadcast
INSPECT_TIMEOUT = 1.0
#: a leader's heartbeat (every esiprov.watcher.HEARTBEAT, 2 s) older than this: its watch is stuck
HEARTBEAT_STALE = 30.0


@dataclass
class Report:
    """Everything ``esiprov status`` shows; None where the part could not be asked."""

    etcd: list[dict[str, Any]] = field(default_factory=list)
    broker: dict[str, Any] = field(default_factory=dict)
    #: queue -> {"waiting": messages or None, "workers": [names]}
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: workers that answered the broadcast (None: it could not be sent)
    workers: list[str] | None = None
    #: {"holder", "heartbeat_age_seconds", "heartbeat_holder"}; None when no watcher leads
    leader: dict[str, Any] | None = None
    #: the last poll cycle: {"by", "started", "age_seconds", "seconds", "summary"}
    poll: dict[str, Any] | None = None
    #: {"failed_jobs", "workflows_in_flight", "oldest_workflow_age_seconds", "unsent", "holds", "holding_workers"}
    fleet: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _alone(settings: Settings, endpoint: Endpoint) -> Store:
    """A client of one endpoint (a multi-endpoint client would fail over, and hide a dead one)."""
    return Store.connect(dataclasses.replace(settings, etcd_endpoints=(endpoint,)))


def _ping(settings: Settings, endpoint: Endpoint) -> dict[str, Any]:
    store = _alone(settings, endpoint)
    try:
        store.ping()
        return {"endpoint": str(endpoint), "ok": True, "error": None}
    except StoreError as exc:
        return {"endpoint": str(endpoint), "ok": False, "error": str(exc)}
    finally:
        store.close()


def etcd_health(settings: Settings) -> list[dict[str, Any]]:
    """Every endpoint pinged at once: a dead one costs one timeout, not one per endpoint."""
    with ThreadPoolExecutor(len(settings.etcd_endpoints)) as pool:
        return list(pool.map(lambda endpoint: _ping(settings, endpoint), settings.etcd_endpoints))


def _age(now: float, at: Any) -> float | None:
    """Seconds from ``at`` to ``now``; 0 for a record written after ``now`` was taken (the reading began)."""
    return max(0.0, round(now - at, 1)) if isinstance(at, (int, float)) else None


def leader(store: Store, now: float) -> dict[str, Any] | None:
    """The leading watcher (its key lives on its lease) and how old its last heartbeat is."""
    found = store.value(keys.WATCHER_LEADER)
    if not isinstance(found, dict):
        return None
    beat = store.value(keys.WATCHER_HEARTBEAT)
    beat = beat if isinstance(beat, dict) else {}
    return {"holder": found.get("holder"), "heartbeat_holder": beat.get("holder"),
            "heartbeat_age_seconds": _age(now, beat.get("at"))}


def last_poll(store: Store, now: float) -> dict[str, Any] | None:
    """The last finished poll cycle; its age counts from when it ended."""
    found = store.value(keys.POLL_CYCLE)
    if not isinstance(found, dict):
        return None
    summary: dict[str, Any] = found["summary"] if isinstance(found.get("summary"), dict) else {}
    started, seconds = found.get("started"), summary.get("seconds", 0)
    ended = started + seconds if isinstance(started, (int, float)) else None
    return {"by": found.get("by"), "started": started, "seconds": seconds, "age_seconds": _age(now, ended),
            "summary": summary}


def fleet(store: Store, now: float) -> dict[str, Any]:
    """Failed jobs, workflows in flight (and the oldest one's age), unsent ones and the workers holding work."""
    counts = Fleet()
    read_workflows(store, counts)
    read_holds(store, counts)
    return {"failed_jobs": store.count(keys.FAILURES), "workflows_in_flight": counts.workflows,
            "oldest_workflow_age_seconds": _age(now, counts.oldest_sent_at), "unsent": store.count(keys.UNSENT),
            "holds": sum(counts.held.values()), "holding_workers": len(counts.held)}


def consumers(app: Celery, timeout: float = INSPECT_TIMEOUT) -> dict[str, list[str]] | None:
    """Worker -> the queues it consumes, from the workers that answered; None when none did."""
    answered = app.control.inspect(timeout=timeout).active_queues()
    if not answered:
        return None
    return {worker: sorted(q["name"] for q in queues) for worker, queues in answered.items()}


def problems(report: Report) -> list[str]:
    """What is down, one sentence each: the reasons ``esiprov status`` exits 1."""
    found = [f"etcd {e['endpoint']} does not answer: {e['error']}" for e in report.etcd if not e["ok"]]
    etcd_up = any(e["ok"] for e in report.etcd)
    if etcd_up and report.leader is None:
        found.append(f"no watcher leads (no {keys.WATCHER_LEADER}): start `esiprov watch`")
    age = (report.leader or {}).get("heartbeat_age_seconds")
    if age is not None and age > HEARTBEAT_STALE:
        found.append(f"the leading watcher's last heartbeat is {age:.0f} s old: its watch may be stuck")
    if report.broker.get("error"):
        found.append(f"broker {report.broker['url']} does not answer: {report.broker['error']}")
    elif report.workers is not None and not report.workers:
        found.append(f"no Celery worker answered within {INSPECT_TIMEOUT:g} s")
    elif report.workers:
        found += [f"no worker consumes queue {name}" for name, queue in report.queues.items()
                  if not queue["workers"]]
    return found


def _broker_part(report: Report, app: Celery, names: list[str], url: str) -> None:
    report.broker = {"url": maybe_sanitize_url(url), "error": None}
    try:
        depths = queue_depths(app, names)
        by_worker = consumers(app)
    except BROKER_ERRORS as exc:
        report.broker["error"] = str(exc) or type(exc).__name__
        report.queues = {name: {"waiting": None, "workers": []} for name in names}
        return
    report.workers = sorted(by_worker or {})
    report.queues = {name: {"waiting": depths[name],
                            "workers": sorted(w for w, queues in (by_worker or {}).items() if name in queues)}
                     for name in names}


def _etcd_part(report: Report, store: Store, now: float) -> None:
    try:
        report.leader = leader(store, now)
        report.poll = last_poll(store, now)
        report.fleet = fleet(store, now)
    except StoreError as exc:
        report.etcd.append({"endpoint": "(reading)", "ok": False, "error": str(exc)})


def gather(settings: Settings, app: Celery, queue_names: list[str]) -> Report:
    """The whole report; each part that does not answer is a problem, and the others are still asked.

    etcd is read through the first endpoint that answered the ping: a client of them all would try a
    dead one first, and fail the read.
    """
    now = time.time()
    report = Report(etcd=etcd_health(settings))
    answered = [endpoint for endpoint, found in zip(settings.etcd_endpoints, report.etcd) if found["ok"]]
    if answered:
        store = _alone(settings, answered[0])
        try:
            _etcd_part(report, store, now)
        finally:
            store.close()
    _broker_part(report, app, queue_names, settings.broker_url)
    report.problems = problems(report)
    return report


def queue_names(conf: Mapping[str, Any]) -> list[str]:
    """The queues of the app's configuration (celeryconfig's task_queues)."""
    return [queue.name for queue in conf.get("task_queues") or ()]


def _ago(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.0f} s ago"


UNKNOWN = "unknown (etcd does not answer)"


def _watcher_line(report: Report) -> str:
    lead = report.leader
    if lead is None:
        return UNKNOWN if report.fleet is None else "no leader"
    return f"{lead['holder']} leads, heartbeat {_ago(lead['heartbeat_age_seconds'])}"


def _poll_line(report: Report) -> str:
    poll = report.poll
    if poll is None:
        return UNKNOWN if report.fleet is None else "none recorded"
    summary = poll["summary"]
    return (f"ended {_ago(poll['age_seconds'])}, took {poll['seconds']} s, by {poll['by']}: "
            f"{summary.get('targets', '?')} targets on {summary.get('devices', '?')} devices, "
            f"{summary.get('unreachable', '?')} unreachable")


def _queue_lines(report: Report) -> list[str]:
    width = max([len("QUEUE")] + [len(name) for name in report.queues])
    lines = [f"{'QUEUE'.ljust(width)}   WAITING   WORKERS"]
    for name, queue in report.queues.items():
        waiting = "?" if queue["waiting"] is None else str(queue["waiting"])
        lines.append(f"{name.ljust(width)}   {waiting.ljust(7)}   " + (", ".join(queue["workers"]) or "none"))
    return lines


def _fleet_lines(counts: dict[str, Any] | None) -> list[str]:
    if counts is None:
        return [f"jobs        {UNKNOWN}"]
    oldest = counts["oldest_workflow_age_seconds"]
    return [f"jobs        {counts['failed_jobs']} failed",
            f"workflows   {counts['workflows_in_flight']} in flight"
            + (f", the oldest sent {oldest:.0f} s ago" if oldest is not None else "")
            + f"; {counts['unsent']} not taken by the broker yet",
            f"holds       {counts['holding_workers']} workers hold {counts['holds']} workflows"]


def describe(report: Report) -> list[str]:
    """The report as lines for people: one part per line, the queues as a small table, problems last."""
    lines = ["etcd        " + ", ".join(f"{e['endpoint']} " + ("ok" if e["ok"] else "DOWN") for e in report.etcd),
             f"watcher     {_watcher_line(report)}",
             f"broker      {report.broker.get('url')} " + ("DOWN" if report.broker.get("error") else "ok")]
    if report.workers is not None:
        lines.append(f"workers     {len(report.workers)} answered: " + (", ".join(report.workers) or "none"))
    lines += _queue_lines(report) + [f"poll cycle  {_poll_line(report)}"] + _fleet_lines(report.fleet)
    if report.problems:
        return lines + ["", "problems:"] + [f"  {problem}" for problem in report.problems]
    return lines + ["", "all up"]
