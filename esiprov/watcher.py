"""List-then-watch /config and reconcile every resource that changes.

An etcd event only says "this key changed": the watcher hands the key to
reconcile, which reads the current value and decides. So replaying events, or
listing everything again, is always safe. One resource's failure is logged and
never stops the loop.
"""
from __future__ import annotations

import logging
import threading

from celery import Celery

from esiprov import keys
from esiprov.reconcile import reconcile
from esiprov.store import Store

log = logging.getLogger(__name__)

#: seconds between a broken watch and the next list
RELIST_PAUSE = 2.0


class Watcher:
    def __init__(self, store: Store, app: Celery) -> None:
        self.store = store
        self.app = app
        self._cancel = lambda: None
        self._stopped = threading.Event()

    def handle(self, key: str) -> None:
        """Reconcile the resource behind a /config key; log, never raise."""
        found = keys.resource_of(key)
        if found is None:
            return
        try:
            outcome = reconcile(self.store, self.app, *found)
            log.info("%s %s: %s", *found, outcome)
        except Exception:  # noqa: BLE001 - one resource must not stop the watcher
            log.exception("%s %s: reconcile failed; the next change or resync retries it", *found)

    def run(self) -> None:
        """List and watch until stop(); a broken watch (etcd down, compaction) relists after a pause."""
        while not self._stopped.is_set():
            try:
                self._list_then_watch()
            except Exception as exc:  # noqa: BLE001 - the watcher must outlive etcd hiccups
                if self._stopped.is_set():
                    break
                log.warning("watch of %s broke (%s); relisting in %s s", keys.CONFIG, exc, RELIST_PAUSE)
                self._stopped.wait(RELIST_PAUSE)

    def _list_then_watch(self) -> None:
        entries, revision = self.store.range(keys.CONFIG, keys_only=True)
        log.info("watching %s from revision %s (%s keys listed)", keys.CONFIG, revision + 1, len(entries))
        for entry in entries:
            self.handle(entry.key)
        changes, self._cancel = self.store.watch(keys.CONFIG, revision + 1)
        if self._stopped.is_set():
            self._cancel()
        for change in changes:
            self.handle(change.key)

    def stop(self) -> None:
        self._stopped.set()
        self._cancel()
