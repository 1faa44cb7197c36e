"""The leader sends again, within seconds, every workflow whose message a worker or the broker lost.

A workflow in flight loses its message in three ways, and the leading watcher
watches each one:

- its worker died or froze: the worker's lease expired and etcd deleted its
  holds (esiprov.holds); the watcher sees the delete and, if the workflow is
  still in flight with nobody holding it, sends it again;
- the broker came back empty: the marker message is gone (esiprov.broker),
  so every workflow in flight is sent again;
- its send failed (the broker did not answer when the workflow was claimed):
  an unsent marker waits under ``/esi-worker/unsent/`` until the broker answers.

``dispatch.resend`` renews the workflow record with a compare-and-put, so a
workflow is sent again once however many of these notice it.
"""
from __future__ import annotations

import logging
import queue
import threading
import time

from celery import Celery

from esiprov import broker, keys
from esiprov.dispatch import resend
from esiprov.settings import current
from esiprov.store import Change, Entry, Store

log = logging.getLogger(__name__)

#: seconds between two checks of the broker (its marker, the unsent workflows)
BROKER_CHECK = 3.0


def lost(workflow: Entry, hold: Entry | None, released_at: int) -> bool:
    """Whether a workflow in flight lost its message with the hold deleted at revision ``released_at``:
    nobody holds it now, and its record is older than that deletion. A newer record is another
    workflow: finalize deletes a hold and may start the resource's next version at once, before any
    worker has received its first step."""
    return hold is None and workflow.mod_revision < released_at


class Recovery:
    """The leader's recovery loop; ``released`` is the watch callback of /esi-worker/holds/."""

    def __init__(self, store: Store, app: Celery) -> None:
        self.store = store
        self.app = app
        #: (type, id, the revision that deleted the hold) of each released workflow
        self._released: queue.Queue[tuple[str, str, int]] = queue.Queue()
        self._broker_answered = True

    def released(self, change: Change) -> None:
        """A hold was deleted: by finalize (nothing to do) or by an expired worker lease (resend)."""
        found = keys.resource_of(change.key, keys.HOLDS)
        if change.entry is None and found is not None:
            self._released.put((*found, change.revision))

    def run(self, ended: threading.Event) -> None:
        """Until ``ended``: rescue released workflows as they come, check the broker every BROKER_CHECK s."""
        due = 0.0
        while not ended.is_set():
            try:
                self.rescue(*self._released.get(timeout=max(0.0, due - time.monotonic())))
            except queue.Empty:
                pass
            except Exception:  # noqa: BLE001 - this loop must outlive any one failure
                log.exception("recovery: a released workflow could not be looked at; resync covers it")
            if time.monotonic() >= due:
                self.check_broker()
                due = time.monotonic() + BROKER_CHECK

    def rescue(self, rtype: str, rid: str, released_at: int) -> None:
        """Send the resource's workflow again if the hold deleted at revision ``released_at`` was its."""
        workflow, hold = self.store.get_many([keys.workflow(rtype, rid), keys.hold(rtype, rid)])
        if workflow is not None and lost(workflow, hold, released_at) and resend(self.store, self.app, workflow):
            log.warning("%s %s: the worker holding its workflow is gone; sent again", rtype, rid)

    def check_broker(self) -> None:
        """Resend everything in flight if the broker lost its messages, then whatever could not be sent."""
        try:
            lost = broker.lost_messages(self.app)
        except broker.BROKER_ERRORS as exc:
            if self._broker_answered:
                log.warning("the broker does not answer (%s); workflows wait until it does",
                            current().redact(str(exc)))
            self._broker_answered = False
            return
        if not self._broker_answered:
            log.info("the broker answers again")
        self._broker_answered = True
        try:
            if lost:
                sent = self._resend_all(keys.WORKFLOWS)
                broker.park_marker(self.app)
                log.warning("the broker holds none of esiprov's messages (it is new, or restarted empty, or "
                            "was flushed): %s workflows in flight sent again", sent)
            if sent_late := self._resend_all(keys.UNSENT):
                log.warning("%s workflows the broker did not take when they were claimed sent again", sent_late)
        except Exception:  # noqa: BLE001 - the next check tries again
            log.exception("recovery: resending failed; the next check tries again")

    def _resend_all(self, prefix: str) -> int:
        """Resend the workflow of every resource with a key under ``prefix``; how many were sent."""
        sent = 0
        for entry in self.store.scan(prefix, keys_only=True):
            found = keys.resource_of(entry.key, prefix)
            workflow = self.store.get(keys.workflow(*found)) if found else None
            if workflow is not None:
                sent += resend(self.store, self.app, workflow)
            elif prefix == keys.UNSENT:
                self.store.delete(entry.key)  # its workflow ended some other way (a resync resent it, it failed)
        return sent
