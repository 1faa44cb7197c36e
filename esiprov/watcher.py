"""List-then-watch /config and reconcile every resource that changes; one leader among many.

An etcd event only says "this key changed": the watcher hands the key to
reconcile, which reads the current value and decides. So replaying events, or
listing everything again, is always safe. The watcher relists after any broken
watch (etcd down, compaction) and after a silent one: the leader puts a
heartbeat (with its last processed revision) every few seconds and watches it
on the same stream; a stream that delivers not even that is dead. One
resource's failure is logged and never stops the loop.

Every instance, leader or standby, tells esiprov.metrics (its /metrics and
/healthz) whether it leads, whether its etcd session is alive, and what it has
done since it started (``Activity``).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from celery import Celery

from esiprov import keys
from esiprov.leader import Leadership
from esiprov.reconcile import DISPATCHED, ERROR, reconcile, resync
from esiprov.recovery import Recovery
from esiprov.store import Store, StoreError

log = logging.getLogger(__name__)

#: seconds between a broken watch and the next list
RELIST_PAUSE = 2.0
#: seconds between two heartbeats of the leader (lease refresh, progress record)
HEARTBEAT = 2.0
#: a watch stream silent for this many seconds (not even the heartbeat came through) is dead
INACTIVITY = 10.0
#: the etcd session counts as dead when etcd has not answered the campaign or the lease refresh for
#: this long (they ask every LEASE_TTL / 3 or HEARTBEAT seconds; a request times out after 10 s)
SESSION_SILENCE = 20.0


@dataclass
class Activity:
    """What this watcher did since it started, for esiprov_watcher_* counters.

    Only the watcher loop's thread writes them; the metrics server's thread reads them.
    """

    #: /config keys handled: watch events, and every key of each list
    events: int = 0
    #: workflows claimed and sent (a reconcile outcome of "dispatched")
    dispatches: int = 0
    #: reconciles that raised (logged; the next change or resync retries the resource)
    reconcile_errors: int = 0
    #: times the loop started over: a watch broke or went silent, leadership was lost, etcd did not answer
    restarts: int = 0


class Watcher:
    def __init__(self, store: Store, app: Celery) -> None:
        self.store = store
        self.app = app
        self.leadership = Leadership(store, keys.WATCHER_LEADER)
        self.recovery = Recovery(store, app)
        self._stopped = threading.Event()
        #: set by the pulse when leadership is lost or the stream went silent: the list stops too
        self._interrupted = threading.Event()
        self._cancel = lambda: None
        self._revision = 0
        self._last_seen = time.monotonic()
        self.activity = Activity()

    @property
    def leading(self) -> bool:
        """This process holds the leader lease (as of its last refresh)."""
        return self.leadership.lease is not None

    def session_alive(self) -> bool:
        """etcd answered this watcher's campaign or lease refresh within SESSION_SILENCE seconds, and
        no watch broke since: it leads, or stands by ready to."""
        answered = self.leadership.answered_at
        return answered is not None and time.monotonic() - answered < SESSION_SILENCE

    def handle(self, key: str) -> None:
        """Reconcile the resource behind a /config key; log, never raise."""
        found = keys.resource_of(key)
        if found is None:
            return
        context = {"resource_type": found[0], "resource_id": found[1]}
        self.activity.events += 1
        try:
            outcome = reconcile(self.store, self.app, *found)
            log.info("%s %s: %s", *found, outcome, extra=context)
            self.activity.dispatches += outcome == DISPATCHED
        except Exception:  # noqa: BLE001 - one resource must not stop the watcher
            self.activity.reconcile_errors += 1
            log.exception("%s %s: reconcile failed; the next change or resync retries it", *found, extra=context)

    def run(self) -> None:
        """Lead (or stand by), list and watch until stop(); any break relists after a pause."""
        while not self._stopped.is_set():
            try:
                if not self.leadership.campaign(self._stopped):
                    break
                self._lead()
            except Exception as exc:  # noqa: BLE001 - the watcher must outlive etcd hiccups
                if self._stopped.is_set():
                    break
                self.leadership.lost_contact()  # unhealthy until etcd answers the next campaign
                self.leadership.resign()  # and no longer leading while it pauses
                log.warning("watch of %s broke (%s); relisting in %s s", keys.CONFIG, exc, RELIST_PAUSE)
                self._stopped.wait(RELIST_PAUSE)
            finally:
                self.leadership.resign()
            self.activity.restarts += not self._stopped.is_set()

    def stop(self) -> None:
        self._stopped.set()
        self._end_watch()

    def _end_watch(self) -> None:
        """Cancel the current watch (or the list before it); its iterator ends even when etcd cannot hear the cancel."""
        self._interrupted.set()
        try:
            self._cancel()
        except Exception as exc:  # noqa: BLE001 - an unreachable etcd must not kill the pulse
            log.debug("cancelling the watch: %s", exc)

    def _lead(self) -> None:
        """List and watch, with the pulse and the recovery loop beside it for as long as it lasts."""
        ended = threading.Event()
        self._interrupted.clear()
        helpers = [threading.Thread(target=self._pulse, args=(ended,), name="watcher-pulse", daemon=True),
                   threading.Thread(target=self.recovery.run, args=(ended,), name="watcher-recovery", daemon=True)]
        for helper in helpers:
            helper.start()
        try:
            self._list_then_watch()
        finally:
            ended.set()
            for helper in helpers:
                helper.join()

    def _pulse(self, ended: threading.Event) -> None:
        """While leading: keep the lease, record progress, end a watch that lost leadership or went silent."""
        while not ended.wait(HEARTBEAT):
            if not self.leadership.keep():
                self._end_watch()
                return
            try:
                self.store.put(keys.WATCHER_HEARTBEAT, {"holder": self.leadership.name,
                                                        "revision": self._revision, "at": time.time()})
            except StoreError as exc:
                log.warning("cannot record the watcher heartbeat: %s", exc)
            if time.monotonic() - self._last_seen > INACTIVITY:
                log.warning("the watch stream delivered nothing for %s s; reconnecting", INACTIVITY)
                self._end_watch()
                return

    def _seen(self) -> None:
        self._last_seen = time.monotonic()

    def _list(self) -> None:
        """Reconcile every resource (esiprov's copies of deleted ones included), a page at a time.

        The resources already at their config's version are counted from a few range reads per
        page (reconcile.resync), so 100,000 of them take seconds and memory stays flat; each one
        handled counts as a sign of life for the pulse, and an interruption stops the list.
        """
        started = time.monotonic()

        def progress(done: int, total: int) -> None:
            self._seen()
            self.activity.events += 1
            if self._interrupted.is_set():
                raise StoreError(f"the list stopped after {done} of {total} resources (leadership lost "
                                 "or etcd silent)")
        outcomes = resync(self.store, self.app, None, progress)
        self.activity.dispatches += outcomes[DISPATCHED]
        self.activity.reconcile_errors += outcomes[ERROR]
        summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items())) or "none"
        log.info("listed %s resources in %.1f s: %s", sum(outcomes.values()), time.monotonic() - started, summary)

    def _list_then_watch(self) -> None:
        # Holds deleted since the last leader's last heartbeat (this process's, after a relist) were
        # perhaps never looked at: the holds watch replays them from there.
        last_pulse = self.store.get(keys.WATCHER_HEARTBEAT)
        self._revision = self.store.revision()  # whatever changes while the list runs, the watch replays
        self._seen()
        self._list()
        start = self._revision + 1
        cancels = [self.store.on_changes(keys.WATCHER_HEARTBEAT, start, lambda change: self._seen()),
                   self.store.on_changes(keys.HOLDS, last_pulse.mod_revision if last_pulse else start,
                                         self.recovery.released)]
        changes, self._cancel = self.store.watch(keys.CONFIG, start)
        log.info("watching %s from revision %s", keys.CONFIG, start)
        try:
            if self._stopped.is_set() or self._interrupted.is_set():
                self._end_watch()
            for change in changes:
                self._seen()
                self.handle(change.key)
                self._revision = change.revision
        finally:
            for cancel in cancels:
                cancel()
